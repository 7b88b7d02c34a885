"""`make run` on a machine where nothing answers at the services' URLs: setup starts the
project's own PostgreSQL, Redis and RabbitMQ under var/services/, an import through the API
lands exactly, a second setup reuses them, and `make stop` leaves nothing running.

The URLs point at free ports, and the whole `var/` is a temporary directory.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from kombu import Connection
from sqlalchemy.engine import make_url

from server.messaging import definitions
from server.run import port_taken
from server.services import CannotStart, compose
from server.services.bring_up import refuse_to_start, services
from server.services.endpoints import Endpoint
from server.services.postgresql import bin_dir
from server.services.rabbitmq import script
from server.settings import MANAGEMENT_PORT_OFFSET, Settings
from tests.faults.services import low_free_port
from tests.harness import ROOT, Database, Process, bearer, wait_until
from tests.support import CUSTOMER_COLUMNS, csv_bytes, customer_rows, upload, wait_for_job

INSTALLED = pytest.mark.skipif(
    bin_dir() is None or script("rabbitmq-server") is None or not shutil.which("redis-server"),
    reason="needs PostgreSQL's, Redis's and RabbitMQ's programs installed",
)
ROWS = 2_000


@dataclass(frozen=True)
class FreshMachine:
    home: Path
    env: dict[str, str]
    endpoints: tuple[Endpoint, ...]

    @property
    def services(self) -> Path:
        return self.home / "var" / "services"

    def run(self, module: str, *args: str, fails: bool = False, **env: str) -> str:
        """What the command printed; it must succeed, or fail when `fails`."""
        done = subprocess.run(
            [sys.executable, "-m", module, *args],
            cwd=self.home,
            env={**self.env, **env},
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert bool(done.returncode) == fails, f"{module} {args}: {done.stdout}{done.stderr}"
        return done.stdout + done.stderr

    def server_pids(self) -> list[int]:
        """The three servers' own processes, from the files they write."""
        files = [
            self.services / "postgresql" / "data" / "postmaster.pid",
            self.services / "redis" / "redis.pid",
            self.services / "rabbitmq" / "pid",
        ]
        return [int(path.read_text().split()[0]) for path in files]


def ports(count: int) -> list[int]:
    """Free ports, RabbitMQ's neighbours (management, distribution) free too."""
    found: list[int] = []
    while len(found) < count:
        port = low_free_port()
        neighbours = (port + MANAGEMENT_PORT_OFFSET, port + 2 * MANAGEMENT_PORT_OFFSET)
        if port not in found and not any(Endpoint("127.0.0.1", n).listening() for n in neighbours):
            found.append(port)
    return found


@pytest.fixture
def machine() -> Iterator[FreshMachine]:
    # As root, PostgreSQL runs as `postgres`, who must be able to reach its directory.
    home = Path(tempfile.mkdtemp(prefix="csv-import-fresh-"))
    home.chmod(0o755)
    postgres, redis_port, rabbit, api = ports(4)
    env = {key: value for key, value in os.environ.items() if not key.startswith("COVERAGE")}
    env.update(
        PYTHONPATH=str(ROOT),
        START_SERVICES="local",
        DATABASE_URL=f"postgresql+psycopg2://postgres@127.0.0.1:{postgres}/csv_import",
        REDIS_URL=f"redis://127.0.0.1:{redis_port}/0",
        BROKER_URL=f"amqp://guest:guest@127.0.0.1:{rabbit}/fresh",
        API_PORT=str(api),
        WORKER_CONCURRENCY="1",
    )
    for name in ("UPLOAD_DIR", "API_KEY_FILE", "SECRET_KEY", "IMPORT_TARGETS", "METRICS_DIR"):
        env.pop(name, None)
    endpoints = tuple(Endpoint("127.0.0.1", port) for port in (postgres, redis_port, rabbit))
    found = FreshMachine(home, env, endpoints)
    yield found
    found.run("server.services", "stop")
    shutil.rmtree(home, ignore_errors=True)


