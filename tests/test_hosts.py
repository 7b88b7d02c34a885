"""Workers on other hosts: each in a network namespace of its own (`ip netns`, a veth pair,
an address of its own), reaching PostgreSQL, Redis, RabbitMQ and the S3 server over that
network only, with uploads in the object store and nothing on a shared disk. Imports
complete exactly; when one host is killed mid-import, another finishes the job.

The services listen on 127.0.0.1, which a namespace cannot reach: the test forwards a port
of each to the hosts' network. Needs root and iproute2 (CI has both).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from kombu import Connection
from sqlalchemy.engine import make_url

from server.jobs.migrate import upgrade
from server.run import worker_command
from server.settings import Settings
from tests.broker import empty, vhost_beside
from tests.conftest import ENV
from tests.harness import Database, Process, bearer, free_port, make_key, start_api, wait_until
from tests.s3server import CREDENTIALS, S3
from tests.support import (
    CUSTOMER_COLUMNS,
    CUSTOMERS_DDL,
    TEST_SCHEMA,
    csv_bytes,
    customer_rows,
    upload,
    wait_for_job,
)

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("ip") is None,
    reason="network namespaces need root and iproute2",
)


@dataclass
class Forwarder:
    """A port on every address of this machine, forwarded to a service on 127.0.0.1."""

    target: int
    port: int = 0
    sockets: list[socket.socket] = field(default_factory=list)

    def start(self) -> Forwarder:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("0.0.0.0", 0))  # noqa: S104 - the test hosts' network reaches it
        listener.listen(64)
        self.port = listener.getsockname()[1]
        self.sockets.append(listener)
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()
        return self

    def _accept(self, listener: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while True:
                near, _ = listener.accept()
                far = socket.create_connection(("127.0.0.1", self.target))
                for source, sink in ((near, far), (far, near)):
                    threading.Thread(target=_pipe, args=(source, sink), daemon=True).start()

    def close(self) -> None:
        for sock in self.sockets:
            sock.close()


def _pipe(source: socket.socket, sink: socket.socket) -> None:
    with contextlib.suppress(OSError):
        while chunk := source.recv(65536):
            sink.sendall(chunk)
    for end in (source, sink):
        with contextlib.suppress(OSError):
            end.shutdown(socket.SHUT_RDWR)
        end.close()


@dataclass
class Host:
    """A network namespace with a veth pair: this machine is `gateway` from inside it."""

    number: int
    name: str = ""

    def __post_init__(self) -> None:
        self.name = f"csvimp-{uuid.uuid4().hex[:6]}"
        self.outside = f"vci{self.name[-6:]}"

    @property
    def gateway(self) -> str:
        return f"10.231.{self.number}.1"

    def create(self) -> Host:
        inside, address = f"{self.outside}p", f"10.231.{self.number}.2"
        for command in (
            ["ip", "netns", "add", self.name],
            ["ip", "link", "add", self.outside, "type", "veth", "peer", "name", inside],
            ["ip", "link", "set", inside, "netns", self.name],
            ["ip", "addr", "add", f"{self.gateway}/30", "dev", self.outside],
            ["ip", "link", "set", self.outside, "up"],
            ["ip", "-n", self.name, "addr", "add", f"{address}/30", "dev", inside],
            ["ip", "-n", self.name, "link", "set", inside, "up"],
            ["ip", "-n", self.name, "link", "set", "lo", "up"],
        ):
            subprocess.run(command, check=True, capture_output=True)
        return self

    def reaches(self, port: int) -> bool:
        probe = f"import socket; socket.create_connection(('{self.gateway}', {port}), 3)"
        found = self.run([sys.executable, "-c", probe])
        return found.returncode == 0

    def run(self, command: list[str]) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["ip", "netns", "exec", self.name, *command],
            capture_output=True,
            text=True,
            check=False,
            timeout=30,
        )

    def delete(self) -> None:
        subprocess.run(["ip", "netns", "del", self.name], check=False, capture_output=True)
        subprocess.run(["ip", "link", "del", self.outside], check=False, capture_output=True)


@dataclass(frozen=True)
class Network:
    hosts: list[Host]
    ports: dict[str, int]  # service → the forwarded port


@pytest.fixture
def network(s3: S3) -> Iterator[Network]:
    services = {
        "postgres": make_url(ENV["DATABASE_URL"]).port or 5432,
        "redis": int(ENV["REDIS_URL"].rsplit(":", 1)[1].split("/")[0]),
        "rabbitmq": Connection(ENV["BROKER_URL"]).port or 5672,
        "s3": int(s3.endpoint.rsplit(":", 1)[1]),
    }
    forwarders = {name: Forwarder(port).start() for name, port in services.items()}
    hosts = [Host(n).create() for n in (1, 2)]
    try:
        yield Network(hosts, {name: f.port for name, f in forwarders.items()})
    finally:
        for host in hosts:
            host.delete()
        for forwarder in forwarders.values():
            forwarder.close()


def host_settings(host: Host, network: Network, site: dict[str, str], s3: S3) -> dict[str, str]:
    """What a worker on `host` is told: every service at the gateway's forwarded ports."""
    ports, gateway = network.ports, host.gateway
    database = make_url(site["DATABASE_URL"]).set(host=gateway, port=ports["postgres"])
    broker = Connection(site["BROKER_URL"])
    credentials = f"{broker.userid}:{broker.password}"
    redis_db = ENV["REDIS_URL"].rsplit("/", 1)[1]
    return {
        **site,
        "DATABASE_URL": database.render_as_string(hide_password=False),
        "BROKER_URL": f"amqp://{credentials}@{gateway}:{ports['rabbitmq']}/{broker.virtual_host}",
        "REDIS_URL": f"redis://{gateway}:{ports['redis']}/{redis_db}",
        "S3_ENDPOINT_URL": f"http://{gateway}:{ports['s3']}",
        "UPLOAD_DIR": "/nonexistent/uploads",
    }


