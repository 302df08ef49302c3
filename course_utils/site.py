"""``make site``: the course as a static website, every notebook with its outputs, in English and Chinese.

    python -m course_utils.site build                  # execute at a learner's sizes, then build _build/site/html
    python -m course_utils.site build --sizes ci 00 04 # quicker: CI's sizes, two chapters (and their twins)

Three steps, one command:

1. **Execute** each English notebook (chapters, then worked solutions) once, top to bottom, in a fresh kernel on the
   mini track at a learner's sizes (not CI's smoke sizes), with 2 torch threads and a cold cache of its own, so the
   pages show what a learner's JupyterLab shows. A cell that raises stops the build and names the notebook.
2. **Twin** every Chinese notebook from its English one: the code cells are the same byte for byte (``nbtools zh``
   checks it), so each Chinese page gets the English run's outputs; nothing runs twice. Each page gets a header: the
   track, sizes and date of the run, the link to its twin in the other language, and the notebook to download
   (without outputs, as in the repository). A static page runs nothing: a training progress bar becomes its text in
   the last state the run saved; any other widget, and an app served live by the kernel (07's and 08's Gradio demos),
   becomes a sentence saying it runs in JupyterLab.
3. **Build** the HTML with Sphinx, myst-nb (notebooks as pages, outputs as they were, nothing re-executed) and
   sphinx-book-theme, all from PyPI; MathJax comes from ``sphinx-mathjax-offline``, so a page loads nothing from the
   network. Landing pages hold the syllabus table (``nbtools.syllabus_markdown``, the README's one source).

Why Sphinx + myst-nb rather than Jupyter Book 2: Jupyter Book 2 is a front end to the Node.js ``mystmd`` tool, which
fetches its HTML theme from the network at build time; this builder must work offline with packages alone.
Introduced in README › The course as a website.
"""

from __future__ import annotations

import argparse
import copy
import datetime
import html
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from . import nbtools, paths

WIDGET = "application/vnd.jupyter.widget-view+json"
WIDGET_NOTE = {
    "en": "*An interactive widget: it runs in JupyterLab. Download this notebook and run it to use it.*",
    "zh": "*这里是一个交互式控件，需要在 JupyterLab 中运行：下载本 notebook 并运行即可使用。*",
}
LIVE_NOTE = {
    "en": "*A live app was shown here, served by the notebook's own kernel while it ran (a local web server that "
    "ended with the run). Download this notebook and run it in JupyterLab to use it.*",
    "zh": "*这里原本显示一个实时应用，由运行时的 notebook 内核在本机临时启动的网页服务提供（运行结束后服务已关闭）。"
    "下载本 notebook 并在 JupyterLab 中运行即可使用。*",
}
LIVE = re.compile(
    r"""<(?:iframe|script|img|link)[^>]*?(?:src|href)\s*=\s*["']?(?:https?:)?//""", re.IGNORECASE
)
SIZES = {"learner": {}, "ci": {"COURSE_SMOKE": "1"}}
CLEARED = ("CI", "COURSE_SMOKE", "COURSE_TRACK", "COURSE_SEED", "COURSE_THREADS", "MLLM_COURSE_CACHE",
           "MLLM_COURSE_WORK_DIR")  # fmt: skip


def english_notebooks(root: Path, only: list[str] | None = None) -> list[Path]:
    """The chapters, then their solutions (``only``: chapter ids such as ``["00", "04"]``)."""
    found = sorted(root.glob("[0-9][0-9]_*.ipynb")) + sorted((root / "solutions").glob("[0-9][0-9]_*.ipynb"))
    return [p for p in found if not only or p.name[:2] in only]


def execute(path: Path, out: Path, env: dict[str, str], timeout: int = 3600) -> float:
    """Run ``path`` top to bottom in a fresh kernel with ``env`` added to this process's environment (the notebooks'
    folder as working directory, as in ``make test``); write the executed notebook to ``out``; return the seconds."""
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    nb = nbformat.read(path, as_version=4)
    saved = dict(os.environ)
    os.environ.update(env)
    start = time.perf_counter()
    try:
        NotebookClient(nb, kernel_name="python3", timeout=timeout, allow_errors=False,
                       resources={"metadata": {"path": str(path.parent)}}).execute()  # fmt: skip
    except CellExecutionError as err:
        raise RuntimeError(f"{path.name} failed while building the site:\n{str(err)[-3000:]}") from None
    finally:
        os.environ.clear()
        os.environ.update(saved)
    out.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, out)
    return time.perf_counter() - start


