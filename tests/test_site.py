"""course_utils.site: the course website (``make site``), and the built site opened in Debian's Chromium.

The unit tests run everywhere. The browser test needs a built site: ``make site-check`` (CI, after ``make site``)
points ``MLLM_COURSE_SITE`` at it; without that variable the test is skipped, and with it nothing may be skipped.
"""

from __future__ import annotations

import functools
import http.server
import os
import shutil
import threading
from pathlib import Path
from urllib.parse import urljoin, urlparse

import pytest

from course_utils import nbtools, site


def notebook(*cells) -> dict:
    return {"cells": list(cells), "metadata": {}, "nbformat": 4, "nbformat_minor": 5}


def code(source, outputs=()) -> dict:
    return {
        "cell_type": "code",
        "source": source,
        "metadata": {},
        "outputs": list(outputs),
        "execution_count": None,
    }


def markdown(source) -> dict:
    return {"cell_type": "markdown", "source": source, "metadata": {}}


def test_twin_takes_the_english_outputs_and_refuses_other_code():
    out = {"output_type": "stream", "name": "stdout", "text": "42\n"}
    english = notebook(markdown("# 01 · Title"), code("print(42)", [out]), markdown("text"))
    chinese = notebook(markdown("# 01 · 标题"), code("print(42)"), markdown("中文"))
    twinned = site.twin(english, chinese)
    assert twinned["cells"][1]["outputs"] == [out] and twinned["cells"][0]["source"] == "# 01 · 标题"
    assert chinese["cells"][1]["outputs"] == []  # the input is left as it was
    with pytest.raises(ValueError, match="nbtools zh --write"):
        site.twin(english, notebook(markdown("# 标题"), code("print(43)")))


def test_widgets_become_a_sentence_and_a_widget_cells_picture_stays():
    view = {"output_type": "display_data", "data": {site.WIDGET: {"model_id": "x"}, "text/plain": "w"}}
    picture = {"output_type": "display_data", "data": {"image/png": "iVBOR", "text/plain": "<Figure>"}}
    nb = notebook(code("interact(f, x=1)", [view]), code("import ipywidgets as widgets\nshow()", [picture]))
    site.without_widgets(nb, "zh")
    assert nb["cells"][0]["outputs"][0]["data"] == {"text/markdown": site.WIDGET_NOTE["zh"]}
    assert (
        nb["cells"][1]["outputs"][0] == picture
        and "JupyterLab" in nb["cells"][1]["outputs"][1]["data"]["text/markdown"]
    )


def test_a_progress_bar_becomes_its_last_saved_text_on_both_pages():
    def model(name, **state):
        return {"model_name": name, "state": state}

    state = {
        "box": model("HBoxModel", children=["IPY_MODEL_l", "IPY_MODEL_b", "IPY_MODEL_r"]),
        "l": model("HTMLModel", value="contrastive\u2007training:\u2007100%"),
        "b": model("FloatProgressModel", value=1500.0, max=1500.0),
        "r": model("HTMLModel", value="\u20071500/1500\u2007[00:21&lt;00:00,\u200769.53it/s]"),
        "slider": model("IntSliderModel", value=3),
    }
    bar = {"output_type": "display_data", "data": {site.WIDGET: {"model_id": "box"}, "text/plain": "  0%|"}}
    slider = {"output_type": "display_data", "data": {site.WIDGET: {"model_id": "slider"}}}
    english = notebook(code("train()", [bar, slider]))
    english["metadata"]["widgets"] = {"application/vnd.jupyter.widget-state+json": {"state": state}}
    chinese = site.twin(english, notebook(code("train()")))
    saved = site.widget_state(english)
    for nb, lang in ((english, "en"), (chinese, "zh")):
        outputs = site.without_widgets(nb, lang, saved)["cells"][0]["outputs"]
        assert (
            outputs[0]["text"]
            == f"contrastive training: 100%|{'█' * 20}| 1500/1500 [00:21<00:00, 69.53it/s]\n"
        )
        assert outputs[1]["data"] == {"text/markdown": site.WIDGET_NOTE[lang]}
    assert site.progress_bar(state, "slider") is None and site.progress_bar(state, "missing") is None


def test_saved_widget_state_is_dropped_so_no_page_loads_the_widget_scripts():
    nb = notebook(code("x"))
    nb["metadata"]["widgets"] = {"application/vnd.jupyter.widget-state+json": {"state": {"m": {}}}}
    assert "widgets" not in site.without_widgets(nb, "en")["metadata"]
    assert "nb_ipywidgets_js = {}" in site.CONF


def test_an_app_served_by_the_kernel_becomes_a_sentence_and_printed_text_stays():
    frame = {"output_type": "display_data", "metadata": {}, "data": {
        "text/html": ['<div><iframe src="http://127.0.0.1:46065/" width="100%">', "</iframe></div>"],
        "text/plain": "<IPython.core.display.HTML object>"}}  # fmt: skip
    printed = {"output_type": "stream", "name": "stdout", "text": "demo running at http://127.0.0.1:46065/\n"}
    table = {
        "output_type": "execute_result",
        "metadata": {},
        "data": {"text/html": "<table><tr><td>1</td></tr>"},
    }
    web = {
        "output_type": "display_data",
        "metadata": {},
        "data": {"text/html": "<img src='//example.org/x.png'>"},
    }
    nb = site.without_live_outputs(notebook(code("serve()", [frame, printed, table, web])), "en")
    outputs = nb["cells"][0]["outputs"]
    assert outputs[0]["data"] == {"text/markdown": site.LIVE_NOTE["en"]} == outputs[3]["data"]
    assert outputs[1] == printed and outputs[2] == table


