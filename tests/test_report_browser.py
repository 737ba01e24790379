"""The reports in a real browser: headless Chromium (Debian's ``chromium``) opens each report
from disk with networking disabled; no request may fail, none may leave the file, no console
error, every image decodes. Screenshots are kept (set ``BIDS_FACEDECODE_SCREENSHOTS`` to a
folder to collect them as CI artifacts). Skips when no Chromium is installed."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from browser.cdp import Browser, find_chromium
from PIL import Image

pytestmark = pytest.mark.skipif(find_chromium() is None, reason="chromium is not installed")


@pytest.fixture(scope="module")
def shots_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("screenshots")


@pytest.fixture(scope="module")
def browser():
    with Browser() as b:
        yield b


def _keep(shot: Path) -> None:
    dest = os.environ.get("BIDS_FACEDECODE_SCREENSHOTS")
    if dest:
        Path(dest).mkdir(parents=True, exist_ok=True)
        shutil.copy2(shot, Path(dest) / shot.name)


def _check_page(page, shot: Path) -> None:
    assert page.failed == [], page.failed
    foreign = [u for u in page.requests if not u.startswith(("file:", "data:"))]
    assert foreign == [], foreign
    assert page.console_errors == [], page.console_errors
    n_images = page.evaluate("document.images.length")
    decoded = page.evaluate("Array.from(document.images).filter(i => i.complete && i.naturalWidth > 0).length")
    assert n_images > 0 and decoded == n_images
    with Image.open(shot) as im:
        px = np.asarray(im.convert("L"), dtype=np.float32)
    assert px.shape[1] == 1280 and px.shape[0] > 2000        # the whole page, not a blank viewport
    assert px.std() > 20                                      # something is drawn


@pytest.mark.parametrize("name", ["sub-01.html", "sub-02.html", "group.html"])
def test_report_opens_offline(app_run, shots_dir, browser, name):
    page = browser.open(app_run / name)
    shot = page.screenshot(shots_dir / name.replace(".html", ".png"))
    _keep(shot)
    _check_page(page, shot)
    title = page.evaluate("document.title")
    assert ("sub-" in title) if name.startswith("sub-") else ("Group report" in title)


def test_group_links_open_participant_reports(app_run, browser):
    page = browser.open(app_run / "group.html")
    hrefs = page.evaluate("Array.from(document.querySelectorAll('a[href$=\".html\"]')).map(a => a.href)")
    assert hrefs and all(h.startswith("file://") for h in hrefs)
    for h in set(hrefs):
        assert Path(h[len("file://"):]).is_file()


def test_browser_check_catches_offenders(tmp_path, browser):
    """Control: a page that loads from another host, misses a local file and logs an error
    is caught by the same checks."""
    bad = tmp_path / "bad.html"
    bad.write_text('<!DOCTYPE html><html><head><link rel="icon" href="data:,"></head><body>'
                   '<img src="http://example.org/face.png"><img src="missing.png">'
                   '<script>console.error("boom")</script></body></html>')
    page = browser.open(bad)
    assert any(u.startswith("http://example.org") for u in page.requests)
    assert len(page.failed) >= 2
    assert any("boom" in e for e in page.console_errors)
