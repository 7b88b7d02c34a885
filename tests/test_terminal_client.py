"""The terminal client: upload, follow, and an exit code a script can use."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.conftest import MakeTable
from tests.support import ROOT, Process


def run_client(api: str, path: Path, target: str, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "import_csv.py"), str(path), "--target", target,
         "--url", api, *extra],
        capture_output=True, text=True, timeout=120, check=False)


def test_the_client_follows_an_import_to_its_end(
    api: str, worker: Process, table: MakeTable, tmp_path: Path
) -> None:
    path = tmp_path / "rows.csv"
    path.write_text("id,email\n1,a@x\n2,b@x\nx,c@x\n")
    result = run_client(api, path, table())
    assert result.returncode == 0, result.stderr
    assert "completed: 2 rows loaded, 1 refused" in result.stdout
    assert "refused rows: http" in result.stdout


def test_a_failed_import_exits_non_zero(
    api: str, worker: Process, table: MakeTable, tmp_path: Path
) -> None:
    path = tmp_path / "rows.csv"
    path.write_text("id,email\nx,a@x\ny,b@x\n")
    result = run_client(api, path, table(), "--option", "max_errors=0")
    assert result.returncode == 1
    assert "failed" in result.stdout


def test_a_refused_upload_exits_with_2_and_says_why(
    api: str, table: MakeTable, tmp_path: Path
) -> None:
    path = tmp_path / "rows.csv"
    path.write_text("id,name\n1,x\n")
    result = run_client(api, path, table())
    assert result.returncode == 2
    assert "required columns missing" in result.stderr
