"""``/docs`` (Swagger UI) and ``/redoc`` render with no internet: their assets come from a package.

A real headless Chromium (the set-up of ``tests/test_http_browser.py``) whose resolver knows no host but
127.0.0.1, so a CDN asset could not load; the page must list every operation of the OpenAPI schema,
and every resource it loaded must be the server's own.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from pipeline import Chronicle
from pipeline.http import HttpSettings, create_app
from pipeline.http.testing import running_server

from .test_http_browser import chromium, launch_browser, wait_for  # noqa: F401  (chromium: a fixture)

METHODS = ("get", "post", "put", "patch", "delete")
# Every host name fails to resolve except the test server's address: "no internet", for this browser only.
OFFLINE_FLAGS = ("--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",)


@pytest.fixture
def offline_browser(chromium: tuple[str, str]) -> Iterator[Any]:  # noqa: F811
    with launch_browser(chromium, OFFLINE_FLAGS) as driver:
        yield driver


@pytest.fixture
def base_url(chronicle: Chronicle) -> Iterator[str]:
    with running_server(create_app(HttpSettings(data_dir=chronicle.settings.data_dir), chronicle=chronicle)) as url:
        yield url


def operations(base_url: str) -> set[tuple[str, str]]:
    schema = httpx.get(f"{base_url}/openapi.json", timeout=10).json()
    return {(method.upper(), path) for path, item in schema["paths"].items() for method in item if method in METHODS}


def loaded_resources(browser: Any) -> list[str]:
    """Scripts, stylesheets, fonts and fetches the page asked for (images aside: ReDoc's "powered by"
    footer links its logo from its CDN; offline that one image is missing and nothing else is)."""
    return browser.execute_script(
        "return performance.getEntriesByType('resource').filter(e => e.initiatorType !== 'img')"
        ".map(e => e.name)")


def test_the_browser_really_is_offline(offline_browser: Any, base_url: str) -> None:
    offline_browser.get(base_url + "/docs")
    failed = offline_browser.execute_script("""
        return fetch('https://cdn.jsdelivr.net/npm/swagger-ui-dist@5/swagger-ui.css').then(() => false, () => true)""")
    assert failed, "the browser reached a CDN: the offline check would prove nothing"


def test_swagger_ui_lists_every_operation_offline(offline_browser: Any, base_url: str) -> None:
    from selenium.webdriver.common.by import By

    expected = operations(base_url)
    assert ("POST", "/events") in expected and len(expected) >= 10
    offline_browser.get(base_url + "/docs")

    def listed() -> set[tuple[str, str]]:
        blocks = offline_browser.find_elements(By.CSS_SELECTOR, ".opblock .opblock-summary")
        found = set()
        for block in blocks:
            method = block.find_element(By.CSS_SELECTOR, ".opblock-summary-method").text.strip()
            path = block.find_element(By.CSS_SELECTOR, ".opblock-summary-path").get_attribute("data-path")
            found.add((method, path))
        return found if found >= expected else set()

    assert wait_for(listed, timeout=60, what="Swagger UI to list the operations") == expected
    assert offline_browser.find_element(By.CSS_SELECTOR, ".info .title").text.startswith("Chronicle")
    resources = loaded_resources(offline_browser)
    assert any(r.endswith("/swagger-ui-bundle.js") for r in resources), resources
    assert all(r.startswith(base_url) for r in resources), resources


def test_redoc_renders_every_operation_offline(offline_browser: Any, base_url: str) -> None:
    from selenium.webdriver.common.by import By

    expected = operations(base_url)
    offline_browser.get(base_url + "/redoc")
    sections = wait_for(lambda: (found := offline_browser.find_elements(
        By.CSS_SELECTOR, "[data-section-id^='operation/']")) and len(found) >= len(expected) and found,
        timeout=60, what="ReDoc to render the operations")
    assert len(sections) == len(expected)
    assert "/events" in offline_browser.find_element(By.CSS_SELECTOR, ".api-content").text
    resources = loaded_resources(offline_browser)
    assert any(r.endswith("/redoc.standalone.js") for r in resources), resources
    assert all(r.startswith(base_url) for r in resources), resources
