"""A project-local Redis: its own port, pid file and log. It keeps nothing on disk: what
it holds (live progress) is rebuilt from the job records."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from pathlib import Path

from server.services import CannotStart, wait_for
from server.services.endpoints import Endpoint


def server_command(endpoint: Endpoint, *extra: str) -> list[str]:
    """redis-server on one address and port, without persistence."""
    return [
        "redis-server",
        "--port",
        str(endpoint.port),
        "--bind",
        endpoint.host,
        "--save",
        "",
        "--appendonly",
        "no",
        *extra,
    ]


class LocalRedis:
    name = "Redis"
    package = "redis-server"

    def __init__(self, base: Path, endpoint: Endpoint) -> None:
        self.home = base / "redis"
        self.pid_file = self.home / "redis.pid"
        self.log = self.home / "redis.log"
        self.endpoint = endpoint

    def installed(self) -> bool:
        return shutil.which("redis-server") is not None

    def start(self) -> str:
        self.home.mkdir(parents=True, exist_ok=True)
        here = str(self.home.resolve())
        done = subprocess.run(
            server_command(
                self.endpoint,
                "--daemonize",
                "yes",
                "--dir",
                here,
                "--pidfile",
                str(self.pid_file.resolve()),
                "--logfile",
                str(self.log.resolve()),
            ),
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode or not wait_for(self.endpoint.listening, 20):
            raise CannotStart(f"redis-server did not start (see {self.log})")
        return f"log {self.log} (keeps nothing on disk)"

    def pid(self) -> int | None:
        try:
            pid = int(self.pid_file.read_text().strip())
            os.kill(pid, 0)
        except (OSError, ValueError):
            return None
        return pid

    def running(self) -> bool:
        return self.pid() is not None

    def stop(self) -> bool:
        pid = self.pid()
        if pid is None:
            return False
        os.kill(pid, signal.SIGTERM)
        if not wait_for(lambda: self.pid() is None, 30):
            raise CannotStart(f"Redis (pid {pid}) did not stop")
        return True
