"""The upload page in a real browser: headless Chromium is given an API key, uploads a
file, watches the progress bar reach 100% and downloads the refused rows. A screenshot is
kept in test-artifacts/."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import ARTIFACTS, MakeTable
from tests.harness import Database, Process
from tests.support import CUSTOMER_COLUMNS, CUSTOMERS_DDL, csv_bytes, customer_rows, upload

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


# --- managing imports: the mapping step, dry runs, the history, the job view -----------------

RENAMED = ["id", "email", "full_name", "signup_date", "amount", "country", "active", "notes"]
SHOTS = ARTIFACTS / "screenshots"


def shot(page: Any, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / name), full_page=True)


def choose(page: Any, target: str, path: Path) -> None:
    """A table and a file: the page previews the file and shows the mapping step."""
    page.goto(page.url.split("#")[0] + "#/")
    page.reload()
    page.wait_for_selector(f"#target option:text-is('{target}')", state="attached")
    page.select_option("#target", target)
    page.set_input_files("#file", str(path))
    page.wait_for_selector("#mapping-step:not([hidden])")


def test_the_mapping_step_shows_a_header_mismatch_before_anything_lands(
    page: Any, worker: Process, table: MakeTable, db: Database, tmp_path: Path
) -> None:
    page.set_viewport_size({"width": 1100, "height": 900})
    target = table()
    rows = [*customer_rows(2_000)]
    path = tmp_path / "renamed.csv"
    path.write_bytes(csv_bytes(RENAMED, rows))
    choose(page, target, path)
    assert page.input_value("select[data-header='full_name']") == ""
    assert page.input_value("select[data-header='amount']") == ""
    assert page.input_value("select[data-header='email']") == "email"
    unfilled = page.text_content("#unfilled") or ""
    assert "name: nothing fills it" in unfilled
    assert "balance: nothing fills it" in unfilled
    shot(page, "mapping-step.png")
    assert db.value(f"SELECT count(*) FROM {target}") == 0
    page.select_option("select[data-header='full_name']", "name")
    page.wait_for_selector("#sample th:text-is('name')")
    page.select_option("select[data-header='amount']", "balance")
    page.wait_for_selector("#sample th:text-is('balance')")
    page.click("#send")
    page.wait_for_selector("#result:not([hidden])", timeout=90_000)
    assert page.text_content("#result-text") == "Done: 2,000 rows imported, 0 refused."
    reference = db.reference(table(), csv_bytes(CUSTOMER_COLUMNS, rows))
    assert db.fingerprint(target) == db.fingerprint(reference)


def test_a_dry_run_leaves_the_table_untouched_and_commit_lands_it(
    page: Any, worker: Process, table: MakeTable, db: Database, tmp_path: Path
) -> None:
    page.set_viewport_size({"width": 1100, "height": 900})
    target = table()
    rows = [*customer_rows(5_000)]
    rows[7][3] = "2023-02-30"
    path = tmp_path / "checked.csv"
    path.write_bytes(csv_bytes(CUSTOMER_COLUMNS, rows))
    choose(page, target, path)
    page.click("#dry-run")
    page.wait_for_selector("#commit:not([hidden])", timeout=90_000)
    assert (page.text_content("#result-text") or "").startswith(
        "Validated: 4,999 rows ready to load, 1 refused."
    )
    assert page.is_visible("#refused-rows td:text-is('signup_date')")
    shot(page, "dry-run-validated.png")
    assert db.value(f"SELECT count(*) FROM {target}") == 0
    page.click("#commit")
    page.wait_for_selector(
        "#result-text:text-is('Done: 4,999 rows imported, 1 refused.')", timeout=90_000
    )
    assert db.value(f"SELECT count(*) FROM {target}") == 4_999
    assert page.is_hidden("#commit")


def test_the_history_follows_two_imports_and_a_job_view_survives_a_reload(
    page: Any, workers: Any, table: MakeTable, client: httpx.Client
) -> None:
    page.set_viewport_size({"width": 1100, "height": 900})
    page.goto(page.url.split("#")[0] + "#/")
    page.reload()
    workers(concurrency=2)
    content = csv_bytes(CUSTOMER_COLUMNS, customer_rows(150_000))
    jobs = [upload(client, content, table(), name=f"big-{n}.csv").json()["id"] for n in (1, 2)]
    for job_id in jobs:
        page.wait_for_selector(f"#history tr[data-job='{job_id}']", timeout=30_000)
    seen = {
        page.text_content(f"#history tr[data-job='{job_id}'] td:nth-child(3)") for job_id in jobs
    }
    assert seen <= {"queued", "running", "completed"}
    shot(page, "history.png")
    for job_id in jobs:
        page.wait_for_selector(
            f"#history tr[data-job='{job_id}'] td:nth-child(3):text-is('completed')",
            timeout=120_000,
        )
    page.click(f"#history tr[data-job='{jobs[0]}'] a")
    page.wait_for_selector("#result:not([hidden])")
    page.reload()
    page.wait_for_selector("#result:not([hidden])")
    assert page.text_content("#job-title") == "big-1.csv"
    assert page.text_content("#job-status") == "completed"
    assert page.url.endswith(f"#/jobs/{jobs[0]}")
    shot(page, "job-view.png")
    page.emulate_media(color_scheme="dark")
    background = page.evaluate("getComputedStyle(document.documentElement).backgroundColor")
    assert background == "rgb(20, 23, 28)"
    shot(page, "job-view-dark.png")


def test_cancel_and_retry_from_the_page(
    page: Any, workers: Any, table: MakeTable, db: Database, client: httpx.Client
) -> None:
    content = csv_bytes(CUSTOMER_COLUMNS, customer_rows(500))
    queued = upload(client, content, table()).json()["id"]  # no worker yet: it waits
    page.goto(page.url.split("#")[0] + f"#/jobs/{queued}")
    page.click("#cancel")
    page.wait_for_selector("#job-status:text-is('cancelled')")
    assert page.is_hidden("#cancel")
    target = table()
    failing = upload(client, content, target).json()["id"]
    db.execute(f"DROP TABLE {target}")  # the worker will not find it: the job fails
    workers()
    page.goto(page.url.split("#")[0] + f"#/jobs/{failing}")
    page.wait_for_selector("#retry:not([hidden])", timeout=60_000)
    shot(page, "failed-job.png")
    db.execute(f"CREATE TABLE {target} {CUSTOMERS_DDL}")
    page.click("#retry")
    page.wait_for_selector("#job-status:text-is('completed')", timeout=60_000)
    assert db.value(f"SELECT count(*) FROM {target}") == 500


def test_an_error_that_is_not_json_is_shown_readably(
    page: Any, table: MakeTable, tmp_path: Path
) -> None:
    path = tmp_path / "rows.csv"
    path.write_bytes(csv_bytes(CUSTOMER_COLUMNS, customer_rows(3)))
    choose(page, table(), path)
    page.route(
        "**/imports",
        lambda route: route.fulfill(
            status=413,
            content_type="text/html",
            body="<html><body><h1>413 Request Entity Too Large</h1><hr>nginx</body></html>",
        ),
    )
    page.click("#send")
    page.wait_for_selector("#form-error:not([hidden])")
    message = page.text_content("#form-error") or ""
    assert message.startswith("the server answered 413")
    assert "413 Request Entity Too Large nginx" in message
    assert "<h1>" not in message
