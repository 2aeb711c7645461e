"""Browser tests: the real service (web app on a free port) driven by Playwright in Debian's Chromium.

Chromium comes from Debian's package (``scripts/test`` installs it when it can); Playwright only drives it
(``executable_path``), so no browser is downloaded. Screenshots of the pages go to ``test-output/screenshots``.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from crm_inbox.db import unit_of_work
from crm_inbox.runtime import Service
from crm_inbox.staff.service import add_staff
from tests.conftest import make_settings

SCREENSHOTS = Path(__file__).resolve().parents[2] / "test-output" / "screenshots"
PASSWORD = "richtig-geheim-42"


def chromium_path() -> str | None:
    return os.environ.get("CRM_INBOX_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    executable = chromium_path()
    if executable is None:
        if os.environ.get("CI"):
            pytest.fail("Chromium is not installed; scripts/test installs Debian's chromium package")
        pytest.skip("Chromium is not installed (apt-get install chromium); browser tests skipped")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        # --no-sandbox: CI runs as root, where Chromium's own sandbox refuses to start.
        browser = playwright.chromium.launch(executable_path=executable, args=["--no-sandbox"])
        yield browser
        browser.close()


@pytest.fixture
def live(database_url: str, tmp_path: Path) -> Iterator[Service]:
    settings = make_settings(database_url, tmp_path / "instance", web={"port": 0, "secret_key": "browser-test"},
                             smtp={"enabled": False}, reminders={"notify_by_mail": False})
    service = Service(settings, smtp=False)
    service.start()
    try:
        yield service
    finally:
        service.stop()


@pytest.fixture
def base_url(live: Service) -> str:
    return f"http://127.0.0.1:{live.web_port}"


@pytest.fixture
def staff_login(live: Service) -> tuple[str, str]:
    with unit_of_work(live.factory) as session:
        add_staff(session, "jonas.becker@beispiel-firma.de", "Jonas Becker", "staff", password=PASSWORD)
    return "jonas.becker@beispiel-firma.de", PASSWORD


@pytest.fixture
def page(browser: Any, base_url: str) -> Iterator[Any]:
    context = browser.new_context(base_url=base_url, locale="en-US", timezone_id="Europe/Berlin")
    page = context.new_page()
    page.set_default_timeout(10_000)
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    page.dialogs = dialogs  # type: ignore[attr-defined]  (a test asserts no script ever opened one)
    yield page
    context.close()


def screenshot(page: Any, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


def log_in(page: Any, email: str, password: str) -> None:
    page.goto("/login")
    page.get_by_label("E-mail").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Log in").click()