@contextlib.contextmanager
def make_run(machine: FreshMachine) -> Iterator[Process]:
    """`python -m server.run` as `make run` starts it: the API and both workers."""
    service = Process(
        "run", [sys.executable, "-m", "server.run"], machine.env, machine.home, cwd=machine.home
    )
    try:
        service.wait_for_log("Application startup complete")
        wait_until(lambda: service.log().count("ready.") == 2, 60, "the workers did not start")
        yield service
    finally:
        service.stop(grace=60)


def import_through_the_api(machine: FreshMachine, content: bytes) -> dict[str, Any]:
    key = (machine.home / "var" / "api-key").read_text().strip()
    with httpx.Client(
        base_url=f"http://127.0.0.1:{machine.env['API_PORT']}", headers=bearer(key), timeout=60
    ) as client:
        response = upload(client, content, "customers")
        assert response.status_code == 202, response.text
        return wait_for_job(client, response.json()["id"])


def mentions(path: Path) -> list[str]:
    """Processes whose command line names the directory."""
    found = []
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            line = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if str(path) in line:
            found.append(f"{proc.name}: {line}")
    return found


@INSTALLED
def test_a_fresh_machine_gets_its_own_services_and_make_stop_leaves_nothing_running(
    machine: FreshMachine,
) -> None:
    said = machine.run("server.setup")
    for name in ("PostgreSQL", "Redis", "RabbitMQ"):
        assert f"{name}: started the project's own" in said, said
    assert "(initialised now)" in said
    again = machine.run("server.setup")
    for name in ("PostgreSQL", "Redis", "RabbitMQ"):
        assert f"{name}: using the project's own" in again, again

    content = csv_bytes(CUSTOMER_COLUMNS, customer_rows(ROWS))
    with make_run(machine) as service:
        job = import_through_the_api(machine, content)
        assert (job["status"], job["rows_loaded"], job["rows_refused"]) == ("completed", ROWS, 0)
        database = Database(machine.env["DATABASE_URL"])
        database.execute("CREATE TABLE reference (LIKE customers)")
        reference = database.checksum(database.reference("reference", content))
        assert database.checksum("customers") == reference

        # A PostgreSQL that asks for a password: setup says where the password goes.
        database.execute("CREATE ROLE guarded LOGIN PASSWORD 'not-in-the-url'")
        rules = machine.services / "postgresql" / "data" / "pg_hba.conf"
        rules.write_text(f"host all guarded 127.0.0.1/32 scram-sha-256\n{rules.read_text()}")
        database.execute("SELECT pg_reload_conf()")
        guarded = machine.env["DATABASE_URL"].replace("//postgres@", "//guarded@")
        asked = machine.run("server.setup", fails=True, DATABASE_URL=guarded)
        assert "asks for a password: put it in DATABASE_URL" in asked, asked
        assert "postgresql+psycopg2://USER:PASSWORD@127.0.0.1:" in asked

        # `make stop` while it runs: the API and the workers end, then the servers.
        pids = [*machine.server_pids(), *service.pids()]
        stopped = machine.run("server.services", "stop")
        assert "the API and the workers: stopped" in stopped, stopped
        assert stopped.count("stopped the project's own") == 3, stopped
        assert service.popen.poll() is not None
    assert not any(endpoint.listening() for endpoint in machine.endpoints)
    assert not [pid for pid in pids if Path(f"/proc/{pid}").exists()]
    assert mentions(machine.home) == []

    # The next `make run` starts them again on the data they had.
    said = machine.run("server.setup")
    assert said.count("started the project's own") == 3, said
    assert "initialised now" not in said
    assert database.checksum("customers") == reference


# --- what `make run` checks and says, without starting anything ---------------------------


