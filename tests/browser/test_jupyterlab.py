"""JupyterLab as ``scripts/lab.sh`` starts it, driven in headless Chromium after a book build.

A scratch copy of the project is built first (chapter 00 with ``--refresh-reference``, so its
notebook is newer than its ``.py``, as after a developer's build). Then every chapter opens
from its ``.py`` and from its ``.ipynb`` on double-click without an error dialog, one chapter
runs its first cells with a changed parameter and is saved, its pair stays in sync and no
other file changes; no request leaves localhost. Screenshots go to ``_build/screenshots``.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from urllib.parse import urlparse

import jupytext
import pytest

ROOT = Path(__file__).resolve().parents[2]
SHOTS = ROOT / "_build" / "screenshots"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHAPTERS = sorted(p.name for p in (ROOT / "book").glob("[0-9][0-9]_*.py"))
COPIED = ("book", "data", "figures", "benchmarks", "scripts", "_config.yml", "_toc.yml")
# What JupyterLab and Python write beside the files they open (all ignored by .gitignore).
UNTRACKED = {"_build", ".ipynb_checkpoints", "__pycache__", ".virtual_documents", "runs"}
EDITED = "00_search_space"


def snapshot(folder: Path) -> dict[str, str]:
    """sha256 of every file under ``folder`` that is not JupyterLab's or Python's own."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*"))
            if p.is_file() and not UNTRACKED & set(p.relative_to(folder).parts)}


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    scratch = tmp_path_factory.mktemp("lab") / "project"
    for name in COPIED:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, scratch / name,
                            ignore=shutil.ignore_patterns(*UNTRACKED))
        else:
            shutil.copy2(source, scratch / name)
    build = subprocess.run(
        [sys.executable, str(scratch / "scripts" / "build_book.py"), "--only", "00",
         "--refresh-reference", "--no-render"], capture_output=True, text=True, timeout=600)
    assert build.returncode == 0, build.stdout[-2000:] + build.stderr[-2000:]
    notebook, text = (scratch / "book" / f"{EDITED}{s}" for s in (".ipynb", ".py"))
    assert notebook.stat().st_mtime > text.stat().st_mtime + 1, "the build refreshed nothing"
    return scratch


