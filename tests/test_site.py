"""course_utils.site: the course website (``make site``), and the built site opened in Debian's Chromium (the pages'
contents: tests/test_site_pages.py).

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
from urllib.parse import quote, urljoin, urlparse

import pytest

from course_utils import site, syllabus


def test_landing_pages_list_the_syllabus_and_the_built_pages():
    built = [Path("00_welcome_and_setup.ipynb"), Path("solutions/00_welcome_and_setup_solutions.ipynb")]
    english, chinese = site.landing("en", "today", built), site.landing("zh", "today", built)
    assert syllabus.syllabus_markdown(link_prefix="", zh_links=True) in english and "(zh/index.md)" in english
    assert "](00_welcome_and_setup.ipynb)" in chinese and "(../index.md)" in chinese  # zh/index.md → zh/00_…
    assert "\n00_welcome_and_setup\n```" in english and "solutions/00_welcome_and_setup_solutions" in chinese


def test_each_language_is_its_own_sphinx_project_in_its_language():
    english, chinese = site.conf("en"), site.conf("zh")
    assert 'language = "en"' in english and '"zh/**"' in english  # the Chinese pages are not English pages
    assert 'language = "zh_CN"' in chinese and '"zh/**"' not in chinese
    for text in (english, chinese):
        compile(text, "conf.py", "exec")
        assert "nb_ipywidgets_js = {}" in text and 'nb_execution_mode = "off"' in text


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
    answered; every page is in its language (the theme's words); every chapter's language link lands on its twin;
    each landing page lists the ten chapters."""
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
        page.on("pageerror", lambda e: problems.append(f"{page.url}: script error {e}"))
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
            lang = page.evaluate("document.documentElement.lang")
            if not lang.startswith("zh" if path.startswith("/zh/") else "en"):
                problems.append(
                    f"{url}: the page's language is {lang!r}, its theme's words would be the wrong ones"
                )
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


def test_search_finds_pages_in_each_language(served):
    """The search page of each site answers a query in its language (a Chinese word is indexed with jieba) without a
    script error (Sphinx 9.0's Chinese search names a stemmer it does not ship: site.fix_chinese_search)."""
    from playwright.sync_api import sync_playwright

    errors, found = [], {}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        page = browser.new_page()
        page.on("pageerror", lambda e: errors.append(f"{page.url}: {e}"))
        for path, query in (
            ("search.html", "alignment"),
            ("zh/search.html", "对齐"),
            ("zh/search.html", "LoRA"),
        ):
            page.goto(f"{served}{path}?q={quote(query)}")
            page.wait_for_selector("#search-results p", timeout=20_000)
            found[query] = page.locator("#search-results li").count()
        browser.close()
    assert not errors, errors
    assert all(n >= 1 for n in found.values()), found


def test_the_chinese_search_uses_the_stemmer_it_ships(tmp_path):
    language_data = tmp_path / "language_data.js"
    language_data.write_text(
        "var EnglishStemmer=function(){};\nwindow.Stemmer = ChineseStemmer;", encoding="utf-8"
    )
    site.fix_chinese_search(language_data)
    assert language_data.read_text(encoding="utf-8").endswith("window.Stemmer = EnglishStemmer;")
