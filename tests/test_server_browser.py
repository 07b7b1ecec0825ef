"""The web page in headless Chromium: load it, search, see hits with concept bars, start playback.

Uses Debian's chromium (apt-get install chromium) driven by playwright's Python package; PyPI
playwright's own browser download is not used. Skips with the reason when either is missing.
Set EARMARK_SCREENSHOT=PATH to save a screenshot of the results (docs/web-page.png is made so).
"""
from __future__ import annotations

import os
import shutil
import socket
import threading
import time
from pathlib import Path

import pytest

pytest.importorskip("fastapi", reason="the server extra (fastapi, uvicorn, python-multipart) is not installed")
uvicorn = pytest.importorskip("uvicorn", reason="the server extra (uvicorn) is not installed")
sync_api = pytest.importorskip("playwright.sync_api", reason="pip package 'playwright' is not installed")

CHROMIUM = os.environ.get("EARMARK_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]

pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(),
                                reason=f"no Chromium at {CHROMIUM} (Debian: apt-get install chromium chromium-driver)")


class ServerThread:
    """uvicorn serving ``app`` on a free loopback port in a background thread."""

    def __init__(self, app) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)

    def __enter__(self) -> "ServerThread":
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the test server did not start")
            time.sleep(0.05)
        return self

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
        self.sock.close()


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    from test_server_api import make_library

    from earmark.engine.server import create_app

    lib, _ = make_library(tmp_path_factory.mktemp("browser"))
    with ServerThread(create_app(lib.path, library=lib)) as server:
        yield server


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as p:
        try:
            b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        except Exception as exc:  # a broken or mismatched browser install: say so instead of erroring
            pytest.skip(f"Chromium at {CHROMIUM} does not start under playwright: {exc}")
        yield b
        b.close()


def test_page_searches_shows_concept_bars_and_plays(served, browser):
    page = browser.new_page(viewport={"width": 1100, "height": 1000})
    failed: list[str] = []
    # Media elements abort their own range requests when they seek or pause: not a failure.
    page.on("requestfailed", lambda r: None if "ERR_ABORTED" in (r.failure or "") else failed.append(r.url))
    page.on("pageerror", lambda e: failed.append(f"page error: {e}"))
    page.goto(served.url + "/")
    page.wait_for_function("document.querySelector('#library-status').textContent.includes('sounds')")
    assert "5 sounds" in page.inner_text("#library-status")
    assert "evidence: gradient saliency" in page.inner_text("#library-status")  # a test encoder: no decoder

    # Concept autocompletion offers vocabulary words for a +term.
    page.click("#q")
    page.keyboard.type("+bee")
    page.wait_for_selector("#suggestions li", timeout=5000)
    first = page.inner_text("#suggestions li")
    assert "bee" in first.lower()
    page.keyboard.press("Escape")

    page.fill("#q", "high beep tone")
    page.press("#q", "Enter")
    page.wait_for_selector("#results .hit", timeout=15000)
    hits = page.query_selector_all("#results .hit")
    assert len(hits) >= 1
    assert hits[0].query_selector(".path").inner_text() in ("beep.wav", "sub/stereo.wav")

    bars = hits[0].query_selector_all(".concept-bar")
    assert bars, "the best hit shows no matched-concept bars"
    widths = [b.evaluate("el => el.getBoundingClientRect().width") for b in bars]
    assert max(widths) > 0

    hits[0].query_selector(".play-best").click()
    page.wait_for_function(
        "() => { const a = document.querySelector('#results .hit audio'); return a && !a.paused && a.currentTime > 0; }",
        timeout=15000)
    drawn = hits[0].query_selector(".wave").evaluate(
        "c => { const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;"
        " let n = 0; for (let i = 3; i < d.length; i += 4) if (d[i] > 0) n++; return n; }")
    assert drawn > 100, "the waveform thumbnail was not drawn"

    shot = os.environ.get("EARMARK_SCREENSHOT")
    if shot:
        page.evaluate("document.querySelectorAll('audio').forEach(a => a.pause())")
        page.screenshot(path=shot, full_page=True)
    assert not failed, failed
    page.close()


def test_find_similar_replaces_the_results(served, browser):
    page = browser.new_page()
    page.goto(served.url + "/?q=low+hum")
    page.wait_for_selector("#results .hit", timeout=15000)
    first_path = page.inner_text("#results .hit .path")
    page.click("#results .hit .similar")
    page.wait_for_function("document.querySelector('#query-info').textContent.startsWith('similar to')")
    paths = [el.inner_text() for el in page.query_selector_all("#results .hit .path")]
    assert paths and first_path not in paths  # the sound itself is left out of its similar sounds
    page.close()


def test_unknown_concept_shows_the_error_and_suggestions(served, browser):
    page = browser.new_page()
    page.goto(served.url + "/")
    page.fill("#q", "+zzqqxx")
    page.press("#q", "Enter")
    page.wait_for_selector("#error:not([hidden])", timeout=15000)
    assert "zzqqxx" in page.inner_text("#error")
    page.close()


def screenshot(library: str, out: str, query: str, evidence: bool = True) -> None:
    """Serve ``library``, search ``query`` in the page and save a full-page screenshot to ``out``.

    ``python tests/test_server_browser.py LIBRARY OUT.png "QUERY"`` (docs/web-page.png is made so).
    """
    from earmark.engine.library import Library
    from earmark.engine.server import create_app

    lib = Library(library)
    with ServerThread(create_app(library, library=lib)) as server, sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        page = b.new_page(viewport={"width": 1100, "height": 900})
        page.goto(f"{server.url}/?q={query.replace(' ', '+')}")
        page.wait_for_selector("#results .hit .concept-bar", timeout=120_000)
        page.wait_for_timeout(1500)  # waveforms
        if evidence:
            page.click("#results .hit .show-evidence")
            page.wait_for_selector("#results .hit .evidence img", timeout=180_000)
            page.wait_for_function("document.querySelector('#results .hit .evidence img').complete", timeout=60_000)
        page.screenshot(path=out, full_page=True)
        b.close()


if __name__ == "__main__":
    import sys

    screenshot(sys.argv[1], sys.argv[2], sys.argv[3] if len(sys.argv) > 3 else "church bell ringing")


def test_page_names_the_training_sounds_a_hit_was_ranked_by(tmp_path, browser):
    """With exemplar support (the embedded encoder since v12) the query line says which training
    sounds ranked the hits, and each hit its support term and the nearest of them."""
    from conftest import TEST_VOCAB, write_known_sounds
    from test_exemplar_support import SupportedFakeEncoder

    from earmark.engine.library import Library
    from earmark.engine.server import create_app

    lib = Library.init(tmp_path / "lib", encoder=SupportedFakeEncoder(), vocabulary=str(TEST_VOCAB))
    lib.index([write_known_sounds(tmp_path / "known")])
    with ServerThread(create_app(lib.path, library=lib)) as server:
        page = browser.new_page(viewport={"width": 1100, "height": 900})
        page.goto(server.url + "/")
        page.wait_for_function("document.querySelector('#library-status').textContent.includes('sounds')")
        page.fill("#q", "a thing")
        page.press("#q", "Enter")
        page.wait_for_selector("#results .hit", timeout=15000)
        assert "ranked by nearness to 1 training sound of a hum" in page.inner_text("#query-info")
        first = page.query_selector("#results .hit")
        assert first.query_selector(".path").inner_text() == "hum.flac"
        assert "≈ a hum" in first.query_selector(".score").inner_text()
        page.close()
