"""Browser tests: Playwright driving Debian's Chromium against pytest-django's live server.

Playwright's own browser download does not work here, so the tests use /usr/bin/chromium (CI installs
it) and skip, saying why, only where it is missing. Playwright's sync API runs an event loop in the
test's thread, which Django would take for async code: DJANGO_ALLOW_ASYNC_UNSAFE tells it otherwise.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
# `make screenshots` (CLEAVE_SCREENSHOTS=docs) refreshes the README's pictures; a plain test run keeps its
# screenshots under var/, so it leaves the working tree as it was.
_ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = _ROOT / "docs" / "screenshots" if os.environ.get("CLEAVE_SCREENSHOTS") == "docs" else (
    _ROOT / "var" / "test" / "screenshots"
)
PASSWORD = "correct-horse-battery-staple"
VIEWPORT = {"width": 1440, "height": 900}

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


@pytest.fixture(scope="module")
def browser(django_db_setup: None) -> Iterator[Any]:
    # Module scope, not session: pytest-django runs database tests before the others, and a Playwright left
    # running marks an event loop running in the main thread, which breaks later tests' asyncio.run().
    if not CHROMIUM.exists():
        pytest.skip(f"browser tests need Chromium at {CHROMIUM} (apt-get install chromium)")
    from django.db import connections
    from playwright.sync_api import sync_playwright

    # Once Playwright runs, test code runs in its greenlet, whose context gets Django connection objects of its
    # own; the rows serialized_rollback restores hang on the test database's first ones: hand them over.
    serialized = {alias: getattr(connections[alias], "_test_serialized_contents", None) for alias in connections}
    with sync_playwright() as playwright:
        for alias, contents in serialized.items():
            if contents is not None:
                connections[alias]._test_serialized_contents = contents
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def log_in(browser, live_server) -> Iterator[Callable[[Any], Any]]:
    """A page logged in as `user` through the login form, in a browser context of its own."""
    contexts = []

    def open_as(user: Any) -> Any:
        context = browser.new_context(viewport=VIEWPORT, base_url=live_server.url)
        context.set_default_timeout(15_000)
        contexts.append(context)
        page = context.new_page()
        page.goto("/login/")
        page.fill("#id_username", user.username)
        page.fill("#id_password", PASSWORD)
        page.click("button[type=submit]")
        page.wait_for_url(f"{live_server.url}/")
        return page

    yield open_as
    for context in contexts:
        context.close()


def screenshot(page: Any, name: str) -> Path:
    """Save what the page shows now as docs/screenshots/<name>.png (the README shows them)."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def wait_for_figures(page: Any) -> None:
    """Until every figure on the page has been drawn by plotly.js."""
    page.wait_for_function(
        "() => [...document.querySelectorAll('script[data-figure-for]')]"
        ".every(s => document.getElementById(s.dataset.figureFor)?.querySelector('.main-svg'))"
    )
