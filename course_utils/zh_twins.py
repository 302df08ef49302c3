"""The Chinese edition, ``notebooks/zh/``: each English notebook's twin, kept in step with it.

    python -m course_utils.nbtools zh                 # stale translations, cells out of step (``zh_command``)
    python -m course_utils.nbtools zh --write         # copies the English code cells into every Chinese twin
    python -m course_utils.nbtools zh --accept NOTEBOOK CELL ...   # or --accept-all NOTEBOOK, --new NOTEBOOK

A twin (same file name under ``notebooks/zh/``, ``zh/solutions/`` too) keeps the English notebook's code cells byte
for byte and translates its markdown cells. Each Chinese markdown cell records the hash of the English cell it
translates (cell metadata ``course_zh.source_sha``), so ``zh_check`` (part of ``nbtools check``) knows when the
English text moved on. ``zh --write`` pairs the cells by that hash (a sequence alignment, like ``diff``; by cell id
when both notebooks have ids), so inserting or deleting an English cell never shifts the other translations; only
cells inside a changed region are paired by position, and they are the stale ones. See ``sync_twin``. The Chinese
markdown and README_zh-CN.md use the glossary's terms (``zh_terms``).
"""

from __future__ import annotations

import copy
import difflib
import hashlib
import re
import sys
from dataclasses import dataclass
from pathlib import Path

from . import paths, zh_terms
from .nbfiles import KEEP_NOTEBOOK_METADATA, notebook_files, read_nb, staged, write_nb

ZH = "zh"  # the Chinese twins live in notebooks/zh/ (and notebooks/zh/solutions/), under the English file names
ZH_KEY = "course_zh"  # cell metadata: {"source_sha": ..., "untranslated": true}; notebook metadata: {"title", "topics"}
ZH_CMD = "python -m course_utils.nbtools zh"


def cell_text(cell: dict) -> str:
    src = cell.get("source", "")
    return "".join(src) if isinstance(src, list) else src


def source_sha(text: str) -> str:
    """The hash a Chinese markdown cell records of the English cell it translates (trailing whitespace ignored)."""
    return hashlib.sha256(text.rstrip().encode("utf-8")).hexdigest()[:16]


def first_words(text: str, n: int = 8) -> str:
    words = text.split()
    return " ".join(words[:n]) + (" …" if len(words) > n else "")


def english_notebooks(root: Path | None = None) -> list[Path]:
    root = Path(root) if root else paths.notebooks_dir()
    return [p for p in notebook_files(root) if p.relative_to(root).parts[0] != ZH]


def zh_twin(english: Path, root: Path | None = None) -> Path:
    """``notebooks/07_x.ipynb`` → ``notebooks/zh/07_x.ipynb`` (solutions likewise, one level down)."""
    root = Path(root) if root else paths.notebooks_dir()
    return root / ZH / Path(english).resolve().relative_to(root.resolve())


def zh_pairs(root: Path | None = None) -> tuple[list[tuple[Path, Path]], list[Path]]:
    """(English, Chinese) for every English notebook that has a twin, and the English notebooks that have none."""
    pairs, missing = [], []
    for en in english_notebooks(root):
        zh = zh_twin(en, root)
        (pairs.append((en, zh)) if zh.is_file() else missing.append(en))
    return pairs, missing


@dataclass
class ZhNote:
    """One thing about a Chinese twin: ``kind`` is stale, untranslated, new, dropped or code."""

    cell: int
    kind: str
    text: str  # first words of the English cell (of the dropped Chinese cell for "dropped")

    def line(self, name: str) -> str:
        what = {
            "stale": "stale translation, the English cell now reads",
            "untranslated": "not translated yet (English text)",
            "new": "new English cell inserted, to translate",
            "dropped": "translation of a deleted English cell removed",
            "code": "code copied from the English notebook",
        }[self.kind]
        return f"{name}: cell {self.cell}: {what}: “{self.text}”"


def _zh_meta(cell: dict) -> dict:
    return cell.get("metadata", {}).get(ZH_KEY) or {}


def _mark(cell: dict, english: dict, untranslated: bool = False) -> dict:
    meta = {"source_sha": source_sha(cell_text(english))}
    if untranslated:
        meta["untranslated"] = True
    cell.setdefault("metadata", {})[ZH_KEY] = meta
    return cell


def _english_copy(cell: dict) -> dict:
    out = copy.deepcopy(cell)
    if out.get("cell_type") == "code":
        out["outputs"], out["execution_count"] = [], None
    out.get("metadata", {}).pop(ZH_KEY, None)
    return out


