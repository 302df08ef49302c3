"""One Chinese term per concept: the variants the Chinese edition does not use, and where a text uses one.

Notebook 00's glossary (术语表) fixes one Chinese term per concept. ``python -m course_utils.nbtools check`` (part of
``make test``) runs :func:`problems` over the markdown of every Chinese notebook and over ``README_zh-CN.md``, so a
variant that creeps back in (a translator's habit, an old sentence) fails with the term to use instead. A variant may
still be *named* as a synonym right after the term, as the glossary does: 持续批处理（也叫连续批处理）.
"""

from __future__ import annotations

import re

# variant (a regular expression) → the term the glossary uses
VARIANTS: dict[str, str] = {
    "连续批处理": "持续批处理 (persistent batching; 07, 09)",
    "迷你": "mini (the track's name, as in the code)",
    "评估": "评测 (evaluation)",
    "提示语(?!言)": "提示词 (prompt)",  # not 提示语言模型
    "键值缓存": "KV 缓存 (KV cache)",
    "保留集": "留出集 (held-out set)",
    "测试集合(?!并)": "测试集 (test set)",  # not 测试集合并
    "低秩自适应": "低秩适配 (LoRA)",
    "吞吐率": "吞吐量 (throughput)",
    "批次大小": "批大小 (batch size)",
}
# a variant right after one of these, or in brackets after the term, is a synonym being named, not a use
SYNONYM_MARKS = ("也叫", "又称", "又叫")


def problems(text: str, where: str) -> list[str]:
    """One line per use of a variant in ``text`` (markdown), naming ``where`` and the term to use instead."""
    found = []
    for variant, term in VARIANTS.items():
        for match in re.finditer(variant, text):  # a pattern: a variant may exclude longer words
            before = text[max(0, match.start() - 4) : match.start()]
            if any(before.endswith(mark) for mark in SYNONYM_MARKS) or before.endswith(("（", "(")):
                continue
            context = text[max(0, match.start() - 12) : match.end() + 12].replace("\n", " ")
            found.append(
                (match.start(), f"{where}: “{match.group()}” in “…{context}…”: the glossary's term is {term}")
            )
    return [line for _, line in sorted(found)]
