"""The terminal client: upload, follow, and an exit code a script can use."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import MakeTable
from tests.harness import ROOT, Database, Process


@pytest.fixture
def run_client(
    api: str, api_key: str, tmp_path: Path
) -> Callable[..., subprocess.CompletedProcess[str]]:
    """The client, run where no var/api-key is, with the key in its environment."""

    def run(
        path: Path, target: str, *extra: str, key: str | None = api_key
    ) -> subprocess.CompletedProcess[str]:
        env = {name: value for name, value in os.environ.items() if name != "CSV_IMPORT_API_KEY"}
        if key is not None:
            env["CSV_IMPORT_API_KEY"] = key
        return subprocess.run(
            [
                sys.executable,
                str(ROOT / "scripts" / "import_csv.py"),
                str(path),
                "--target",
                target,
                "--url",
                api,
                *extra,
            ],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
            cwd=tmp_path,
            env=env,
        )

    return run


RunClient = Callable[..., subprocess.CompletedProcess[str]]


def test_the_client_follows_an_import_to_its_end(
    run_client: RunClient, worker: Process, table: MakeTable, tmp_path: Path
) -> None:
    path = tmp_path / "rows.csv"
    path.write_text("id,email\n1,a@x\n2,b@x\nx,c@x\n")
    result = run_client(path, table())
    assert result.returncode == 0, result.stderr
    assert "completed: 2 rows loaded, 1 refused" in result.stdout
    assert "refused rows: http" in result.stdout


def test_a_failed_import_exits_non_zero(
    run_client: RunClient, worker: Process, table: MakeTable, tmp_path: Path
) -> None:
    path = tmp_path / "rows.csv"
    path.write_text("id,email\nx,a@x\ny,b@x\n")
    result = run_client(path, table(), "--option", "max_errors=0")
    assert result.returncode == 1
    assert "failed" in result.stdout


def test_a_refused_upload_exits_with_2_and_says_why(
    run_client: RunClient, table: MakeTable, tmp_path: Path
) -> None:
    path = tmp_path / "rows.csv"
    path.write_text("id,name\n1,x\n")
    result = run_client(path, table())
    assert result.returncode == 2
    assert "required columns missing" in result.stderr


def test_the_key_comes_from_the_option_or_the_key_file(
    run_client: RunClient, api_key: str, worker: Process, table: MakeTable, tmp_path: Path
) -> None:
    path = tmp_path / "rows.csv"
    path.write_text("id,email\n1,a@x\n")
    given = run_client(path, table(), "--api-key", api_key, key=None)
    (tmp_path / "var").mkdir()
    (tmp_path / "var" / "api-key").write_text(api_key + "\n")
    from_file = run_client(path, table(), key=None)
    assert (given.returncode, from_file.returncode) == (0, 0), given.stderr + from_file.stderr


def test_without_a_good_key_the_client_exits_with_2_and_says_why(
    run_client: RunClient, table: MakeTable, tmp_path: Path
) -> None:
    path = tmp_path / "rows.csv"
    path.write_text("id,email\n1,a@x\n")
    missing = run_client(path, table(), key=None)
    wrong = run_client(path, table(), key="csvi_not-a-key")
    assert (missing.returncode, wrong.returncode) == (2, 2)
    assert "no API key" in missing.stderr
    assert "refused (401)" in wrong.stderr


def test_the_client_shows_the_mapping_first_and_maps_with_mapping(
    run_client: RunClient, worker: Process, table: MakeTable, tmp_path: Path, db: Database
) -> None:
    path = tmp_path / "renamed.csv"
    path.write_text("id,email,full_name\n1,a@x,Ann\n2,b@x,Bob\n")
    target = table()
    unmapped = run_client(path, target)
    assert unmapped.returncode == 0, unmapped.stderr
    assert "(ignored)" in unmapped.stderr
    assert "column name (text): left empty" in unmapped.stderr
    assert db.value(f"SELECT count(*) FROM {target} WHERE name IS NULL") == 2
    mapped_target = table()
    mapped = run_client(path, mapped_target, "--mapping", "full_name=name")
    assert mapped.returncode == 0, mapped.stderr
    assert "mapping" in mapped.stderr
    assert db.rows(f"SELECT name FROM {mapped_target} ORDER BY id") == [("Ann",), ("Bob",)]


def test_a_header_the_upload_would_refuse_stops_before_anything_is_sent(
    run_client: RunClient, table: MakeTable, tmp_path: Path, db: Database
) -> None:
    path = tmp_path / "no-email.csv"
    path.write_text("id,name\n1,Ann\n")
    jobs = db.value("SELECT count(*) FROM import_jobs")
    result = run_client(path, table())
    assert result.returncode == 2
    assert "required, nothing fills it" in result.stderr
    assert "would be refused" in result.stderr
    assert db.value("SELECT count(*) FROM import_jobs") == jobs


def test_a_dry_run_then_its_commit(
    run_client: RunClient, worker: Process, table: MakeTable, tmp_path: Path, db: Database
) -> None:
    path = tmp_path / "rows.csv"
    path.write_text("id,email\n1,a@x\n2,b@x\nx,c@x\n")
    target = table()
    dry = run_client(path, target, "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "validated: 2 rows to publish, 1 refused" in dry.stdout
    assert db.value(f"SELECT count(*) FROM {target}") == 0
    job_id = dry.stdout.split("csv-import --commit ")[1].split()[0]
    committed = run_client(path, target, "--commit", job_id)
    assert committed.returncode == 0, committed.stderr
    assert "completed: 2 rows loaded, 1 refused" in committed.stdout
    assert db.value(f"SELECT count(*) FROM {target}") == 2