def _keys(cells: list[dict], zh: bool, use_ids: bool) -> list:
    keys = []
    for c in cells:
        if use_ids:
            keys.append(c["id"])
        elif c.get("cell_type") == "markdown":
            keys.append(("md", _zh_meta(c).get("source_sha") if zh else source_sha(cell_text(c))))
        else:
            keys.append((c.get("cell_type"), cell_text(c)))
    return keys


def sync_twin(english: dict, chinese: dict) -> tuple[dict, list[ZhNote]]:
    """The Chinese notebook rebuilt on the English one's cells, and what the translator must look at.

    Code cells are the English ones (source, metadata, id). Each English markdown cell gets the Chinese cell that
    translates it, found by aligning the English cells' hashes with the hashes the Chinese cells recorded (or the
    cell ids when both notebooks have them): a translation follows its English cell wherever it moved. Inside a
    changed region, markdown cells pair by position and are *stale*; an English cell with no partner is inserted in
    English and marked untranslated; a Chinese cell whose English cell was deleted is dropped (and reported).
    A Chinese markdown cell is never rewritten, except an untranslated one that still holds the English text.
    """
    en_cells, zh_cells = english["cells"], chinese["cells"]
    use_ids = all("id" in c for c in en_cells + zh_cells) and bool(zh_cells)
    matcher = difflib.SequenceMatcher(
        None, _keys(en_cells, False, use_ids), _keys(zh_cells, True, use_ids), autojunk=False
    )
    partner: dict[int, int] = {}
    orphans: list[int] = []
    for _tag, i1, i2, j1, j2 in matcher.get_opcodes():
        en_md = [i for i in range(i1, i2) if en_cells[i].get("cell_type") == "markdown"]
        zh_md = [j for j in range(j1, j2) if zh_cells[j].get("cell_type") == "markdown"]
        partner.update(zip(en_md, zh_md, strict=False))
        orphans += zh_md[len(en_md) :]
    by_sha = {_zh_meta(zh_cells[j]).get("source_sha"): j for j in orphans}
    cells, notes = [], []
    for i, en in enumerate(en_cells):
        text = cell_text(en)
        if en.get("cell_type") != "markdown":
            cells.append(_english_copy(en))
            continue
        j = partner.get(i)
        if j is None and source_sha(text) in by_sha:  # a translation that moved with its English cell
            j = by_sha.pop(source_sha(text))
            orphans.remove(j)
        if j is None:
            cells.append(_mark(_english_copy(en), en, untranslated=True))
            notes.append(ZhNote(i, "new", first_words(text)))
            continue
        zh = copy.deepcopy(zh_cells[j])
        meta = _zh_meta(zh)
        if meta.get("untranslated") and source_sha(cell_text(zh)) == meta.get("source_sha"):
            zh["source"] = copy.deepcopy(en["source"])  # still the untouched English text: refresh it
            _mark(zh, en, untranslated=True)
        zh.pop("id", None)
        if "id" in en:
            zh["id"] = en["id"]
        cells.append(zh)
        meta = _zh_meta(zh)
        if meta.get("untranslated"):
            notes.append(ZhNote(i, "untranslated", first_words(text)))
        elif meta.get("source_sha") != source_sha(text):
            notes.append(ZhNote(i, "stale", first_words(text)))
    notes += [ZhNote(j, "dropped", first_words(cell_text(zh_cells[j]))) for j in orphans]
    old_code = [cell_text(c) for c in zh_cells if c.get("cell_type") == "code"]
    notes += [
        ZhNote(i, "code", first_words(cell_text(c)))
        for i, c in enumerate(cells)
        if c.get("cell_type") == "code" and cell_text(c) not in old_code
    ]
    out = {k: copy.deepcopy(v) for k, v in english.items()}  # the English key order, cells replaced below
    out["metadata"] = {k: v for k, v in out.get("metadata", {}).items() if k in KEEP_NOTEBOOK_METADATA}
    if ZH_KEY in chinese.get("metadata", {}):
        out["metadata"][ZH_KEY] = copy.deepcopy(chinese["metadata"][ZH_KEY])
    out["cells"] = cells
    return out, notes


def new_twin(english: dict) -> dict:
    """A Chinese twin to translate: the English notebook, every markdown cell marked untranslated."""
    nb = copy.deepcopy(english)
    nb["cells"] = [_english_copy(c) for c in nb["cells"]]
    for c in nb["cells"]:
        if c.get("cell_type") == "markdown":
            _mark(c, c, untranslated=True)
    return nb