def test_compose_urls_are_the_ones_compose_services_accept() -> None:
    """The URLs written for compose's services match the users, passwords, databases and
    ports docker-compose.yml makes them with (its own processes reach them by name)."""
    text = (ROOT / "docker-compose.yml").read_text()
    urls = compose.urls()
    for variable, key in (
        ("DATABASE_URL", "postgres"),
        ("BROKER_URL", "rabbitmq"),
        ("REDIS_URL", "redis"),
    ):
        inside = re.search(rf"{variable}: (\S+)", text)
        assert inside is not None
        written = inside.group(1).replace("${POSTGRES_PASSWORD:-postgres}", "postgres")
        written = written.replace("${RABBITMQ_PASSWORD:-csvimport}", "csvimport")
        assert written == urls[key].replace("127.0.0.1", key)
        assert f'"127.0.0.1:{compose.PORTS[key]}:{compose.PORTS[key]}"' in text
    assert "POSTGRES_PASSWORD: ${POSTGRES_PASSWORD:-postgres}" in text
    assert "RABBITMQ_PASSWORD: ${RABBITMQ_PASSWORD:-csvimport}" in text


def test_compose_postgres_password_comes_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    chosen = "with/odd:chars@" + uuid.uuid4().hex
    monkeypatch.setenv("POSTGRES_PASSWORD", chosen)
    assert make_url(compose.urls()["postgres"]).password == chosen


def test_the_compose_file_keeps_the_broker_data_and_restarts_what_runs() -> None:
    yaml = pytest.importorskip("yaml")
    services = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    assert services["rabbitmq"]["hostname"] == "rabbitmq"
    one_shot = {"migrate", "rabbitmq-definitions"}
    running = {name for name in services if name not in one_shot}
    assert {name for name in running if services[name].get("restart") == "unless-stopped"} == (
        running
    )
    for name in ("postgres", "redis", "rabbitmq", "minio"):
        assert all(port.startswith("127.0.0.1:") for port in services[name]["ports"]), name
    # Uploads go to MinIO's bucket, made by setup once MinIO answers.
    assert services["api"]["environment"]["STORAGE_URL"].startswith("${STORAGE_URL-s3://")
    assert "minio" in services["migrate"]["depends_on"]


def compose_command() -> list[str] | None:
    """Docker's compose plugin, or else the standalone `docker-compose` (`make test`
    installs Debian's where it may): both read and check the whole file."""
    if shutil.which("docker"):
        plugin = subprocess.run(["docker", "compose", "version"], capture_output=True, check=False)
        if plugin.returncode == 0:
            return ["docker", "compose"]
    return ["docker-compose"] if shutil.which("docker-compose") else None