def _text(source) -> str:
    return source if isinstance(source, str) else "".join(source)


def twin(english: dict, chinese: dict) -> dict:
    """The Chinese notebook with the executed English notebook's outputs in its code cells (same code, same order)."""
    out = copy.deepcopy(chinese)
    en_code = [c for c in english["cells"] if c["cell_type"] == "code"]
    zh_code = [c for c in out["cells"] if c["cell_type"] == "code"]
    if [_text(c["source"]) for c in en_code] != [_text(c["source"]) for c in zh_code]:
        raise ValueError("the Chinese twin's code differs from the English notebook: run `python -m course_utils."
                         "nbtools zh --write` first")  # fmt: skip
    for en, zh in zip(en_code, zh_code, strict=True):
        zh["outputs"], zh["execution_count"] = copy.deepcopy(en.get("outputs", [])), en.get("execution_count")
    return out


def widget_state(nb: dict) -> dict:
    """The widgets' last state that the execution saved in the notebook's metadata (model id → model)."""
    saved = nb.get("metadata", {}).get("widgets", {})
    return saved.get("application/vnd.jupyter.widget-state+json", {}).get("state", {})


def progress_bar(state: dict, model_id: str, width: int = 20) -> str | None:
    """tqdm's notebook bar (an HBox of text, FloatProgress, text) as text, in the last state the run saved, e.g.
    ``contrastive training: 100%|████████████████████| 1500/1500 [00:21<00:00, 69.53it/s]``; None for any other
    widget."""
    children = state.get(model_id, {}).get("state", {}).get("children", [])
    parts = [state.get(child.removeprefix("IPY_MODEL_"), {}) for child in children]
    if [part.get("model_name") for part in parts] != ["HTMLModel", "FloatProgressModel", "HTMLModel"]:
        return None
    left, bar, right = (part.get("state", {}) for part in parts)
    done = min(1.0, bar.get("value", 0) / bar["max"]) if bar.get("max") else 0.0
    filled = "█" * round(done * width) + " " * (width - round(done * width))
    text = f"{left.get('value', '')}|{filled}|{right.get('value', '')}"
    return html.unescape(text).replace("\u2007", " ")


def _replace_outputs(nb: dict, replacement) -> None:
    """Each output for which ``replacement(output)`` gives a new output is swapped for it, in place."""
    for cell in nb["cells"]:
        outputs = cell.get("outputs", [])
        for i, output in enumerate(outputs):
            outputs[i] = replacement(output) or output


def _note(text: str) -> dict:
    return {"output_type": "display_data", "metadata": {}, "data": {"text/markdown": text}}


def without_widgets(nb: dict, lang: str, state: dict | None = None) -> dict:
    """Widget outputs made static. A progress bar becomes its text in the last state the run saved (``state``, by
    default the notebook's own, see :func:`widget_state`); any other widget becomes a sentence that it runs in
    JupyterLab (a static page cannot run it). A cell that builds widgets but showed only their first picture (what a
    kernel without a browser displays) keeps the picture, with the sentence after it."""
    state = widget_state(nb) if state is None else state

    def static(output):
        if WIDGET not in output.get("data", {}):
            return None
        text = progress_bar(state, output["data"][WIDGET].get("model_id", ""))
        return (
            {"output_type": "stream", "name": "stdout", "text": text + "\n"}
            if text
            else _note(WIDGET_NOTE[lang])
        )

    for cell in nb["cells"]:
        if cell["cell_type"] == "code" and "ipywidgets" in _text(cell["source"]):
            if not any(WIDGET in output.get("data", {}) for output in cell["outputs"]):
                cell["outputs"].append(_note(WIDGET_NOTE[lang]))
    _replace_outputs(nb, static)
    nb.get("metadata", {}).pop("widgets", None)  # saved widget state makes myst-nb load ipywidgets from a CDN
    return nb


def without_live_outputs(nb: dict, lang: str) -> dict:
    """Each HTML output that loads something from a server (Gradio's ``<iframe src="http://127.0.0.1:PORT/">``, or
    anything from the web) replaced by a sentence: the server lived only as long as the run, and a page of this site
    loads nothing from the network. The cell's printed text (the URL, the answers) stays."""
    _replace_outputs(
        nb,
        lambda output: (
            _note(LIVE_NOTE[lang])
            if LIVE.search(_text(output.get("data", {}).get("text/html", "")))
            else None
        ),
    )
    return nb