def zh_problems(english: dict, chinese: dict, name: str) -> list[str]:
    """Why a Chinese twin is out of step with its English notebook (what ``make test`` fails on); empty if none."""
    en_cells, zh_cells = english.get("cells", []), chinese.get("cells", [])
    write = f"run `{ZH_CMD} --write`"
    en_types = [c.get("cell_type") for c in en_cells]
    zh_types = [c.get("cell_type") for c in zh_cells]
    if en_types != zh_types:
        i = next(
            (k for k, (a, b) in enumerate(zip(en_types, zh_types, strict=False)) if a != b),
            min(len(en_types), len(zh_types)),
        )
        return [
            f"{name}: cell {i}: cells missing or out of order ({len(zh_cells)} cells, the English notebook has "
            f"{len(en_cells)}; cell {i} should be {en_types[i] if i < len(en_types) else 'absent'}): {write}"
        ]
    out = []
    if chinese.get("metadata", {}).get("course") != english.get("metadata", {}).get("course"):
        out.append(f"{name}: notebook metadata `course` differs from the English notebook's: {write}")
    en_md = {source_sha(cell_text(c)): k for k, c in enumerate(en_cells) if c.get("cell_type") == "markdown"}
    for i, (en, zh) in enumerate(zip(en_cells, zh_cells, strict=True)):
        if en.get("id") != zh.get("id") and "id" in en:
            out.append(
                f"{name}: cell {i}: id {zh.get('id')!r} is not the English cell's {en.get('id')!r}: {write}"
            )
        if en.get("cell_type") != "markdown":
            tags = en.get("metadata", {}).get("tags"), zh.get("metadata", {}).get("tags")
            if cell_text(en) != cell_text(zh) or tags[0] != tags[1]:
                out.append(
                    f"{name}: cell {i}: code differs from the English notebook's cell {i} (edited, missing "
                    f"or out of order; code is changed in the English notebook only): {write}"
                )
            continue
        meta, sha, words = _zh_meta(zh), source_sha(cell_text(en)), first_words(cell_text(en))
        accept = f"`{ZH_CMD} --accept {name} {i}`"
        if meta.get("untranslated"):
            out.append(f"{name}: cell {i}: not translated yet (“{words}”): translate it, then {accept}")
        elif not meta.get("source_sha"):
            out.append(
                f"{name}: cell {i}: records no English source: check it against “{words}”, then {accept}"
            )
        elif meta["source_sha"] != sha:
            where = en_md.get(meta["source_sha"])
            why = (
                f"it translates English cell {where} (out of order: {write})"
                if where is not None
                else "stale"
            )
            out.append(
                f"{name}: cell {i}: {why}; the English cell now reads “{words}”: update the translation, "
                f"then {accept}"
            )
    return out


def zh_check(root: Path | None = None) -> tuple[list[str], list[str]]:
    """(problems, warnings) of the Chinese edition: problems fail ``make test``, warnings (no twin yet) do not.

    Both notebooks of a pair are read as git holds them (staged) when both are tracked, else both from disk, so a
    new twin that is not in git yet is compared with the English notebook on disk.
    """
    root = Path(root) if root else paths.notebooks_dir()
    pairs, missing = zh_pairs(root)
    found, links = [], []
    for en, zh in pairs:
        en_nb, zh_nb = staged(en), staged(zh)
        if en_nb is None or zh_nb is None:
            en_nb, zh_nb = read_nb(en), read_nb(zh)
        found += zh_problems(en_nb, zh_nb, _rel(zh, root))
        found += [problem for i, cell in enumerate(zh_nb["cells"]) if cell.get("cell_type") == "markdown"
                  for problem in zh_terms.problems(cell_text(cell), f"{_rel(zh, root)}: cell {i}")]  # fmt: skip
        links += broken_links(zh_nb, zh, root)
    readme = root.parent / "README_zh-CN.md"
    if readme.is_file():
        found += zh_terms.problems(readme.read_text(encoding="utf-8"), readme.name)
    orphans = sorted(set(notebook_files(root / ZH)) - {zh for _, zh in pairs}) if (root / ZH).is_dir() else []
    found += [
        f"{_rel(p, root)}: no English notebook {_rel(root / p.relative_to(root / ZH), root)}" for p in orphans
    ]
    warnings = [
        f"{_rel(en, root)}: not translated yet (no {_rel(zh_twin(en, root), root)}; "
        f"`{ZH_CMD} --new {_rel(en, root)}` starts one)"
        for en in missing
    ]
    return found, warnings + links


def broken_links(chinese: dict, path: Path, root: Path) -> list[str]:
    """Relative notebook links in the markdown of the Chinese notebook ``chinese`` (at ``path``) whose target (a
    Chinese twin) does not exist yet."""
    out = []
    for i, cell in enumerate(chinese["cells"]):
        if cell.get("cell_type") != "markdown":
            continue
        for target in re.findall(r"\]\(([^)\s#]+\.ipynb)\)", cell_text(cell)):
            if "://" not in target and not (path.parent / target).is_file():
                out.append(f"{_rel(path, root)}: cell {i}: links {target}, which has no Chinese twin yet")
    return out


