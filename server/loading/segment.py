"""One bounded segment of a job, run under the job's lock.

A segment takes the job's advisory lock (so no two runners ever load the same job), resumes
from the checkpoint, commits batch after batch, and stops when its time is spent (the job
goes on in a continuation) or when the file ends (the staged rows are published). The lock
belongs to the segment's connection: if the process dies, PostgreSQL releases it.
"""

from __future__ import annotations

import hashlib
import logging
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import BinaryIO

import psycopg2
from psycopg2 import sql
from sqlalchemy import Connection, Engine, text

from server import logs, measures
from server.csvfile.columns import BatchConverter
from server.csvfile.detect import Layout
from server.csvfile.formats import date_style
from server.csvfile.pattern import careful_only, row_pattern
from server.db import raw_cursor
from server.jobs import repository
from server.jobs.model import Checkpoint, Job
from server.jobs.status import JobStatus
from server.loading import staging
from server.loading.accounting import JobFailed, OverBudget, check_budget
from server.loading.batches import Batch, Scanner
from server.loading.checkpoint import CheckpointMoved, InOneTransaction, commit_batch
from server.loading.finish import REFUSED_INSERT, FileLines, Finisher
from server.loading.publish import Publish
from server.settings import Settings
from server.storage import Storage
from server.targets import Target, load_target

log = logging.getLogger(__name__)

ProgressHook = Callable[[Job, Checkpoint], None]
LOCK_POLL_SECONDS = 0.2


# Batches handed to the copier thread and not yet committed: one in PostgreSQL, one ready.
IN_FLIGHT = 2


class Outcome(StrEnum):
    FINISHED = "finished"  # completed, failed or cancelled: nothing more to do
    PAUSED = "paused"  # time is up; a continuation must follow
    BUSY = "busy"  # another runner holds the job
    GONE = "gone"  # no such job, or it had already ended
    WAITING = "waiting"  # its tenant runs as many jobs as it may: it waits in the broker


@dataclass(frozen=True)
class Segment:
    job_id: uuid.UUID
    deadline: float
    worker: str
    on_progress: ProgressHook | None = None


def lock_key(job_id: uuid.UUID) -> int:
    """A signed 64-bit advisory lock key from the job id."""
    return int.from_bytes(job_id.bytes[:8], "big", signed=True)


def load_segment(engine: Engine, storage: Storage, settings: Settings, segment: Segment) -> Outcome:
    with engine.connect() as connection:
        if not take_lock(connection, segment.job_id, settings.lock_wait_seconds):
            log.info("job %s: another worker holds it, leaving it there", segment.job_id)
            return Outcome.BUSY
        if not take_slot(connection, segment.job_id, settings.tenant_max_running):
            log.info("job %s: its tenant runs as many jobs as it may; it waits", segment.job_id)
            return Outcome.WAITING
        return _Runner(connection, storage, settings, segment).run()


def take_slot(connection: Connection, job_id: uuid.UUID, slots: int) -> bool:
    """One of the job's tenant's `slots` (TENANT_MAX_RUNNING), held by this session until
    the segment ends: advisory locks on (tenant, slot), which PostgreSQL releases by itself
    when a worker dies. True at once when there is no cap."""
    if not slots:
        return True
    tenant = repository.tenant_of(connection, job_id)
    if tenant is None:
        return True  # no such job: the runner says so
    key = int.from_bytes(hashlib.sha256(tenant.encode()).digest()[:4], "big", signed=True)
    taken = connection.execute(
        text(
            "SELECT slot FROM generate_series(0, :last) AS slot "
            "WHERE pg_try_advisory_lock(:key, slot) LIMIT 1"
        ),
        {"key": key, "last": slots - 1},
    ).first()
    connection.commit()
    return taken is not None


def take_lock(connection: Connection, job_id: uuid.UUID, wait_seconds: float) -> bool:
    """The job's lock, waited for a little. When a worker dies, the broker gives its
    message to another worker at once, while PostgreSQL may still hold the dead worker's
    lock until it notices (see server/db.py): leaving at the first refusal would leave
    the job to nobody. A live holder keeps the lock longer, and then this runner leaves."""
    deadline = time.monotonic() + wait_seconds
    while True:
        locked = connection.execute(
            text("SELECT pg_try_advisory_lock(:key)"), {"key": lock_key(job_id)}
        ).scalar()
        connection.commit()
        if locked or time.monotonic() >= deadline:
            return bool(locked)
        time.sleep(LOCK_POLL_SECONDS)


