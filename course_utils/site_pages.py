"""What a notebook becomes as a page of the course website (``course_utils.site`` builds the site from them).

A static page runs nothing, and each language is its own Sphinx project, so an executed notebook is changed here
before Sphinx sees it: the Chinese twin takes the English run's outputs (:func:`twin`); a training progress bar
becomes its text in the last state the run saved, any other widget a sentence (:func:`without_widgets`); an app
served live by the kernel becomes a sentence (:func:`without_live_outputs`); links to the README land on the landing
page, links into the other language become HTML links (:func:`cross_language_links`); a line under the title says
how the outputs were made (:func:`header`). Introduced in README › The course as a website.
"""

from __future__ import annotations

import copy
import html
import posixpath
import re

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


MD_LINK = re.compile(r"(?<!!)\[([^\]]*)\]\(([^)\s]+)\)")


def _language(site_path: str) -> str:
    return "zh" if site_path.split("/", 1)[0] == "zh" else "en"


def cross_language_links(markdown: str, page: str) -> str:
    """Markdown links from ``page`` (its path in the site, as in notebooks/: ``03_llava.ipynb``, ``zh/index.md``) to
    a page of the other language, as HTML links to the built page: the two languages are separate Sphinx projects,
    so Sphinx cannot resolve such a link, and the HTML folders mirror notebooks/ (``zh/03_llava.html``)."""

    def link(match: re.Match) -> str:
        text, target = match.groups()
        path, _, anchor = target.partition("#")
        stem, ext = posixpath.splitext(path)
        if re.match(r"^[a-z][a-z0-9+.-]*:|^/", target) or ext not in (".ipynb", ".md"):
            return match.group(0)
        resolved = posixpath.normpath(posixpath.join(posixpath.dirname(page), path))
        if resolved.startswith("..") or _language(resolved) == _language(page):
            return match.group(0)
        return f'<a href="{stem}.html{"#" + anchor if anchor else ""}">{text}</a>'

    return MD_LINK.sub(link, markdown)


def with_cross_language_links(nb: dict, page: str) -> dict:
    """:func:`cross_language_links` applied to every markdown cell of the notebook at ``page``."""
    for cell in nb["cells"]:
        if cell["cell_type"] == "markdown":
            cell["source"] = cross_language_links(_text(cell["source"]), page)
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