def _rel(path: Path, root: Path) -> str:
    path = Path(path).resolve()
    base = Path(root).resolve().parent
    return str(path.relative_to(base)) if path.is_relative_to(base) else str(path)


def resolve_twin(name: str | Path, root: Path | None = None) -> tuple[Path, Path]:
    """(English, Chinese) paths from either one's path, or from a notebook number such as "07"."""
    root = Path(root) if root else paths.notebooks_dir()
    p = Path(name)
    if not p.suffix:
        hits = sorted(root.glob(f"{name}_*.ipynb"))
        if not hits:
            raise FileNotFoundError(f"no notebook {name}_*.ipynb in {root}")
        p = hits[0]
    p = p if p.is_absolute() else (Path.cwd() / p)
    p = p.resolve()
    zh_root = (root / ZH).resolve()
    if p.is_relative_to(zh_root):
        return root.resolve() / p.relative_to(zh_root), p
    return p, zh_twin(p, root)


def accept(name: str | Path, cells: list[int] | None = None, root: Path | None = None) -> list[int]:
    """Mark Chinese markdown cells as translating the current English text; ``cells=None``: every one that needs it.

    With ``cells=None`` an untranslated cell that still holds the English text is skipped (translate it first).
    Returns the cells accepted. Refuses when the twin is out of step (``zh --write`` first).
    """
    en_path, zh_path = resolve_twin(name, root)
    en, zh = read_nb(en_path), read_nb(zh_path)
    if [c["cell_type"] for c in en["cells"]] != [c["cell_type"] for c in zh["cells"]]:
        raise ValueError(f"{zh_path} is out of step with {en_path}: run `{ZH_CMD} --write` first")
    todo = (
        cells if cells is not None else [i for i, c in enumerate(zh["cells"]) if c["cell_type"] == "markdown"]
    )
    done = []
    for i in todo:
        if not 0 <= i < len(zh["cells"]) or zh["cells"][i]["cell_type"] != "markdown":
            raise ValueError(f"{zh_path}: cell {i} is not a markdown cell")
        e, z = en["cells"][i], zh["cells"][i]
        meta = _zh_meta(z)
        up_to_date = meta.get("source_sha") == source_sha(cell_text(e)) and not meta.get("untranslated")
        if cells is None and (up_to_date or cell_text(z) == cell_text(e)):
            continue
        _mark(z, e)
        done.append(i)
    write_nb(zh_path, zh)
    return done


def zh_command(args) -> int:
    """``python -m course_utils.nbtools zh`` (``args`` from its parser): start twins (``--new``), accept translations
    (``--accept``, ``--accept-all``), or report what is out of step and with ``--write`` bring every twin in step."""
    root = paths.notebooks_dir()
    if args.new:
        for name in args.new:
            en_path = resolve_twin(name, root)[0]
            zh_path = zh_twin(en_path, root)
            if zh_path.exists():
                print(f"{_rel(zh_path, root)} exists already", file=sys.stderr)
                return 1
            write_nb(zh_path, new_twin(read_nb(en_path)))
            print(
                f"{_rel(zh_path, root)}: created; translate its markdown cells, then `{ZH_CMD} --accept-all {name}`"
            )
        return 0
    if args.accept or args.accept_all:
        name, cells = (
            (args.accept[0], [int(c) for c in args.accept[1:]]) if args.accept else (args.accept_all, None)
        )
        done = accept(name, cells, root)
        print(
            f"{_rel(resolve_twin(name, root)[1], root)}: accepted cell(s) {', '.join(map(str, done)) or 'none'}"
        )
        return 0
    pairs, missing = zh_pairs(root)
    pending, links = 0, []
    for en_path, zh_path in pairs:
        chinese = read_nb(zh_path)
        synced, notes = sync_twin(read_nb(en_path), chinese)
        links += broken_links(chinese, zh_path, root)
        name = _rel(zh_path, root)
        for note in notes:
            print(note.line(name))
        pending += sum(n.kind in ("stale", "untranslated", "new") for n in notes)
        if args.write:
            print(f"{name}: {'updated' if write_nb(zh_path, synced) else 'in step'}")
        elif any(n.kind in ("new", "dropped", "code") for n in notes) or synced["cells"] != chinese["cells"]:
            pending += 1
            print(f"{name}: out of step with the English notebook: run `{ZH_CMD} --write`")
    for en in missing:
        print(f"{_rel(en, root)}: not translated yet")
    for line in links:
        print(line)
    print(
        f"Chinese edition: {len(pairs)} twin(s), {len(missing)} notebook(s) not translated yet, "
        f"{pending} thing(s) to do"
    )
    return 0 if args.write or not pending else 1
