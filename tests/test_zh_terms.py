"""course_utils.zh_terms: one Chinese term per concept, checked by ``nbtools check``."""

from course_utils import nbfiles, paths, zh_terms, zh_twins


def test_a_variant_is_reported_with_the_glossary_term():
    found = zh_terms.problems("我们先评估模型，再看连续批处理。", "zh/01: cell 3")
    assert len(found) == 2 and all(line.startswith("zh/01: cell 3: “") for line in found)
    assert "评测" in found[0] and "持续批处理" in found[1]


def test_a_synonym_named_after_the_term_is_not_a_use():
    assert zh_terms.problems("持续批处理（也叫连续批处理）与 KV 缓存（键值缓存）；又称连续批处理", "x") == []


def test_the_preferred_terms_are_in_the_glossary_and_no_variant_is():
    chinese_00 = nbfiles.read_committed(paths.notebooks_dir() / "zh" / "00_welcome_and_setup.ipynb")
    glossary = next(
        zh_twins.cell_text(c) for c in chinese_00["cells"] if "## 术语表" in zh_twins.cell_text(c)
    )
    for term in zh_terms.VARIANTS.values():
        assert term.split(" (")[0] in glossary or term.startswith(("mini", "测试集")), term
    assert zh_terms.problems(glossary, "glossary") == []


def test_the_chinese_edition_uses_one_term_per_concept():
    problems, _ = zh_twins.zh_check()
    assert not [p for p in problems if "the glossary's term is" in p], problems


def test_longer_words_and_half_width_brackets_are_not_uses():
    text = "我们提示语言模型作答，把训练集与测试集合并。KV 缓存 (键值缓存)"
    assert zh_terms.problems(text, "x") == []
    assert "“提示语”" in zh_terms.problems("换一句提示语。", "x")[0]
