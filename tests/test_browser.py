"""End to end: `streamlit run app.py` loaded in headless Chromium (Debian's `chromium`).

Checks that the title, a plotly chart and a table render on the default page, and saves a
screenshot: to docs/screenshot.png when PLANNER_UPDATE_SCREENSHOT=1, else to a temp folder.
Then drives the Plan page as a user would: "I have 256 devices" in the Options, and a sweep of
the sequence length, each answered without an error.
Run with `pytest -m browser tests/test_browser.py`.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

CHROMIUM = Path(os.environ.get("PLANNER_CHROMIUM", "/usr/bin/chromium"))
ROOT = Path(__file__).resolve().parents[1]
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
START_TIMEOUT_S = 60
RENDER_TIMEOUT_MS = 90_000

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason=f"no Chromium at {CHROMIUM} "
                       "(apt-get install chromium)"),
]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_healthy(url: str, proc: subprocess.Popen) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"streamlit exited early with status {proc.returncode}")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as resp:
                if resp.status == 200:
                    return
        except OSError:
            time.sleep(0.3)
    raise TimeoutError(f"streamlit did not answer at {url} within {START_TIMEOUT_S} s")


@pytest.fixture(scope="module")
def app_url(tmp_path_factory):
    port = _free_port()
    log = tmp_path_factory.mktemp("streamlit") / "server.log"
    cmd = [sys.executable, "-m", "streamlit", "run", str(ROOT / "app.py"),
           "--server.headless", "true", "--server.port", str(port),
           "--server.address", "127.0.0.1", "--browser.gatherUsageStats", "false",
           "--server.fileWatcherType", "none", "--client.toolbarMode", "viewer"]
    with log.open("w") as out:
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
        try:
            url = f"http://127.0.0.1:{port}"
            _wait_healthy(url, proc)
            yield url
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _screenshot_path(tmp_path: Path) -> Path:
    if os.environ.get("PLANNER_UPDATE_SCREENSHOT") == "1":
        return ROOT / "docs" / "screenshot.png"
    return tmp_path / "screenshot.png"


def test_default_page_renders_title_chart_and_table(app_url, tmp_path):
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1500, "height": 1500})
            page.goto(app_url, wait_until="domcontentloaded")
            page.get_by_role("heading", name="planner").first.wait_for(
                timeout=RENDER_TIMEOUT_MS)
            page.locator(".js-plotly-plot").first.wait_for(timeout=RENDER_TIMEOUT_MS)
            page.locator('[data-testid="stDataFrame"]').first.wait_for(
                timeout=RENDER_TIMEOUT_MS)
            assert "planner" in page.title()
            assert page.locator('[data-testid="stException"]').count() == 0
            assert page.locator('[data-testid="stAlertContentError"]').count() == 0
            page.wait_for_timeout(1500)  # let plotly finish drawing before the screenshot
            shot = _screenshot_path(tmp_path)
            shot.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(shot), full_page=False)
            assert shot.stat().st_size > 10_000
        finally:
            browser.close()


def _no_errors(page) -> None:
    assert page.locator('[data-testid="stException"]').count() == 0
    errors = page.locator('[data-testid="stAlertContentError"]')
    assert errors.count() == 0, errors.all_inner_texts()


def _settled(page) -> None:
    """Wait until the app's rerun has finished (the status widget says 'Running...')."""
    page.wait_for_timeout(500)
    page.locator('[data-testid="stStatusWidget"]').wait_for(state="detached",
                                                            timeout=RENDER_TIMEOUT_MS)


def test_plan_page_fixed_cluster_and_a_sweep(app_url):
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1500, "height": 1500})
            page.goto(f"{app_url}/?page=Plan", wait_until="domcontentloaded")
            page.locator('[data-testid="stDataFrame"]').first.wait_for(
                timeout=RENDER_TIMEOUT_MS)
            _settled(page)
            # my cluster: 256 devices
            page.get_by_text("Options: devices, my cluster").click()
            count = page.get_by_role("spinbutton", name="I have N devices (0 = search)")
            count.fill("256")
            count.press("Enter")
            page.get_by_text("Fastest: 256 ×").first.wait_for(timeout=RENDER_TIMEOUT_MS)
            _settled(page)
            _no_errors(page)
            # a sweep of the sequence length on that cluster
            page.get_by_text("Sweep a parameter").click()
            values = page.get_by_role("textbox", name="Values (comma-separated)")
            values.fill("2048, 4096")
            values.press("Enter")
            _settled(page)
            page.get_by_role("button", name="Run").click()
            page.locator(".js-plotly-plot", has_text="against seq_len").first.wait_for(
                timeout=RENDER_TIMEOUT_MS)
            _settled(page)
            _no_errors(page)
            assert page.locator(".js-plotly-plot", has_text="against seq_len").count() == 2
        finally:
            browser.close()
