"""Start the service's processes; the one place their command lines are written.

    python -m server.run            the API, a worker and an express worker, until Ctrl-C
    python -m server.run api        the API alone        (compose, `make api`)
    python -m server.run worker     a worker for all jobs (compose, `make worker`)
    python -m server.run express    a worker for small jobs and webhooks only
    python -m server.run exporter   this host's metrics, on a worker host without an API

The Makefile, docker-compose.yml, the tests and the benchmarks all start processes with
these commands.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from typing import NoReturn

from server.messaging.topology import EXPRESS_QUEUE, WEBHOOK_QUEUE
from server.settings import RUN_PID_FILE, Settings, get_settings


def api_command(host: str, port: int, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "uvicorn",
        "server.api.app:app",
        "--host",
        host,
        "--port",
        str(port),
        *extra,
    ]


def worker_command(
    concurrency: int, queues: Sequence[str] = (), name: str | None = None, quiet: bool = False
) -> list[str]:
    """A prefork worker (the only pool that enforces time limits), without the broker
    chatter that would create queues outside the topology. `quiet`: without the banner
    (with JSON logs, every line of output is a JSON object)."""
    command = [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "server.work.celery_app",
        *(["--quiet"] if quiet else []),
        "worker",
        "--pool",
        "prefork",
        "--concurrency",
        str(concurrency),
        "--loglevel",
        "INFO",
        "--without-gossip",
        "--without-mingle",
        "--without-heartbeat",
    ]
    if queues:
        command += ["--queues", ",".join(queues)]
    if name:
        command += ["--hostname", name]
    return command


def express_command(quiet: bool = False) -> list[str]:
    """One process for small new jobs and webhooks only: they never wait behind big ones."""
    return worker_command(1, [EXPRESS_QUEUE, WEBHOOK_QUEUE], "express@%h", quiet)


COMMANDS: dict[str, Callable[[Settings], list[str]]] = {
    "api": lambda settings: api_command(settings.api_host, settings.api_port),
    "worker": lambda settings: worker_command(
        settings.worker_concurrency, quiet=settings.log_format == "json"
    ),
    "express": lambda settings: express_command(settings.log_format == "json"),
}


def run_all(settings: Settings) -> int:
    children = [subprocess.Popen(command(settings)) for command in COMMANDS.values()]
    print(welcome(settings), flush=True)
    # A stop from outside (`make stop`, a supervisor, a test) ends the children as Ctrl-C does.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    RUN_PID_FILE.parent.mkdir(parents=True, exist_ok=True)
    RUN_PID_FILE.write_text(f"{os.getpid()}\n")
    try:
        while all(child.poll() is None for child in children):
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    finally:
        RUN_PID_FILE.unlink(missing_ok=True)
    for child in children:
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)
    for child in children:
        child.wait(timeout=30)
    return max((child.returncode or 0) for child in children)


def welcome(settings: Settings) -> str:
    key_file = settings.api_key_file
    return (
        f"\n  CSV import is starting\n"
        f"  upload page: {settings.base_url}/\n"
        f"  API docs:    {settings.base_url}/docs\n"
        f"  API key:     {key_file} (the upload page asks for it once)\n"
        f'  from a shell: curl -H "Authorization: Bearer $(cat {key_file})" '
        f"-F file=@server/demo/customers.csv -F target=customers {settings.base_url}"
        f"/imports\n"
        f"  RabbitMQ:    {settings.management_url}\n"
        f"  stop:        Ctrl-C, then `make stop` for the services `make run` started\n"
    )


def main(argv: Sequence[str] = ()) -> int:
    settings = get_settings()
    which = argv[0] if argv else "all"
    if which not in ("all", *COMMANDS, "exporter"):
        usage = "|".join(["all", *COMMANDS, "exporter"])
        print(f"usage: python -m server.run [{usage}]", file=sys.stderr)
        return 2
    if which == "exporter":
        from server.measures import serve_forever  # it chooses where samples live on import

        serve_forever(settings.metrics_host, settings.metrics_port)
    if which in ("all", "api") and (taken := port_taken(settings)):
        print(taken, file=sys.stderr)
        return 1
    if which == "all":
        return run_all(settings)
    return become(COMMANDS[which](settings))


def port_taken(settings: Settings) -> str:
    """Said before anything starts, not as a stack trace from the API's process."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((settings.api_host, settings.api_port))
        except OSError as error:
            return (
                f"error: the API's address {settings.api_host}:{settings.api_port} is taken "
                f"({error.strerror}): stop what uses it, or set API_PORT"
            )
    return ""


def become(command: list[str]) -> NoReturn:
    """This process becomes the command: signals (a container's stop) reach it directly."""
    os.execv(command[0], command)  # noqa: S606 - one of the service's own command lines


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
