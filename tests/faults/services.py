"""Private RabbitMQ and Redis servers that the fault tests may stop and start at will.

The shared services on localhost belong to everybody who runs tests on this machine; a
test that restarts a broker starts its own, on its own ports and in its own directories.
"""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import signal
import socket
import subprocess
import uuid
from pathlib import Path

import redis
from kombu import Connection

from server.services import CannotStart
from server.services.endpoints import Endpoint
from server.services.rabbitmq import LocalRabbit
from server.services.redis_server import server_command
from tests.harness import wait_until

# Ports below the kernel's ephemeral range: a port handed out for an outgoing connection
# could otherwise be taken again while the broker is down, and it would not start again.
_LOW_PORTS = (20000, 32000)


def low_free_port() -> int:
    for _ in range(200):
        port = random.randrange(*_LOW_PORTS)
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port below the ephemeral range")


class PrivateRabbit(LocalRabbit):
    """A RabbitMQ node of its own (the project's own kind, without the management UI) that
    a test may stop and start at will; removed with its data at the end."""

    def __init__(self, base: Path, log_path: Path) -> None:
        node = f"csvimport-faults-{uuid.uuid4().hex[:8]}@localhost"
        endpoint = Endpoint("127.0.0.1", low_free_port())
        super().__init__(base / node, endpoint, management=False, node=node)
        self.distribution_port = low_free_port()
        self.log = log_path
        self.url = f"amqp://guest:guest@127.0.0.1:{endpoint.port}//"
        self.start()
        self.wait_until_serving()

    def serving(self) -> bool:
        try:
            with Connection(self.url, connect_timeout=2) as connection:
                connection.ensure_connection(max_retries=1)
        except Exception:
            return False
        return True

    def wait_until_serving(self) -> None:
        wait_until(
            self.serving, 60, f"RabbitMQ node {self.node} does not accept connections", every=0.5
        )

    def stop_app(self) -> None:
        self.ctl("stop_app")

    def start_app(self) -> None:
        self.ctl("start_app")
        self.wait_until_serving()

    def shutdown(self) -> None:
        with contextlib.suppress(CannotStart):
            self.stop()
        if self.process is not None and self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=30)
        shutil.rmtree(self.home, ignore_errors=True)


class PrivateRedis:
    """A Redis server of its own, without persistence, that can be stopped and started
    again on the same port."""

    def __init__(self) -> None:
        self.port = low_free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen[bytes] | None = None
        self.start()

    def start(self) -> None:
        self.process = subprocess.Popen(
            server_command(Endpoint("127.0.0.1", self.port)),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_until(self.pings, 10, "private Redis did not start")

    def pings(self) -> bool:
        try:
            return bool(redis.Redis.from_url(self.url, socket_timeout=1).ping())
        except redis.RedisError:
            return False

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=30)
        self.process = None