class _Runner:
    def __init__(
        self, connection: Connection, storage: Storage, settings: Settings, segment: Segment
    ) -> None:
        self.connection = connection
        self.storage = storage
        self.settings = settings
        self.segment = segment
        self.job_id = segment.job_id
        self.segment_id = 0

    def run(self) -> Outcome:
        job = self._start()
        if job is None:
            return Outcome.GONE
        try:
            return self._load(job)
        except JobFailed as failure:
            self.fail(str(failure))
            return Outcome.FINISHED
        except psycopg2.errors.QueryCanceled:
            if not self._cancel_requested():
                raise  # a statement timeout: a transient fault, retried later
            self.cancel()
            return Outcome.FINISHED
        except CheckpointMoved as moved:
            # Someone else has the job now (a replay reset it, or another runner moved it on):
            # this runner's batch rolled back, and it leaves the job to them, unharmed.
            log.warning("%s; leaving the job", moved)
            return Outcome.BUSY

    def _cancel_requested(self) -> bool:
        if self.connection.in_transaction():
            self.connection.rollback()
        with self.connection.begin():
            return repository.cancel_requested(self.connection, self.job_id)

    def _start(self) -> Job | None:
        with self.connection.begin():
            # The API finds this session by its name to interrupt it when the job is cancelled.
            self.connection.execute(
                text("SELECT set_config('application_name', :name, false)"),
                {"name": session_name(self.job_id)},
            )
            started = repository.start_segment(self.connection, self.job_id, self.segment.worker)
        if started is None:
            log.info("job %s: not queued or running, nothing to do", self.job_id)
            return None
        job, self.segment_id = started
        logs.bind(tenant=job.tenant)
        measures.first_segment(job)
        log.info(
            "job %s: segment starts at line %s (byte %s)",
            self.job_id,
            job.checkpoint_line,
            job.checkpoint_offset,
        )
        return job

    def _load(self, job: Job) -> Outcome:
        if job.cancel_requested:
            self.cancel()
            return Outcome.FINISHED
        target = load_target(self.connection, job.target, self.settings.import_targets)
        if style := date_style(job.options.formats):
            # This session reads the file's dates as the file writes them (the runs go to
            # COPY as written); the converters refuse any other day-month order.
            self.connection.execute(
                text("SELECT set_config('datestyle', :style, false)"), {"style": style}
            )
        self.connection.commit()
        names: list[str | None] = list(job.column_map)
        if self._in_one_transaction(job, names):
            try:
                return self._load_at_once(job, target, names)
            except (psycopg2.DataError, psycopg2.IntegrityError, OverBudget) as error:
                # A row PostgreSQL refused is found, and refused alone, the staged way; a
                # job over its budget fails there too, with its refused rows committed.
                self.connection.rollback()
                log.info(
                    "job %s: %s; loading it staged instead",
                    self.job_id,
                    str(error).strip().splitlines()[0],
                )
                duplicates = isinstance(error, psycopg2.errors.UniqueViolation)
                return self._load_staged(job, target, names, duplicates)
        return self._load_staged(job, target, names)

    def _load_staged(
        self, job: Job, target: Target, names: list[str | None], duplicates: bool = False
    ) -> Outcome:
        rewritten = staging.rewritten_numbers(target, names, job.options.formats)
        if not staging.takes_runs(names, rewritten):
            rewritten = set()
        with self.connection.begin():
            staging.create(
                raw_cursor(self.connection),
                self.job_id,
                target,
                names,
                rewritten,
                job.options.formats,
            )
        plan = self._stage(
            job, target, names, staging.table_of(self.job_id), True, frozenset(rewritten)
        )
        with self.storage.open(job.file_key) as file:
            stopped, _ = self._commit_all(
                job,
                self._batches(job, plan, file),
                lambda batch: commit_batch(self.connection, plan, batch),
                _checkpoint_of(job),
            )
            if stopped is not None:
                return stopped
            publishing = Publish(
                self.job_id,
                target,
                plan.loaded,
                job.mode,
                job.key_columns,
                nulls_distinct=target.nulls_distinct(job.key_columns),
            )
            return self._publish(
                Finisher(self.connection, publishing, job.options, FileLines(file, plan.layout)),
                duplicates,
            )

    def _stage(
        self,
        job: Job,
        target: Target,
        names: list[str | None],
        into: sql.Composed,
        positions: bool,
        rewritten: frozenset[str] = frozenset(),
    ) -> staging.Stage:
        columns = [None if name is None else target.column(name) for name in names]
        layout = Layout(job.encoding, 0, job.line_terminator, job.delimiter)
        keys = job.key_columns if target.nulls_distinct(job.key_columns) else ()
        converter = BatchConverter(
            columns, job.options.null_markers, positions, keys, job.options.formats
        )
        return staging.Stage(self.job_id, into, names, layout, converter, rewritten)

    def _batches(self, job: Job, plan: staging.Stage, file: BinaryIO) -> Iterator[Batch]:
        layout, converter = plan.layout, plan.converter
        columns, nulls = converter.columns, converter.nulls
        formats = converter.formats
        why = careful_only(columns, layout.delimiter, layout.encoding, nulls, formats)
        if not staging.takes_runs(plan.columns, plan.rewritten):
            why = f"{len(plan.columns)} fields are more than a staging table has columns"
        if not self.settings.fast_path:
            why = "FAST_PATH is off"
        pattern = None
        if why:
            log.info("job %s: every record goes the careful way: %s", self.job_id, why)
        else:
            pattern = row_pattern(
                columns,
                layout.delimiter,
                layout.terminator,
                layout.encoding,
                nulls,
                formats,
                plan.rewritten,
            )
        scanner = Scanner(file, layout, converter, pattern, self.settings.batch_rows)
        return map(plan.prepare, scanner.batches(job.checkpoint_offset, job.checkpoint_line))

    def _in_one_transaction(self, job: Job, names: list[str | None]) -> bool:
        """A first attempt at appending a small enough file, every field to a column."""
        return (
            job.mode == "append"
            and not job.options.dry_run
            and job.segments == 1
            and None not in names
            and job.bytes_total <= self.settings.one_transaction_max_bytes
        )

    def _load_at_once(self, job: Job, target: Target, names: list[str | None]) -> Outcome:
        log.info("job %s: loading straight into the target in one transaction", self.job_id)
        rewritten = staging.rewritten_numbers(target, names, job.options.formats)
        plan = self._stage(
            job, target, names, staging.target_of(target), False, frozenset(rewritten)
        )
        self.connection.begin()
        if rewritten:
            onward = staging.create_runs(
                raw_cursor(self.connection),
                target,
                [name for name in names if name is not None],
                rewritten,
                job.options.formats,
            )
            plan = replace(plan, runs_onward=onward)
        start = _checkpoint_of(job)
        loader = InOneTransaction(self.connection, plan, start)
        with self.storage.open(job.file_key) as file:
            stopped, at = self._commit_all(
                job, self._batches(job, plan, file), loader, start, pause=False
            )
        if stopped is not None:
            return stopped
        check_budget(job.options, at.rows_loaded, at.rows_refused, final=True)
        moved = not repository.fence(
            self.connection, self.job_id, job.checkpoint_offset, at.line, loader.careful
        )
        if moved:
            raise CheckpointMoved(f"job {self.job_id}: it moved on while loading")
        self._complete(at.rows_loaded, at.rows_loaded, at.rows_refused)
        self.connection.commit()
        log.info(
            "job %s: completed, %s rows loaded, %s refused",
            self.job_id,
            at.rows_loaded,
            at.rows_refused,
        )
        return Outcome.FINISHED

    def _commit_all(
        self,
        job: Job,
        batches: Iterator[Batch],
        commit: Callable[[Batch], Checkpoint],
        at: Checkpoint,
        pause: bool = True,
    ) -> tuple[Outcome | None, Checkpoint]:
        """Commit batches in a copier thread while this one reads the next ones: PostgreSQL
        works on one batch, the next waits its turn, and Python parses the one after."""
        pending: deque[Future[Checkpoint]] = deque()
        out_of_time = False
        with ThreadPoolExecutor(1, thread_name_prefix="copy") as copier:
            for batch in batches:
                if len(pending) == IN_FLIGHT:
                    at = self._committed(job, pending.popleft())
                    out_of_time = pause and time.monotonic() >= self.segment.deadline
                    if at.cancel_requested or out_of_time:
                        break
                pending.append(copier.submit(commit, batch))
            while pending:  # batches already handed over finish before the runner stops
                at = self._committed(job, pending.popleft())
        if at.cancel_requested:
            self.cancel()
            return Outcome.FINISHED, at
        if out_of_time:
            with self.connection.begin():
                self._end_segment("paused")
            return Outcome.PAUSED, at
        return None, at

    def _committed(self, job: Job, batch: Future[Checkpoint]) -> Checkpoint:
        at = batch.result()
        log.debug("job %s: committed up to line %s", self.job_id, at.line - 1)
        if self.segment.on_progress is not None:
            self.segment.on_progress(job, at)
        check_budget(job.options, at.rows_loaded, at.rows_refused, final=False)
        return at

    def _publish(self, finisher: Finisher, duplicates_expected: bool) -> Outcome:
        """The set-based steps, then the one insert; rows PostgreSQL still refuses are found
        (duplicate keys as a set, anything else by a probe) and refused, and the insert
        runs again without them."""
        if not finisher.prepare(duplicates_expected):
            self.cancel()
            return Outcome.FINISHED
        while True:
            started = time.monotonic()
            try:
                with self.connection.begin() as transaction:
                    written, now = finisher.insert()
                    if finisher.options.validates_only:
                        transaction.rollback()  # a dry run: the insert only proved it goes
                    else:
                        self._complete(written, written, now.rows_refused, now.rows_superseded)
                if finisher.options.validates_only:
                    return self._validated(written, now)
            except REFUSED_INSERT as error:
                log.info(
                    "job %s: the insert was refused (%s); finding the rows",
                    self.job_id,
                    str(error).strip().splitlines()[0],
                )
                if not finisher.refuse_after(error):
                    raise JobFailed(
                        f"PostgreSQL refused the rows together but none alone: {error}"
                    ) from error
                if finisher.cancelled:
                    self.cancel()
                    return Outcome.FINISHED
                continue
            log.info(
                "job %s: completed, %s rows written in %.2f s, %s refused, %s superseded",
                self.job_id,
                written,
                time.monotonic() - started,
                now.rows_refused,
                now.rows_superseded,
            )
            return Outcome.FINISHED

    def _complete(self, published: int, loaded: int, refused: int, superseded: int = 0) -> None:
        repository.complete(self.connection, self.job_id, published, loaded, refused, superseded)
        staging.drop(raw_cursor(self.connection), self.job_id)
        self._end_segment(JobStatus.COMPLETED)

    def _validated(self, written: int, now: Job) -> Outcome:
        """A dry run's insert went through and was rolled back: the staged rows are what a
        commit publishes."""
        with self.connection.begin():
            repository.validate(
                self.connection, self.job_id, written, now.rows_refused, now.rows_superseded
            )
            self._end_segment(JobStatus.VALIDATED)
        log.info(
            "job %s: validated, %s rows to publish on commit, %s refused, %s superseded",
            self.job_id,
            written,
            now.rows_refused,
            now.rows_superseded,
        )
        return Outcome.FINISHED

    def cancel(self) -> None:
        self._finish(JobStatus.CANCELLED, None)
        log.info("job %s: cancelled, target untouched", self.job_id)

    def fail(self, error: str) -> None:
        self._finish(JobStatus.FAILED, error)
        log.warning("job %s: failed: %s", self.job_id, error)

    def _finish(self, status: JobStatus, error: str | None) -> None:
        if self.connection.in_transaction():
            self.connection.rollback()
        with self.connection.begin():
            end_job(self.connection, self.job_id, status, error)
            self._end_segment(status)

    def _end_segment(self, outcome: str) -> None:
        repository.end_segment(self.connection, self.segment_id, outcome)