def test_links_to_the_readme_land_on_the_landing_page():
    nb = notebook(
        markdown(
            "see [README_zh-CN](../../README_zh-CN.md)、[README](../README.md#setup) and [04](04_x.ipynb)"
        )
    )
    assert site.readme_links_to_landing(nb, "index.md")["cells"][0]["source"] == (
        "see [README_zh-CN](index.md)、[README](index.md) and [04](04_x.ipynb)"
    )


def test_header_sits_under_the_title_with_the_twin_and_the_download():
    nb = site.header(notebook(markdown("# 03 · LLaVA\n\nbadges"), code("x")), lang="en",
                     twin_doc="zh/03_llava.ipynb", download="downloads/en/03_llava.ipynb", stamp="2026-12-05")  # fmt: skip
    first = nb["cells"][0]["source"]
    assert first.startswith("# 03 · LLaVA\n\n> Executed on the mini track") and first.endswith("badges")
    assert "(zh/03_llava.ipynb)" in first and "downloads/en/03_llava.ipynb" in first and len(nb["cells"]) == 2


def test_landing_pages_list_the_syllabus_and_the_built_pages():
    built = [Path("00_welcome_and_setup.ipynb"), Path("solutions/00_welcome_and_setup_solutions.ipynb")]
    english, chinese = site.landing("en", "today", built), site.landing("zh", "today", built)
    assert nbtools.syllabus_markdown(link_prefix="", zh_links=True) in english and "(zh/index.md)" in english
    assert "](00_welcome_and_setup.ipynb)" in chinese and "(../index.md)" in chinese  # zh/index.md → zh/00_…
    assert "\n00_welcome_and_setup\n```" in english and "solutions/00_welcome_and_setup_solutions" in chinese


# --- the built site in Chromium ------------------------------------------------------------------------------------

SITE = os.environ.get("MLLM_COURSE_SITE", "").strip()
CHROMIUM = shutil.which("chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--no-first-run", "--disable-sync"]  # fmt: skip


@pytest.fixture(scope="module")
def served():
    if not SITE:
        pytest.skip("no built site: `make site`, then `make site-check` (CI does both)")
    root = Path(SITE)
    assert (root / "index.html").is_file(), (
        f"MLLM_COURSE_SITE={SITE} holds no index.html: run `make site` first"
    )
    assert CHROMIUM, "Debian chromium is needed: `apt-get install -y chromium`"

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    handler = functools.partial(Quiet, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()


def test_every_page_loads_clean_links_resolve_and_languages_pair(served):
    """Crawl from both landing pages: no console error, no failed request, every image drawn, every internal link
    answered; every chapter's language link lands on its twin; each landing page lists the ten chapters."""
    from playwright.sync_api import sync_playwright

    problems, seen, queue = [], set(), [served + "index.html", served + "zh/index.html"]
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        page = browser.new_page()
        page.on(
            "console",
            lambda m: (
                problems.append(f"{page.url}: console {m.type}: {m.text}") if m.type == "error" else None
            ),
        )
        page.on("requestfailed", lambda r: problems.append(f"{page.url}: request failed {r.url}"))
        page.on(
            "response",
            lambda r: problems.append(f"{page.url}: HTTP {r.status} {r.url}") if r.status >= 400 else None,
        )
        while queue:
            url = queue.pop()
            if url in seen:
                continue
            seen.add(url)
            page.goto(url)
            page.wait_for_load_state("load")
            broken = page.eval_on_selector_all(
                "img", "imgs => imgs.filter(i => !i.complete || i.naturalWidth === 0).map(i => i.src)"
            )
            problems += [f"{url}: image not drawn {src}" for src in broken]
            for href in page.eval_on_selector_all("a[href]", "links => links.map(a => a.href)"):
                target = urljoin(url, href).split("#")[0]
                if target.startswith(served) and target.endswith(".html"):
                    queue.append(target)
            path = urlparse(url).path
            name = path.rsplit("/", 1)[-1]
            if name[:2].isdigit():
                label, twin = (
                    ("English", path.replace("/zh/", "/", 1))
                    if "/zh/" in path
                    else (
                        "中文版",
                        path.replace("/", "/zh/", 1)
                        if path.count("/") == 1
                        else path.replace("/solutions/", "/zh/solutions/"),
                    )
                )
                link = page.get_by_role("link", name=label, exact=True).first
                assert urlparse(urljoin(url, link.get_attribute("href"))).path == twin, (url, twin)
            if name == "index.html":
                rows = page.eval_on_selector_all("table tbody tr", "rows => rows.length")
                assert rows == 10, f"{url}: the syllabus lists {rows} chapters, not 10"
        browser.close()
    pages = [u for u in seen if urlparse(u).path.rsplit("/", 1)[-1][:2].isdigit()]
    assert len(pages) >= 40, f"only {len(pages)} notebook pages reached: {sorted(seen)}"
    assert not problems, "\n".join(problems[:40])
