"""End to end in a real browser: headless Chromium drives the page while the pipeline processes images.

Chromium and its driver come from Debian (``chromium``, ``chromium-driver``); the session fixture
installs them when missing. Where that is impossible the test skips with the reason, except under
``CI=true``, where a missing browser is a broken CI and fails.
"""

from __future__ import annotations

import base64
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import pytest

from pipeline import Chronicle
from pipeline.http import HttpSettings, create_app
from pipeline.http.testing import running_server

REPO = Path(__file__).resolve().parent.parent
ARTIFACTS = REPO / "test-artifacts"
IMAGES = REPO.parent / "shared" / "testdata" / "images"
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
CHROMIUM_FLAGS = ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-dev-shm-usage",
                  "--window-size=1400,1000", "--hide-scrollbars")
T = TypeVar("T")


def _unavailable(reason: str) -> None:
    if IN_CI:
        pytest.fail(f"{reason}, and CI=true: CI must run the browser test")
    pytest.skip(reason)


def _apt_install(*packages: str) -> str | None:
    """Install Debian packages; returns an error description, or None on success."""
    if shutil.which("apt-get") is None:
        return "apt-get is not available"
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for command in (["apt-get", "update"], ["apt-get", "install", "-y", "--no-install-recommends", *packages]):
        if os.geteuid() != 0:
            command = ["sudo", "-n", *command]
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=900, env=env, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            return f"{' '.join(command)}: {exc}"
        if done.returncode != 0:
            return f"{' '.join(command)} failed: {done.stderr.strip()[-300:]}"
    return None


@pytest.fixture(scope="session")
def chromium() -> tuple[str, str]:
    """(chromium binary, chromedriver binary), installed from Debian when missing."""
    def find() -> tuple[str | None, str | None]:
        return (shutil.which("chromium") or shutil.which("chromium-browser"),
                shutil.which("chromedriver") or (p if os.path.exists(p := "/usr/lib/chromium/chromedriver") else None))

    browser, driver = find()
    if not (browser and driver):
        error = _apt_install("chromium", "chromium-driver")
        browser, driver = find()
        if not (browser and driver):
            _unavailable(f"headless Chromium is not installed and could not be installed ({error})")
    try:
        import selenium  # noqa: F401
    except ImportError:
        _unavailable("selenium is not installed (pip install -e '.[test]')")
    return browser, driver  # type: ignore[return-value]


@contextmanager
def launch_browser(chromium: tuple[str, str], extra_flags: tuple[str, ...] = ()) -> Iterator[Any]:
    """A headless Chromium under selenium with a throw-away profile (``extra_flags`` after ours)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    binary, driver_path = chromium
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for flag in (*CHROMIUM_FLAGS, *extra_flags):
        options.add_argument(flag)
    profile = tempfile.mkdtemp(prefix="chronicle-chromium-")
    options.add_argument(f"--user-data-dir={profile}")
    driver = webdriver.Chrome(service=Service(executable_path=driver_path), options=options)
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture
def browser(chromium: tuple[str, str]) -> Iterator[Any]:
    with launch_browser(chromium) as driver:
        yield driver


def wait_for(condition: Callable[[], T], *, timeout: float = 60, what: str = "condition") -> T:
    """Poll ``condition`` until it returns something truthy (never a fixed sleep)."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(0.05)


@pytest.mark.slow
def test_upload_through_the_page_shows_variants_and_failures(browser: Any, chronicle: Chronicle) -> None:
    from selenium.webdriver.common.by import By

    settings = HttpSettings(data_dir=chronicle.settings.data_dir)
    with running_server(create_app(settings, chronicle=chronicle)) as base_url:
        # A broken file, uploaded through the API, becomes the failure the page must list.
        import httpx

        with (IMAGES / "pillow" / "broken.png").open("rb") as fh:
            httpx.post(f"{base_url}/images", files={"file": ("broken.png", fh, "image/png")}).raise_for_status()

        browser.get(base_url + "/")
        assert browser.find_element(By.CSS_SELECTOR, "#pipeline h2").text == "Pipeline"
        photo = IMAGES / "exif-orientation" / "Landscape_6.jpg"
        browser.find_element(By.ID, "upload-file").send_keys(str(photo))
        browser.find_element(By.CSS_SELECTOR, "#upload-form button[type=submit]").click()

        # The page has posted the file once the log has its ImageUploaded; then process it all.
        wait_for(lambda: chronicle.store.head() >= 2, what="the page's upload to reach the log")
        chronicle.drain()

        # The page polls the image, reloads when it is done, and shows the variants.
        card = wait_for(lambda: browser.find_elements(
            By.CSS_SELECTOR, "article.card[data-status=completed]"), what="a completed image card")[0]
        assert "Landscape_6.jpg" in card.text
        variants = card.find_elements(By.CSS_SELECTOR, ".variants a")
        assert variants, card.text
        wait_for(lambda: browser.execute_script(
            "const i = document.querySelector('article.card[data-status=completed] img');"
            "return i && i.complete && i.naturalWidth > 0;"), what="the variant image to load")
        assert browser.find_elements(By.CSS_SELECTOR, "article.card canvas.placeholder.painted"), \
            "the BlurHash placeholder was not painted"

        rows = browser.find_elements(By.CSS_SELECTOR, "#failures tr[data-failure-id]")
        assert len(rows) == 1 and "image" in rows[0].text
        rows[0].find_element(By.CSS_SELECTOR, "button.retry").click()
        message = wait_for(lambda: browser.find_element(By.ID, "failure-message").text, what="the retry result")
        assert "retry requested" in message, message
        assert chronicle.store.read(after=chronicle.store.head() - 1)[0].type == "FailureRetryRequested"

        full_page_screenshot(browser, ARTIFACTS / "http-page.png")


def full_page_screenshot(browser: Any, path: Path) -> None:
    """The whole page, not just the viewport (Chrome DevTools: capture beyond the viewport)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    size = browser.execute_cdp_cmd("Page.getLayoutMetrics", {})["cssContentSize"]
    clip = {"x": 0, "y": 0, "width": size["width"], "height": min(size["height"], 6000), "scale": 1}
    shot = browser.execute_cdp_cmd("Page.captureScreenshot",
                                   {"format": "png", "captureBeyondViewport": True, "clip": clip})
    path.write_bytes(base64.b64decode(shot["data"]))
