"""For each service `make run` needs: use the one at its URL, or start one, or say what to
do. `make stop` stops what this started, and nothing else.

A service that answers at its URL is used as it is. One that does not, on this machine,
is started: from docker-compose.yml when a Docker engine runs (and the URLs then change
to the ones compose's services accept, written to var/services/urls.env), otherwise as a
project-local server under var/services/, on the URL's own port.
"""

from __future__ import annotations

import os
import signal
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from kombu import Connection
from sqlalchemy.engine import make_url

from server.services import CannotStart, compose, packages, wait_for
from server.services.endpoints import Endpoint
from server.services.postgresql import LocalPostgres
from server.services.rabbitmq import LocalRabbit, forget_port_mapper
from server.services.redis_server import LocalRedis
from server.settings import RUN_PID_FILE, SERVICE_URLS_FILE, SERVICES_DIR, Settings

# Workers finish the task they hold first (run.py waits up to 30 s for each child).
PROCESSES_STOP_SECONDS = 100


class LocalServer(Protocol):
    name: str
    package: str

    def installed(self) -> bool: ...
    def start(self) -> str: ...
    def running(self) -> bool: ...
    def stop(self) -> bool: ...


@dataclass(frozen=True)
class Service:
    key: str  # its name in docker-compose.yml
    variable: str  # the setting that holds its URL
    endpoint: Endpoint
    local: LocalServer


@dataclass
class Report:
    lines: list[str] = field(default_factory=list)
    # Services run by the project itself (under var/services/), by their compose name.
    ours: set[str] = field(default_factory=set)
    # Settings that changed: the URLs of the services compose started.
    urls: dict[str, str] = field(default_factory=dict)


def services(settings: Settings, base: Path = SERVICES_DIR) -> list[Service]:
    database = make_url(settings.database_url)
    postgres = Endpoint(database.host or "127.0.0.1", database.port or 5432)
    cache = Endpoint.of(settings.redis_url, 6379)
    broker = broker_endpoint(settings)
    return [
        Service(
            "postgres",
            "DATABASE_URL",
            postgres,
            LocalPostgres(base, postgres, database.username or "postgres"),
        ),
        Service("redis", "REDIS_URL", cache, LocalRedis(base, cache)),
        Service("rabbitmq", "BROKER_URL", broker, LocalRabbit(base / "rabbitmq", broker)),
    ]


def broker_endpoint(settings: Settings) -> Endpoint:
    connection = Connection(settings.broker_url)
    return Endpoint(connection.hostname or "127.0.0.1", connection.port or 5672)


def bring_up(settings: Settings, base: Path = SERVICES_DIR) -> Report:
    report = Report()
    absent = []
    for service in services(settings, base):
        if service.endpoint.listening():
            ours = service.local.running()
            whose = "the project's own" if ours else "the one"
            report.lines.append(f"{service.local.name}: using {whose} at {service.endpoint}")
            if ours:
                report.ours.add(service.key)
        else:
            refuse_to_start(settings, service)
            absent.append(service)
    if absent:
        start(settings, absent, base, report)
    if "rabbitmq" in report.ours:
        grant_broker_user(settings, base)
    return report


def refuse_to_start(settings: Settings, service: Service) -> None:
    """Only a service on this machine, in a local install, is ours to start."""
    why = ""
    if settings.environment == "production":
        why = "ENVIRONMENT=production starts no service"
    elif settings.start_services == "never":
        why = "START_SERVICES=never"
    elif not service.endpoint.local:
        why = f"{service.endpoint.host} is not this machine"
    if why:
        raise CannotStart(
            f"{service.local.name} is not reachable at {service.endpoint} ({why}): "
            f"start it, or set {service.variable}"
        )


def start(settings: Settings, absent: list[Service], base: Path, report: Report) -> None:
    if settings.start_services in ("auto", "docker") and compose_fits(absent):
        start_in_docker(absent, base, report)
        return
    if settings.start_services == "docker":
        raise CannotStart("START_SERVICES=docker, but no Docker engine answers (`docker info`)")
    missing = [service.local.package for service in absent if not service.local.installed()]
    if missing:
        report.lines.append(packages.install(missing))
    for service in absent:
        detail = service.local.start()
        report.lines.append(
            f"{service.local.name}: started the project's own on {service.endpoint}, {detail}"
        )
        report.ours.add(service.key)


def compose_fits(absent: list[Service]) -> bool:
    """Compose's services publish fixed ports: they stand in only for URLs on those."""
    fits = all(compose.PORTS[service.key] == service.endpoint.port for service in absent)
    return fits and compose.engine_running()


def start_in_docker(absent: list[Service], base: Path, report: Report) -> None:
    keys = [service.key for service in absent]
    compose.up(keys)
    base.mkdir(parents=True, exist_ok=True)
    started = set(read_lines(base / COMPOSE_RECORD)) | set(keys)
    (base / COMPOSE_RECORD).write_text("".join(f"{key}\n" for key in sorted(started)))
    made = compose.urls()
    report.urls = {service.variable: made[service.key] for service in absent}
    write_urls(report.urls)
    for service in absent:
        report.lines.append(
            f"{service.local.name}: started `{service.key}` from docker-compose.yml "
            f"(data in its Docker volume); {service.variable} is now in {SERVICE_URLS_FILE}"
        )


def grant_broker_user(settings: Settings, base: Path) -> None:
    connection = Connection(settings.broker_url)
    node = LocalRabbit(base / "rabbitmq", broker_endpoint(settings))
    node.grant(
        connection.userid or "guest", connection.password or "guest", connection.virtual_host or "/"
    )


def stop_processes() -> list[str]:
    """`make run`'s API and workers, ended as Ctrl-C ends them (they finish their tasks)."""
    try:
        pid = int(RUN_PID_FILE.read_text())
        os.kill(pid, signal.SIGTERM)
    except (OSError, ValueError):
        return []
    if not wait_for(lambda: not RUN_PID_FILE.exists(), PROCESSES_STOP_SECONDS):
        raise CannotStart(f"`make run` (pid {pid}) did not stop within {PROCESSES_STOP_SECONDS} s")
    return ["the API and the workers: stopped"]


# Which of compose's services `make run` started, for `make stop`.
COMPOSE_RECORD = "compose-services"


def read_lines(path: Path) -> list[str]:
    return path.read_text().split() if path.exists() else []


def write_urls(urls: dict[str, str]) -> None:
    """Merged into the file the settings read after `.env` (the environment still wins)."""
    known = dict(line.split("=", 1) for line in read_lines(SERVICE_URLS_FILE) if "=" in line)
    known.update(urls)
    SERVICE_URLS_FILE.parent.mkdir(parents=True, exist_ok=True)
    SERVICE_URLS_FILE.write_text("".join(f"{name}={url}\n" for name, url in sorted(known.items())))


def stop_all(settings: Settings, base: Path = SERVICES_DIR) -> list[str]:
    """Stop what `make run` started: the API and workers, its own servers, and compose's
    services it started."""
    lines = stop_processes()
    lines += [
        f"{service.local.name}: stopped the project's own ({service.endpoint})"
        for service in services(settings, base)
        if service.local.stop()
    ]
    started = read_lines(base / COMPOSE_RECORD)
    if started:
        compose.stop(started)
        (base / COMPOSE_RECORD).unlink()
        lines.append(f"stopped {', '.join(started)} (docker compose); their data stays in volumes")
    forget_port_mapper()
    return lines or ["nothing that `make run` started is running"]