@pytest.fixture(scope="module")
def lab(project, tmp_path_factory):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    token = secrets.token_hex(16)
    log = (tmp_path_factory.mktemp("lab-log") / "jupyterlab.log").open("w")
    server = subprocess.Popen(
        ["bash", str(ROOT / "scripts" / "lab.sh"), "--no-browser", f"--port={port}",
         "--ServerApp.ip=127.0.0.1", f"--IdentityProvider.token={token}",
         f"--ServerApp.root_dir={project}"],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while True:  # poll until the server answers; the test never asserts on elapsed time
        try:
            urllib.request.urlopen(f"{url}/api/status?token={token}", timeout=5)
            break
        except OSError:
            if server.poll() is not None or time.monotonic() > deadline:
                os.killpg(server.pid, signal.SIGTERM)
                pytest.fail(f"JupyterLab did not start; see {log.name}")
            time.sleep(0.5)
    yield url, token
    os.killpg(server.pid, signal.SIGTERM)
    server.wait(timeout=30)
    log.close()


@pytest.fixture(scope="module")
def page(lab):
    playwright = pytest.importorskip("playwright.sync_api")
    if not Path(CHROMIUM).exists():
        pytest.fail("Chromium is missing: apt-get install chromium (scripts/test.sh does)")
    url, token = lab
    outside: list[str] = []

    def local_only(route):
        if urlparse(route.request.url).hostname in ("127.0.0.1", "localhost"):
            route.continue_()
        else:
            outside.append(route.request.url)
            route.abort()

    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        tab = browser.new_page(viewport={"width": 1400, "height": 900})
        tab.route("**/*", local_only)
        tab.goto(f"{url}/lab/tree/book?token={token}")
        tab.wait_for_selector(".jp-DirListing-item", timeout=60_000)
        yield tab
        browser.close()
    assert not outside, f"JupyterLab requested pages outside localhost: {outside[:5]}"


def _close_everything(tab, url: str, token: str) -> None:
    """Close every open document and shut down its kernel, so that 16 opens start no 16."""
    tab.keyboard.press("Escape")
    tab.evaluate("() => document.activeElement && document.activeElement.blur()")
    for tab_close in tab.query_selector_all(".lm-DockPanel .lm-TabBar-tabCloseIcon"):
        tab_close.click()
        if tab.query_selector(".jp-Dialog"):  # "save changes?" on an unsaved notebook
            tab.click(".jp-Dialog .jp-mod-warn")
    sessions = json.load(urllib.request.urlopen(f"{url}/api/sessions?token={token}"))
    for session in sessions:
        request = urllib.request.Request(f"{url}/api/sessions/{session['id']}?token={token}",
                                         method="DELETE")
        urllib.request.urlopen(request)


def _open_by_double_click(tab, name: str) -> None:
    # The item's title starts with "Name: <name>" and a newline (\\a in CSS); names are cut short
    # on screen, so the title is the exact handle.
    tab.locator(f'.jp-DirListing-item[title^="Name: {name}\\a "]').dblclick()


@pytest.mark.parametrize("suffix", [".py", ".ipynb"])
@pytest.mark.parametrize("chapter", CHAPTERS, ids=lambda n: n[:2])
def test_chapter_opens_as_a_notebook_after_a_build(page, lab, chapter, suffix):
    url, token = lab
    name = chapter.removesuffix(".py") + suffix
    cells = len(jupytext.read(ROOT / "book" / chapter).cells)
    _open_by_double_click(page, name)
    # Loaded when the panel holds every cell of the chapter, or failed when a dialog shows.
    page.wait_for_function(
        "n => document.querySelector('.jp-Dialog') || document.querySelectorAll("
        "'.jp-NotebookPanel:not(.lm-mod-hidden) .jp-Cell').length === n", arg=cells,
        timeout=60_000)
    dialog = page.locator(".jp-Dialog")
    assert dialog.count() == 0, f"{name} did not open: {dialog.inner_text()[:1500]}"
    title = page.locator(".lm-DockPanel .lm-TabBar-tab.lm-mod-current").inner_text()
    assert name in title
    if name == f"{EDITED}.py":
        SHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SHOTS / f"lab-{EDITED}-py.png"))
    _close_everything(page, url, token)


def test_edit_run_save_keeps_the_pair_in_sync(page, lab, project):
    url, token = lab
    before = snapshot(project)
    source = project / "book" / f"{EDITED}.py"
    assert "search_C = 8\n" in source.read_text()
    _open_by_double_click(page, source.name)
    cells = page.locator(".jp-NotebookPanel:visible .jp-CodeCell")
    cells.first.wait_for(timeout=60_000)
    page.locator(".jp-Notebook-ExecutionIndicator[data-status='idle']").wait_for(
        timeout=120_000)
    # The parameters cell is the first code cell; search_C is its second line.
    cells.nth(0).locator(".cm-content").click()
    page.keyboard.press("Control+Home")
    page.keyboard.press("ArrowDown")
    page.keyboard.press("End")
    page.keyboard.press("Backspace")
    page.keyboard.insert_text("6")
    for _ in range(3):  # parameters, imports and set-up, the supernet built with search_C
        page.keyboard.press("Shift+Enter")
    supernet_output = cells.nth(2).locator(".jp-OutputArea-output")
    supernet_output.first.wait_for(timeout=180_000)
    assert "weight parameters" in supernet_output.first.inner_text()
    page.keyboard.press("Control+s")
    page.locator(".lm-DockPanel .lm-TabBar-tab.lm-mod-current.jp-mod-dirty").wait_for(
        state="detached", timeout=60_000)
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"lab-{EDITED}-edited.png"))
    _close_everything(page, url, token)

    assert "search_C = 6\n" in source.read_text()
    diff = subprocess.run([sys.executable, "-m", "jupytext", "--diff", str(source),
                           str(source.with_suffix(".ipynb"))], capture_output=True, text=True)
    assert diff.returncode == 0 and diff.stdout.strip() == "", diff.stdout[:2000]
    after = snapshot(project)
    changed = sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))
    assert changed == [f"book/{EDITED}.ipynb", f"book/{EDITED}.py"], changed
