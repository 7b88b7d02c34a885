"""Every line of a file ends loaded, refused or superseded, and a job keeps to its error
budget; what breaks either ends the job as failed, with nothing written to the target."""

from __future__ import annotations

from server.jobs.model import JobOptions


class JobFailed(Exception):
    """The job cannot succeed (over its error budget, say): it ends `failed`."""


class OverBudget(JobFailed):
    """More rows refused than the job's error budget allows."""


class LinesUnaccounted(JobFailed):
    """PostgreSQL wrote another number of rows than the lines that should have landed."""


def expect_written(what: str, expected: int, written: int) -> None:
    if written != expected:
        raise LinesUnaccounted(
            f"{what}: {expected} rows should have been written, PostgreSQL wrote {written}; "
            "nothing was written to the target"
        )


def check_budget(options: JobOptions, loaded: int, refused: int, final: bool) -> None:
    limit = options.max_errors
    if limit is not None and refused > limit:
        raise OverBudget(
            f"{refused} rows refused, more than max_errors={limit}; "
            "nothing was written to the target"
        )
    rate = options.max_error_rate
    seen = loaded + refused
    if rate is not None and final and seen and refused / seen > rate:
        raise OverBudget(
            f"{refused} of {seen} rows refused ({refused / seen:.1%}), more than "
            f"max_error_rate={rate:.1%}; nothing was written to the target"
        )
