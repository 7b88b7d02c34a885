"""PostgreSQL, Redis and RabbitMQ from docker-compose.yml, when a Docker engine runs."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from urllib.parse import quote

from dotenv import dotenv_values

from server.messaging import definitions
from server.services import CannotStart

COMPOSE_FILE = Path(__file__).resolve().parents[2] / "docker-compose.yml"
PORTS = {"postgres": 5432, "redis": 6379, "rabbitmq": 5672}
# Compose's PostgreSQL password: POSTGRES_PASSWORD from the environment or the `.env`
# beside docker-compose.yml (what compose itself reads), else compose's default.
DEFAULT_POSTGRES_PASSWORD = "postgres"  # noqa: S105 - compose's own default, documented


def urls() -> dict[str, str]:
    """The URLs that reach compose's services from this machine, with the users and
    passwords they are made with (RabbitMQ's user: server/messaging/definitions.py)."""
    postgres = quote(_compose_value("POSTGRES_PASSWORD", DEFAULT_POSTGRES_PASSWORD), safe="")
    rabbit = quote(_compose_value("RABBITMQ_PASSWORD", definitions.DEFAULT_PASSWORD), safe="")
    return {
        "postgres": f"postgresql+psycopg2://postgres:{postgres}@127.0.0.1:5432/csv_import",
        "redis": "redis://127.0.0.1:6379/0",
        "rabbitmq": f"amqp://{definitions.USER}:{rabbit}@127.0.0.1:5672//",
    }


def _compose_value(name: str, default: str) -> str:
    """What compose itself reads: the environment, else `.env` beside the file."""
    return os.environ.get(name) or dotenv_values(COMPOSE_FILE.parent / ".env").get(name) or default


def engine_running() -> bool:
    """The docker client alone is not enough: its engine must answer."""
    if shutil.which("docker") is None:
        return False
    try:
        done = subprocess.run(
            ["docker", "info", "--format", "{{.ServerVersion}}"],
            capture_output=True,
            check=False,
            timeout=15,
        )
    except subprocess.TimeoutExpired:
        return False
    return done.returncode == 0


def compose(*args: str, timeout: float = 600) -> None:
    command = ["docker", "compose", "-f", str(COMPOSE_FILE), *args]
    done = subprocess.run(command, capture_output=True, text=True, check=False, timeout=timeout)
    if done.returncode:
        raise CannotStart(f"`{' '.join(command[:2] + command[4:])}` failed: {done.stderr.strip()}")


def up(services: list[str]) -> None:
    """Started and healthy (compose waits for each service's health check)."""
    compose("up", "-d", "--wait", *services)


def stop(services: list[str]) -> None:
    compose("stop", *services, timeout=120)
