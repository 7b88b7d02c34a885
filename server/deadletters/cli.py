"""The dead-letter queue, for operators.

    reprocess_dlq.py list                      what is dead: job, reason, error, deaths, age
    reprocess_dlq.py show JOB_ID               one job's dead letters and its record
    reprocess_dlq.py replay [filters] [--dry-run]
    reprocess_dlq.py purge  [filters] [--dry-run] [--yes]

Filters: --job-id, --reason (expired, rejected, delivery_limit), --older-than (30m, 2h,
1d), --limit. Exit codes: 0 done, 1 some letters were refused, 2 a service is unreachable,
3 purge not confirmed.
"""

from __future__ import annotations

import argparse
import sys
import uuid
from dataclasses import asdict
from datetime import UTC, datetime, timedelta

from kombu import Connection
from rich.console import Console
from rich.progress import Progress
from rich.table import Table
from sqlalchemy import Engine, create_engine

from server.deadletters.letters import Selection, parse_duration
from server.deadletters.replay import Held, Summary, chosen, held_letters, purge, replay
from server.jobs import repository
from server.jobs.model import Job
from server.settings import get_settings

# Piped into a file or another program, lines are not cut to a terminal's width.
console = Console(width=None if sys.stdout.isatty() else 200)


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="reprocess_dlq", description=__doc__.split("\n\n")[0])
    commands = root.add_subparsers(dest="command", required=True)
    commands.add_parser("list", help="what is in imports.dead")
    show = commands.add_parser("show", help="one job's dead letters")
    show.add_argument("job_id")
    for name in ("replay", "purge"):
        command = commands.add_parser(name, help=f"{name} dead letters")
        command.add_argument("--job-id")
        command.add_argument("--reason", choices=["expired", "rejected", "delivery_limit"])
        command.add_argument("--older-than", type=parse_duration)
        command.add_argument("--limit", type=int)
        command.add_argument("--dry-run", action="store_true")
        if name == "purge":
            command.add_argument("--yes", action="store_true", help="do not ask")
    return root


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    settings = get_settings()
    engine = create_engine(settings.database_url)
    try:
        with Connection(settings.broker_url, connect_timeout=5) as connection:
            connection.ensure_connection(max_retries=1)
            with held_letters(connection, settings) as held:
                return run(args, held, engine)
    except OSError as error:
        console.print(f"[red]cannot reach the broker or database: {error}")
        return 2
    finally:
        engine.dispose()


def run(args: argparse.Namespace, held: list[Held], engine: Engine) -> int:
    if args.command == "list":
        console.print(table(held, engine))
        return 0
    if args.command == "show":
        return show(held, engine, args.job_id)
    selection = Selection(args.job_id, args.reason, args.older_than, args.limit)
    picked = chosen(held, selection)
    if args.command == "purge":
        if not (args.dry_run or args.yes or confirm(len(picked))):
            return 3
        return report("purged", purge(picked, args.dry_run), args.dry_run)
    from server.work.celery_app import app

    with Progress(console=console, transient=True) as progress:
        task = progress.add_task("replaying", total=len(picked))
        summary = replay(picked, engine, app, args.dry_run, lambda: progress.advance(task))
    return report("replayed", summary, args.dry_run)


def table(held: list[Held], engine: Engine) -> Table:
    view = Table("job", "reason", "error", "deaths", "age", "target", title="imports.dead")
    view.columns[0].no_wrap = True
    now = datetime.now(UTC)
    for item in held:
        job = _job(engine, item.letter.job_id)
        view.add_row(
            item.letter.job_id,
            item.letter.reason,
            (job.error or "") if job else "",
            str(item.letter.deaths),
            _age(item.letter.age(now)),
            job.target if job else "?",
        )
    return view


def show(held: list[Held], engine: Engine, job_id: str) -> int:
    mine = [item for item in held if item.letter.job_id == job_id]
    job = _job(engine, job_id)
    console.print(f"{len(mine)} dead letter(s) for job {job_id}")
    for item in mine:
        console.print(
            f"  reason={item.letter.reason} deaths={item.letter.deaths} "
            f"died_at={item.letter.died_at}"
        )
    if job is not None:
        console.print(
            {
                key: str(value)
                for key, value in asdict(job).items()
                if key not in ("header", "column_map")
            }
        )
    return 0 if mine else 1


def confirm(count: int) -> bool:
    if not sys.stdin.isatty():
        console.print("[red]purge needs --yes when not run from a terminal")
        return False
    return console.input(f"Purge {count} dead letter(s) for good? [y/N] ").lower() == "y"


def report(verb: str, summary: Summary, dry_run: bool) -> int:
    prefix = "would have " if dry_run else ""
    console.print(f"{prefix}{verb} {len(summary.done)}, refused {len(summary.refused)}")
    for job_id, reason in summary.refused:
        console.print(f"  refused {job_id}: {reason}")
    return 1 if summary.refused else 0


def _job(engine: Engine, job_id: str) -> Job | None:
    with engine.connect() as connection:
        return repository.get_job(connection, uuid.UUID(job_id))


def _age(age: timedelta | None) -> str:
    if age is None:
        return "?"
    minutes = int(age.total_seconds() // 60)
    return f"{minutes // 60}h{minutes % 60:02d}m" if minutes >= 60 else f"{minutes}m"


if __name__ == "__main__":
    sys.exit(main())