README_LINK = re.compile(r"\]\((?:\.\./)+README(?:_zh-CN)?\.md(?:#[^)]*)?\)")


def readme_links_to_landing(nb: dict, landing_doc: str) -> dict:
    """Links to the repository's README (outside the site) pointed at the landing page, which holds the same syllabus."""
    for cell in nb["cells"]:
        if cell["cell_type"] == "markdown":
            cell["source"] = README_LINK.sub(f"]({landing_doc})", _text(cell["source"]))
    return nb


def header(nb: dict, *, lang: str, twin_doc: str, download: str, stamp: str) -> dict:
    """A line under the title: how the outputs were made, the other language, the notebook to download."""
    if lang == "en":
        text = (f"> Executed on the mini track, CPU, {stamp}. · [中文版]({twin_doc}) · "
                f"{{download}}`Download this notebook <{download}>` (no outputs) to run it yourself.")  # fmt: skip
    else:
        text = (f"> 本页输出来自 mini 路线、CPU、{stamp}。 · [English]({twin_doc}) · "
                f"{{download}}`下载本 notebook <{download}>`（不含输出），自己运行。")  # fmt: skip
    title = nb["cells"][0]
    first, _, rest = _text(title["source"]).partition("\n")
    title["source"] = f"{first}\n\n{text}\n{rest}"  # right under the title, above everything else
    return nb


CONF = """# Generated by course_utils.site: Sphinx configuration of the course website.
project = "MLLM course"
author = "the course authors"
extensions = ["myst_nb", "sphinx-mathjax-offline"]  # MathJax 3 copied into the site: nothing from a CDN
html_theme = "sphinx_book_theme"
html_title = "MLLM course · 多模态大模型课程"
html_theme_options = {"show_toc_level": 2, "use_download_button": False, "use_fullscreen_button": False}
html_favicon = "favicon.svg"  # without one, every page's automatic /favicon.ico request is a 404 in the console
html_context = {"default_mode": "light"}  # pydata-sphinx-theme logs a console error when no mode is set
nb_ipywidgets_js = {}  # no widget runs on a static page, and their scripts would come from a CDN
nb_execution_mode = "off"  # the notebooks were executed by course_utils.site; nothing runs again here
myst_enable_extensions = ["dollarmath", "colon_fence"]
suppress_warnings = ["mystnb.unknown_mime_type", "misc.highlighting_failure"]
exclude_patterns = ["downloads/**"]
"""


FAVICON = ('<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 32 32"><rect width="32" height="32" rx="6" '
           'fill="#2a6f97"/><text x="16" y="22" font-size="16" text-anchor="middle" fill="white" '
           'font-family="sans-serif">M</text></svg>')  # fmt: skip


def landing(lang: str, stamp: str, built: list[Path]) -> str:
    """The index page of one language: what the site is, the syllabus, and the hidden tables of contents of the
    ``built`` notebooks (paths relative to notebooks/)."""
    stems = [p.stem for p in built if len(p.parts) == 1]
    solutions = [p.stem for p in built if p.parts[0] == "solutions"]
    if lang == "en":
        head = ("# MLLM course: from alignment to deploying and fine-tuning InternVL2\n\n"
                "Every chapter is a Jupyter notebook, shown here with the outputs of one run on the mini track, CPU, "
                f"{stamp}. To run them, clone the repository and `make lab`. [中文版](zh/index.md)\n\n"
                "## Syllabus\n\n" + nbtools.syllabus_markdown(link_prefix="", zh_links=True))  # fmt: skip
        toc = [("Chapters", stems), ("Worked solutions", [f"solutions/{s}" for s in solutions]),
               ("中文", ["zh/index"])]  # fmt: skip
    else:
        head = ("# 多模态大模型课程：从特征对齐到 InternVL2 的部署与微调\n\n"
                f"每一课都是一个 Jupyter notebook，这里展示的是在 mini 路线、CPU 上运行一次的输出（{stamp}）。"
                "要自己运行，请克隆仓库后执行 `make lab`。 [English](../index.md)\n\n"
                "## 课程大纲\n\n" + nbtools.syllabus_markdown_zh(link_prefix="../").replace("(../zh/", "("))  # fmt: skip
        toc = [("章节", stems), ("参考答案", [f"solutions/{s}" for s in solutions])]
    trees = "".join(f"\n\n```{{toctree}}\n:hidden:\n:caption: {caption}\n\n" + "\n".join(docs) + "\n```"
                    for caption, docs in toc)  # fmt: skip
    return head + trees + "\n"


