"""course_utils.site_pages: what an executed notebook becomes as a page of the course website."""

from __future__ import annotations

import pytest

from course_utils import site_pages


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
    twinned = site_pages.twin(english, chinese)
    assert twinned["cells"][1]["outputs"] == [out] and twinned["cells"][0]["source"] == "# 01 · 标题"
    assert chinese["cells"][1]["outputs"] == []  # the input is left as it was
    with pytest.raises(ValueError, match="nbtools zh --write"):
        site_pages.twin(english, notebook(markdown("# 标题"), code("print(43)")))


def test_widgets_become_a_sentence_and_a_widget_cells_picture_stays():
    view = {"output_type": "display_data", "data": {site_pages.WIDGET: {"model_id": "x"}, "text/plain": "w"}}
    picture = {"output_type": "display_data", "data": {"image/png": "iVBOR", "text/plain": "<Figure>"}}
    nb = notebook(code("interact(f, x=1)", [view]), code("import ipywidgets as widgets\nshow()", [picture]))
    site_pages.without_widgets(nb, "zh")
    assert nb["cells"][0]["outputs"][0]["data"] == {"text/markdown": site_pages.WIDGET_NOTE["zh"]}
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
    bar = {
        "output_type": "display_data",
        "data": {site_pages.WIDGET: {"model_id": "box"}, "text/plain": "  0%|"},
    }
    slider = {"output_type": "display_data", "data": {site_pages.WIDGET: {"model_id": "slider"}}}
    english = notebook(code("train()", [bar, slider]))
    english["metadata"]["widgets"] = {"application/vnd.jupyter.widget-state+json": {"state": state}}
    chinese = site_pages.twin(english, notebook(code("train()")))
    saved = site_pages.widget_state(english)
    for nb, lang in ((english, "en"), (chinese, "zh")):
        outputs = site_pages.without_widgets(nb, lang, saved)["cells"][0]["outputs"]
        assert (
            outputs[0]["text"]
            == f"contrastive training: 100%|{'█' * 20}| 1500/1500 [00:21<00:00, 69.53it/s]\n"
        )
        assert outputs[1]["data"] == {"text/markdown": site_pages.WIDGET_NOTE[lang]}
    assert (
        site_pages.progress_bar(state, "slider") is None and site_pages.progress_bar(state, "missing") is None
    )


def test_saved_widget_state_is_dropped_so_no_page_loads_the_widget_scripts():
    nb = notebook(code("x"))
    nb["metadata"]["widgets"] = {"application/vnd.jupyter.widget-state+json": {"state": {"m": {}}}}
    assert "widgets" not in site_pages.without_widgets(nb, "en")["metadata"]


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
    nb = site_pages.without_live_outputs(notebook(code("serve()", [frame, printed, table, web])), "en")
    outputs = nb["cells"][0]["outputs"]
    assert outputs[0]["data"] == {"text/markdown": site_pages.LIVE_NOTE["en"]} == outputs[3]["data"]
    assert outputs[1] == printed and outputs[2] == table


def test_links_to_the_readme_land_on_the_landing_page():
    nb = notebook(
        markdown(
            "see [README_zh-CN](../../README_zh-CN.md)、[README](../README.md#setup) and [04](04_x.ipynb)"
        )
    )
    assert site_pages.readme_links_to_landing(nb, "index.md")["cells"][0]["source"] == (
        "see [README_zh-CN](index.md)、[README](index.md) and [04](04_x.ipynb)"
    )


def test_header_sits_under_the_title_with_the_twin_and_the_download():
    nb = site_pages.header(notebook(markdown("# 03 · LLaVA\n\nbadges"), code("x")), lang="en",
                     twin_doc="zh/03_llava.ipynb", download="downloads/en/03_llava.ipynb", stamp="2026-12-05")  # fmt: skip
    first = nb["cells"][0]["source"]
    assert first.startswith("# 03 · LLaVA\n\n> Executed on the mini track") and first.endswith("badges")
    assert "(zh/03_llava.ipynb)" in first and "downloads/en/03_llava.ipynb" in first and len(nb["cells"]) == 2


def test_links_into_the_other_language_become_html_links_and_others_stay():
    english = ("[中文版](zh/03_llava.ipynb) · [04](04_high_resolution.ipynb) · [README](index.md#setup) · "
               "![fig](../images/x.png) · [web](https://arxiv.org/abs/2304.08485) · [中文](zh/index.md#top)")  # fmt: skip
    assert site_pages.cross_language_links(english, "03_llava.ipynb") == (
        '<a href="zh/03_llava.html">中文版</a> · [04](04_high_resolution.ipynb) · [README](index.md#setup) · '
        '![fig](../images/x.png) · [web](https://arxiv.org/abs/2304.08485) · <a href="zh/index.html#top">中文</a>'
    )
    chinese = "[English](../../solutions/03_llava_solutions.ipynb) · [第 3 课](../03_llava.ipynb)"
    assert site_pages.cross_language_links(chinese, "zh/solutions/03_llava_solutions.ipynb") == (
        '<a href="../../solutions/03_llava_solutions.html">English</a> · [第 3 课](../03_llava.ipynb)'
    )
    assert (
        site_pages.cross_language_links("[English](../index.md)", "zh/index.md")
        == '<a href="../index.html">English</a>'
    )
