"""Run the API and the workers together, in the foreground, until Ctrl-C: a worker for
all jobs, and one more process that serves small jobs only (the express queue).

    python -m server.run
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time

from server.messaging.topology import EXPRESS_QUEUE
from server.settings import get_settings


def commands() -> list[list[str]]:
    settings = get_settings()
    return [
        [sys.executable, "-m", "uvicorn", "server.api.app:app", "--host", settings.api_host,
         "--port", str(settings.api_port)],
        worker_command(),
        worker_command(concurrency=1, express=True),
    ]


def worker_command(concurrency: int = 2, express: bool = False) -> list[str]:
    command = [sys.executable, "-m", "celery", "-A", "server.work.celery_app", "worker",
               "--pool", "prefork", "--concurrency", str(concurrency), "--loglevel", "INFO",
               "--without-gossip", "--without-mingle", "--without-heartbeat"]
    if express:
        command += ["--queues", EXPRESS_QUEUE, "--hostname", "express@%h"]
    return command


def main() -> int:
    settings = get_settings()
    children = [subprocess.Popen(command) for command in commands()]
    print(f"\n  CSV import is starting\n"
          f"  upload page: {settings.base_url}/\n"
          f"  API docs:    {settings.base_url}/docs\n"
          f"  API key:     {settings.api_key_file} (the upload page asks for it once)\n"
          f"  from a shell: curl -H \"Authorization: Bearer $(cat {settings.api_key_file})\" "
          f"-F file=@server/demo/customers.csv -F target=customers {settings.base_url}/imports\n"
          f"  RabbitMQ:    http://127.0.0.1:15672/ (guest/guest)\n", flush=True)
    try:
        while all(child.poll() is None for child in children):
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    for child in children:
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)
    for child in children:
        child.wait(timeout=30)
    return max((child.returncode or 0) for child in children)


if __name__ == "__main__":
    sys.exit(main())
