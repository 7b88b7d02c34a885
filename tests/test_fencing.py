"""The checkpoint fence: a runner whose job was moved on by someone else stops, unharmed.

The advisory lock keeps two runners off one job; the fence is what holds if it ever did not.
"""

from __future__ import annotations

from typing import Any

import pytest

from server.jobs.model import Checkpoint
from server.settings import get_settings
from tests.conftest import MakeTable
from tests.harness import Database
from tests.inprocess import load
from tests.support import CUSTOMER_COLUMNS, csv_bytes, customer_rows


def test_a_runner_whose_checkpoint_moved_leaves_without_loading_or_failing_anything(
    table: MakeTable, db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ONE_TRANSACTION_MAX_BYTES", "0")  # the staged way, with checkpoints
    monkeypatch.setenv("BATCH_ROWS", "4000")  # below the first batches' size: all alike
    get_settings.cache_clear()
    target = table()

    def taken_over(job: Any, at: Checkpoint) -> None:
        # What a replay does to a job it takes back: the runner no longer owns it.
        db.execute("UPDATE import_jobs SET status = 'queued' WHERE id = %s", (str(job.id),))

    job = load(csv_bytes(CUSTOMER_COLUMNS, customer_rows(35_000)), target, taken_over)
    get_settings.cache_clear()

    assert (job.status, job.error) == ("queued", None), "the job is left, not failed"
    # The move comes after the first batch; the second was already with the copier and may
    # have committed before it. Whatever came after the move rolled back.
    assert job.rows_loaded in (4_000, 8_000), "only batches committed before the move count"
    staged = db.value(f"SELECT count(*) FROM import_staging.job_{job.id.hex}")
    assert staged == job.rows_loaded, "no batch after the move was staged"
    assert db.value(f"SELECT count(*) FROM {target}") == 0
    db.execute(f"DROP TABLE import_staging.job_{job.id.hex}")
    db.execute("DELETE FROM import_jobs WHERE id = %s", (str(job.id),))