def build(out: Path, *, sizes: str = "learner", threads: int = 2, only: list[str] | None = None) -> Path:
    """Execute, twin and build (see the module docstring); returns the HTML folder."""
    root = paths.notebooks_dir()
    if root is None:
        raise FileNotFoundError(
            "the site is built from a clone of the course repository (no notebooks/ folder here)"
        )
    started = time.perf_counter()
    today = datetime.date.today().isoformat()
    stamp = {"en": f"{today}, {'a learner' if sizes == 'learner' else 'CI'}'s sizes",
             "zh": f"{'学习者的规模' if sizes == 'learner' else 'CI 的冒烟规模'}，{today} 运行"}  # fmt: skip
    src = out / "src"
    shutil.rmtree(src, ignore_errors=True)
    with tempfile.TemporaryDirectory(prefix="mllm-site-") as tmp:
        env = {"COURSE_TRACK": "mini", "COURSE_THREADS": str(threads), "MLLM_COURSE_CACHE": f"{tmp}/cache",
               "MLLM_COURSE_WORK_DIR": f"{tmp}/work", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
               **SIZES[sizes]}  # fmt: skip
        for var in CLEARED:
            if var not in env:
                os.environ.pop(var, None)
        for path in english_notebooks(root, only):
            rel = path.relative_to(root)
            seconds = execute(path, src / rel, env)
            print(f"executed {rel} in {seconds:.0f} s", flush=True)
    for path in english_notebooks(root, only):
        rel = path.relative_to(root)
        up = "../" * (
            len(rel.parts) - 1
        )  # from the page's folder to the site's root (English) or zh/ (Chinese)
        english = json.loads((src / rel).read_text(encoding="utf-8"))
        chinese = json.loads((root / "zh" / rel).read_text(encoding="utf-8"))
        zh_nb = twin(english, chinese)  # its own copy of the outputs, made offline below in Chinese
        state = widget_state(english)  # the English run's widgets, for both pages
        for lang, nb, dst in (("en", english, src / rel), ("zh", zh_nb, src / "zh" / rel)):
            without_live_outputs(without_widgets(nb, lang, state), lang)
            if lang == "en":
                download, other = f"{up}downloads/en/{rel.as_posix()}", f"{up}zh/{rel.as_posix()}"
            else:
                download, other = f"{up}../downloads/zh/{rel.as_posix()}", f"{up}../{rel.as_posix()}"
            header(nb, lang=lang, twin_doc=other, download=download, stamp=stamp[lang])
            readme_links_to_landing(nb, f"{up}index.md")
            dst.parent.mkdir(parents=True, exist_ok=True)
            dst.write_text(json.dumps(nb, ensure_ascii=False, indent=1), encoding="utf-8")
            plain = root / rel if lang == "en" else root / "zh" / rel
            (src / "downloads" / lang / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(plain, src / "downloads" / lang / rel)
    (src / "conf.py").write_text(CONF, encoding="utf-8")
    (src / "favicon.svg").write_text(FAVICON, encoding="utf-8")
    built = [p.relative_to(root) for p in english_notebooks(root, only)]
    (src / "index.md").write_text(landing("en", stamp["en"], built), encoding="utf-8")
    (src / "zh").mkdir(exist_ok=True)
    (src / "zh" / "index.md").write_text(landing("zh", stamp["zh"], built), encoding="utf-8")
    html_dir = out / "html"
    shutil.rmtree(html_dir, ignore_errors=True)
    subprocess.run([sys.executable, "-m", "sphinx", "-b", "html", "-q", str(src), str(html_dir)], check=True)
    minutes = (time.perf_counter() - started) / 60
    print(f"site built in {minutes:.1f} min: open {html_dir / 'index.html'} "
          f"(or `python -m http.server -d {html_dir}` and http://127.0.0.1:8000)")  # fmt: skip
    return html_dir


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m course_utils.site", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    b = sub.add_parser("build", help="execute every notebook, then build the HTML site")
    b.add_argument("only", nargs="*", help="chapter ids to build (default: all)")
    b.add_argument("--out", default=None, help="output folder (default: _build/site in the repository)")
    b.add_argument("--sizes", choices=sorted(SIZES), default="learner")
    b.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    out = Path(args.out) if args.out else paths.repo_root() / "_build" / "site"
    build(out, sizes=args.sizes, threads=args.threads, only=args.only or None)
    return 0


if __name__ == "__main__":
    sys.exit(main())