@pytest.mark.parametrize("password", [None, "from-the-env-file"])
def test_docker_compose_config_passes(password: str | None, tmp_path: Path) -> None:
    command = compose_command()
    if command is None:
        pytest.skip("neither `docker compose` nor `docker-compose` is installed")
    env = {key: value for key, value in os.environ.items() if key != "POSTGRES_PASSWORD"}
    if password:
        env["POSTGRES_PASSWORD"] = password
    checked = subprocess.run(
        [
            *command,
            "--project-directory",
            str(ROOT),
            "-f",
            str(ROOT / "docker-compose.yml"),
            "config",
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        check=False,
        timeout=60,
    )
    assert checked.returncode == 0, checked.stderr
    if password:
        assert password in checked.stdout


@pytest.mark.parametrize("password", [None, "chosen-in-dot-env"])
def test_the_compose_broker_user_has_the_password_in_its_url(
    password: str | None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The definitions compose writes before the broker starts keep a salted hash of
    RABBITMQ_PASSWORD: it must be the password in compose's BROKER_URL."""
    monkeypatch.delenv("RABBITMQ_PASSWORD", raising=False)
    if password:
        monkeypatch.setenv("RABBITMQ_PASSWORD", password)
    path = tmp_path / "definitions.json"
    assert definitions.main([str(path)]) == 0
    written = json.loads(path.read_text())
    broker = Connection(compose.urls()["rabbitmq"])
    assert broker.password == (password or "csvimport")
    (user,) = [user for user in written["users"] if user["name"] == broker.userid]
    assert definitions.password_matches(broker.password, user["password_hash"])
    assert not definitions.password_matches("another", user["password_hash"])
    # The written topology is the one the module declares (and the file in rabbitmq/).
    on_disk = json.loads((ROOT / "rabbitmq" / "definitions.json").read_text())
    for key in ("exchanges", "queues", "bindings"):
        assert sorted(json.dumps(item, sort_keys=True) for item in written[key]) == sorted(
            json.dumps(item, sort_keys=True) for item in on_disk[key]
        )


def test_rabbitmq_itself_takes_the_password_whose_hash_the_definitions_keep(
    prepared: None,
) -> None:
    """The hash is RabbitMQ's own scheme: a broker that imports it lets the user in."""
    if shutil.which("rabbitmqctl") is None:
        pytest.skip("rabbitmqctl is not installed")
    vhost = Connection(os.environ["BROKER_URL"]).virtual_host
    user, password = f"csvimport_{uuid.uuid4().hex[:8]}", secrets.token_urlsafe(12)
    made = definitions.definitions(Settings(), user, password, vhost)
    partial = {key: made[key] for key in ("users", "permissions")}
    path = Path(tempfile.mkdtemp()) / "users.json"
    path.write_text(json.dumps(partial))
    path.parent.chmod(0o755)
    path.chmod(0o644)
    subprocess.run(["rabbitmqctl", "-q", "import_definitions", str(path)], check=True)
    try:
        with Connection(
            f"amqp://{user}:{password}@127.0.0.1:{Connection(os.environ['BROKER_URL']).port}"
            f"/{vhost}",
            connect_timeout=10,
        ) as broker:
            broker.ensure_connection(max_retries=1)
        with (
            pytest.raises(Exception, match="ACCESS_REFUSED"),
            Connection(
                f"amqp://{user}:wrong@127.0.0.1:{Connection(os.environ['BROKER_URL']).port}"
                f"/{vhost}",
                connect_timeout=10,
            ) as refused,
        ):
            refused.ensure_connection(max_retries=1)
    finally:
        subprocess.run(["rabbitmqctl", "-q", "delete_user", user], check=False)


@pytest.mark.parametrize(
    ("settings", "why"),
    [
        ({"environment": "production", "secret_key": "s" * 32}, "ENVIRONMENT=production"),
        ({"start_services": "never"}, "START_SERVICES=never"),
        (
            {
                "database_url": "postgresql+psycopg2://postgres@db.example:5432/x",
                "start_services": "auto",
            },
            "db.example is not this machine",
        ),
    ],
)
def test_a_service_that_is_not_ours_to_start_is_named_with_the_setting_to_change(
    settings: dict[str, str], why: str
) -> None:
    config = Settings(**settings)  # type: ignore[arg-type]
    (postgres, *_) = services(config, Path("unused"))
    with pytest.raises(CannotStart) as refused:
        refuse_to_start(config, postgres)
    assert why in str(refused.value)
    assert "DATABASE_URL" in str(refused.value)


def test_a_taken_api_port_is_named_before_anything_starts() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        said = port_taken(Settings(api_port=port))
    assert f"127.0.0.1:{port} is taken" in said
    assert "API_PORT" in said
    assert port_taken(Settings(api_port=port)) == ""


def test_the_management_ui_is_beside_the_broker() -> None:
    default = Settings(broker_url="amqp://guest:guest@127.0.0.1:5672//")
    assert default.management_url == "http://127.0.0.1:15672/"
    assert (
        Settings(broker_url="amqp://u:p@127.0.0.1:25000/v").management_url
        == "http://127.0.0.1:35000/"
    )
