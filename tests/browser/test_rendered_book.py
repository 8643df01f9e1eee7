"""Browser check of the rendered book: every page opens in headless Chromium, with no broken
image, no error output in a cell and no broken internal link; a screenshot of each page is
saved under ``_build/screenshots``.

Run after rendering the committed notebooks (``scripts/test.sh`` does both)::

    python scripts/build_book.py --committed --render-only && python -m pytest tests/browser

``LENNA_BOOK_HTML`` points the check at another rendering, for instance ``_build/html`` after
the book command.
"""

from __future__ import annotations

import functools
import http.server
import os
import shutil
import threading
from pathlib import Path
from urllib.parse import unquote, urldefrag, urlparse

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
HTML = Path(os.environ.get("LENNA_BOOK_HTML",
                           ROOT / "_build" / "committed" / "_build" / "html")).resolve()
SHOTS = ROOT / "_build" / "screenshots"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
# Selectors MyST-NB gives outputs that mean a cell failed or wrote to stderr.
ERROR_OUTPUTS = ".output.traceback, .output.error, .output.stderr, .cell_output .traceback"


def expected_pages() -> list[str]:
    """The HTML page of every file in _toc.yml."""
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    files = [toc["root"]]
    for entry in toc.get("chapters", []):
        files.append(entry["file"])
    for part in toc.get("parts", []):
        files += [entry["file"] for entry in part.get("chapters", [])]
    return [f"{Path(f).with_suffix('')}.html" for f in files]


@pytest.fixture(scope="module")
def server():
    if not HTML.is_dir():
        pytest.fail(f"{HTML} does not exist: render the book first "
                    "(python scripts/build_book.py --committed --render-only)")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(HTML))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


@pytest.fixture(scope="module")
def browser():
    playwright = pytest.importorskip("playwright.sync_api")
    if not Path(CHROMIUM).exists():
        pytest.fail("Chromium is missing: apt-get install chromium (scripts/test.sh does)")
    with playwright.sync_playwright() as p:
        instance = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield instance
        instance.close()


def test_every_page_of_the_toc_was_built():
    missing = [page for page in expected_pages() if not (HTML / page).is_file()]
    assert not missing, f"pages in _toc.yml that were not rendered: {missing}"


def _local_target(href: str, page_url: str, base: str) -> tuple[Path, str] | None:
    """(file, fragment) of an internal link, or None for an external one."""
    if not href.startswith(base):
        return None
    path, fragment = urldefrag(href)
    relative = unquote(urlparse(path).path).lstrip("/")
    target = HTML / relative
    if target.is_dir() or relative == "":
        target = target / "index.html"
    return target, fragment


@pytest.mark.parametrize("page", expected_pages())
def test_page_renders_cleanly_in_chromium(page, server, browser):
    tab = browser.new_page(viewport={"width": 1280, "height": 900})
    console_errors: list[str] = []
    tab.on("console", lambda m: console_errors.append(m.text) if m.type == "error" else None)
    remote: list[str] = []  # a reader offline must see the same page: nothing may be fetched
    tab.route("**/*", lambda route: (route.continue_() if route.request.url.startswith(server)
                                     else (remote.append(route.request.url), route.abort())))
    response = tab.goto(f"{server}/{page}", wait_until="load")
    assert response is not None and response.status == 200, f"{page}: HTTP {response.status}"
    tab.wait_for_load_state("networkidle")
    from playwright.sync_api import TimeoutError as PageTimeout  # the fixture imported it
    formulas = tab.evaluate("() => document.querySelectorAll('.math').length")
    typeset = True
    if formulas:  # typeset by the MathJax served with the book, not left as raw TeX
        try:
            tab.wait_for_function("n => document.querySelectorAll('mjx-container').length >= n",
                                  arg=formulas, timeout=20_000)
        except PageTimeout:
            typeset = False
    image_count = tab.evaluate("() => document.images.length")
    broken_images = tab.evaluate(
        "() => Array.from(document.images).filter(i => !i.complete || i.naturalWidth === 0)"
        ".map(i => i.getAttribute('src'))")
    error_outputs = tab.evaluate(
        f"() => Array.from(document.querySelectorAll({ERROR_OUTPUTS!r}))"
        ".map(e => e.innerText.slice(0, 200))")
    links = tab.evaluate("() => Array.from(document.querySelectorAll('a[href]')).map(a => a.href)")
    ids = set(tab.evaluate("() => Array.from(document.querySelectorAll('[id]')).map(e => e.id)"))
    broken_links = []
    for href in set(links):
        target = _local_target(href, f"{server}/{page}", server)
        if target is None:
            continue
        file, fragment = target
        if not file.is_file():
            broken_links.append(href)
        elif fragment and file == (HTML / page) and fragment not in ids:
            broken_links.append(href)
    SHOTS.mkdir(parents=True, exist_ok=True)
    tab.screenshot(path=str(SHOTS / (page.replace(os.sep, "_").replace("/", "_")
                                     .removesuffix(".html") + ".png")), full_page=True)
    tab.close()
    assert not remote, f"{page}: requests beyond the book's own server {sorted(set(remote))}"
    assert typeset, f"{page}: {formulas} formulas left as raw TeX (MathJax did not load)"
    assert not broken_images, f"{page}: broken images {broken_images}"
    if Path(page).name[:2].isdigit():  # every chapter draws figures; none means none rendered
        assert image_count > 0, f"{page}: no images (were the notebooks run headless with Agg?)"
    assert not error_outputs, f"{page}: cells with error output {error_outputs}"
    assert not broken_links, f"{page}: broken internal links {sorted(broken_links)}"
    assert tab.is_closed()