def end_job(
    connection: Connection, job_id: uuid.UUID, status: JobStatus, error: str | None
) -> None:
    """A job that has not ended yet ends with `status`. A cancelled job's staged rows are
    dropped; a failed job keeps them, so that a replay from the dead-letter queue resumes
    at its checkpoint (housekeeping drops them after the retention period)."""
    repository.end_job(connection, job_id, status, error)
    if status is not JobStatus.FAILED:
        staging.drop(raw_cursor(connection), job_id)


def fail_job(engine: Engine, job_id: uuid.UUID, error: str) -> None:
    """End a job as failed from outside a segment (a permanent fault, retries exhausted)."""
    with engine.begin() as connection:
        end_job(connection, job_id, JobStatus.FAILED, error)


def session_name(job_id: uuid.UUID) -> str:
    """The application_name of the database session that loads a job."""
    return f"csv-import job {job_id}"


def interrupt(connection: Connection, job_id: uuid.UUID) -> None:
    """Cancel the statement a job's session is running (the job was cancelled): the
    worker sees the cancel at once instead of at the end of a long statement."""
    connection.execute(
        text("SELECT pg_cancel_backend(pid) FROM pg_stat_activity WHERE application_name = :name"),
        {"name": session_name(job_id)},
    )


def describe(error: BaseException) -> str:
    if isinstance(error, FileNotFoundError):
        return "the uploaded file is gone from storage"
    return f"{type(error).__name__}: {error}"


def _checkpoint_of(job: Job) -> Checkpoint:
    return Checkpoint(
        job.checkpoint_offset,
        job.checkpoint_line,
        job.rows_loaded,
        job.rows_refused,
        cancel_requested=False,
    )