def start_on(host: Host, env: dict[str, str], log_dir: Path) -> Process:
    name = f"{host.name}-{uuid.uuid4().hex[:4]}@%h"
    command = ["ip", "netns", "exec", host.name, *worker_command(1, (), name)]
    worker = Process(f"worker-{host.name}", command, env, log_dir)
    worker.wait_for_log("ready.")
    return worker


def test_workers_on_other_hosts_import_exactly_and_one_killed_loses_nothing(
    network: Network, s3: S3, fresh_database: str, log_dir: Path, tmp_path: Path
) -> None:
    for host in network.hosts:
        assert all(host.reaches(port) for port in network.ports.values())
        assert not host.reaches(make_url(ENV["DATABASE_URL"]).port or 5432)  # only so
    upgrade(fresh_database)
    database = Database(fresh_database)
    database.execute(f"CREATE SCHEMA {TEST_SCHEMA}")
    database.execute(f"CREATE TABLE {TEST_SCHEMA}.target {CUSTOMERS_DDL}")
    database.execute(f"CREATE TABLE {TEST_SCHEMA}.reference {CUSTOMERS_DDL}")
    broker_url = vhost_beside("_hosts")
    api_uploads = tmp_path / "api-uploads"
    site = {
        **CREDENTIALS,
        "DATABASE_URL": fresh_database,
        "BROKER_URL": broker_url,
        "STORAGE_URL": f"s3://{s3.bucket}/hosts",
        "S3_ENDPOINT_URL": s3.endpoint,
        "UPLOAD_DIR": str(api_uploads),
        "BATCH_ROWS": "5000",
        "SEGMENT_SECONDS": "3",
        "ONE_TRANSACTION_MAX_BYTES": "0",
        "MAX_UPLOAD_BYTES": str(200 << 20),
    }
    empty(Settings(broker_url=broker_url))
    port = free_port()
    api = start_api(dict(os.environ, **site), log_dir, port)
    first = second = None
    try:
        content = csv_bytes(CUSTOMER_COLUMNS, customer_rows(400_000))
        key = make_key(fresh_database, "hosts")
        url = f"http://127.0.0.1:{port}"
        with httpx.Client(base_url=url, headers=bearer(key), timeout=120) as client:
            job_id = upload(client, content, f"{TEST_SCHEMA}.target").json()["id"]
            env_one = dict(os.environ, **host_settings(network.hosts[0], network, site, s3))
            first = start_on(network.hosts[0], env_one, log_dir)

            def loading() -> bool:
                job = client.get(f"/imports/{job_id}").json()
                return bool(job["status"] == "running" and job["rows_loaded"] > 0)

            wait_until(loading, 120, "the first host never loaded a batch", every=0.1)
            killed = set(first.pids())
            env_two = dict(os.environ, **host_settings(network.hosts[1], network, site, s3))
            second = start_on(network.hosts[1], env_two, log_dir)
            first.kill()  # the whole host: its worker and its pool process, at once
            job = wait_for_job(client, job_id, timeout=300)
        assert job["status"] == "completed", job
        assert job["rows_loaded"] == 400_000
        # The first host loaded part of it, the second finished it.
        workers = [
            int(worker.rsplit(":", 1)[1])
            for (worker,) in database.rows(
                "SELECT worker FROM import_segments WHERE job_id = %s ORDER BY id", (job_id,)
            )
        ]
        assert workers[0] in killed
        assert second is not None
        assert workers[-1] in second.pids()
        database.copy_csv(f"{TEST_SCHEMA}.reference", content)
        assert database.fingerprint(f"{TEST_SCHEMA}.target") == database.fingerprint(
            f"{TEST_SCHEMA}.reference"
        )
        assert not api_uploads.exists() or not list(api_uploads.iterdir())
    finally:
        for worker in (first, second):
            if worker is not None:
                worker.stop()
        api.stop()
