"""The upload page in a real browser: headless Chromium is given an API key, uploads a
file, watches the progress bar reach 100% and downloads the refused rows. A screenshot is
kept in test-artifacts/."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ARTIFACTS, MakeTable
from tests.harness import Process
from tests.support import CUSTOMER_COLUMNS, csv_bytes, customer_rows

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
pytestmark = pytest.mark.skipif(
    not Path(CHROMIUM).exists(), reason="needs Chromium (make test installs it when run as root)"
)


@pytest.fixture
def page(api: str, api_key: str) -> Iterator[Any]:
    """The upload page in headless Chromium, given the key."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
            ],
        )
        try:
            page = browser.new_page(viewport={"width": 420, "height": 820})
            page.goto(f"{api}/")
            page.fill("#api-key", api_key)
            page.click("#save-key")
            yield page
        finally:
            browser.close()


def send(page: Any, target: str, path: Path) -> None:
    page.reload()  # the key is kept: the page lists the tables, the test's new one too
    page.wait_for_selector(f"#target option:text-is('{target}')", state="attached")
    page.select_option("#target", target)
    page.set_input_files("#file", str(path))
    page.click("#send")
    page.wait_for_selector("#result:not([hidden])", timeout=90_000)


def test_a_file_uploaded_on_the_page_shows_its_progress_to_the_end(
    page: Any, worker: Process, table: MakeTable, tmp_path: Path
) -> None:
    target = table()
    rows = [*customer_rows(30_000)]
    rows[100][3] = "2023-02-30"
    path = tmp_path / "customers.csv"
    path.write_bytes(csv_bytes(CUSTOMER_COLUMNS, rows))
    screenshots = ARTIFACTS / "screenshots"
    screenshots.mkdir(parents=True, exist_ok=True)

    send(page, target, path)
    page.screenshot(path=str(screenshots / "upload-page.png"), full_page=True)

    assert page.text_content("#percent") == "100.0%"
    assert page.get_attribute("#import-bar", "style") == "width: 100%;"
    assert page.text_content("#result-text") == ("Done: 29,999 rows imported, 1 refused.")
    assert page.is_hidden("#warnings")
    link = page.get_attribute("#refused-link", "href") or ""
    assert link.endswith("/errors?format=csv")
    with page.expect_download() as download:
        page.click("#refused-link")
    refused = Path(download.value.path()).read_text(encoding="utf-8-sig").splitlines()
    assert len(refused) == 2
    assert refused[1].startswith("101,user101@example.com,")
    assert refused[1].endswith('signup_date: date/time field value out of range: ""2023-02-30"""')


def test_an_encoding_guessed_without_confidence_is_shown_on_the_page(
    page: Any, worker: Process, table: MakeTable, tmp_path: Path
) -> None:
    target = table()
    path = tmp_path / "clients.csv"
    row = ["1", "renee@example.com", "Renée", "2024-01-02", "1.50", "FR", "true", "café"]
    path.write_bytes(csv_bytes(CUSTOMER_COLUMNS, [row], encoding="cp1252"))

    send(page, target, path)

    assert page.text_content("#result-text") == "Done: 1 rows imported, 0 refused."
    warning = page.text_content("#warnings") or ""
    assert page.is_visible("#warnings")
    assert "guessed as cp1252" in warning
