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

from tests.harness import wait_until

# The real scripts, not the Debian wrapper in /usr/sbin that switches to the `rabbitmq`
# user (who may not write our directories).
_RABBITMQ_BIN = Path("/usr/lib/rabbitmq/bin")
# Ports below the kernel's ephemeral range: a port handed out for an outgoing connection
# could otherwise be taken again while the broker is down, and it would not start again.
_LOW_PORTS = (20000, 32000)


def rabbitmq_script(name: str) -> str | None:
    own = _RABBITMQ_BIN / name
    return str(own) if own.exists() else shutil.which(name)


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


class PrivateRabbit:
    """A RabbitMQ node of its own: own node name, ports, data, logs and Erlang cookie."""

    def __init__(self, base: Path, log_path: Path) -> None:
        self.node = f"csvimport-faults-{uuid.uuid4().hex[:8]}@localhost"
        self.port = low_free_port()
        self.base = base / self.node
        self.home = self.base / "home"
        self.home.mkdir(parents=True)
        config = self.base / "rabbitmq.conf"
        config.write_text("log.console = false\n")
        (self.base / "enabled_plugins").write_text("[].\n")
        (self.base / "rabbitmq-env.conf").write_text("")
        self.env = dict(
            os.environ,
            HOME=str(self.home),
            RABBITMQ_NODENAME=self.node,
            RABBITMQ_NODE_IP_ADDRESS="127.0.0.1",
            RABBITMQ_NODE_PORT=str(self.port),
            RABBITMQ_DIST_PORT=str(low_free_port()),
            RABBITMQ_CONFIG_FILE=str(config),
            RABBITMQ_ENABLED_PLUGINS_FILE=str(self.base / "enabled_plugins"),
            RABBITMQ_CONF_ENV_FILE=str(self.base / "rabbitmq-env.conf"),
            RABBITMQ_ADVANCED_CONFIG_FILE=str(self.base / "advanced.config"),
            RABBITMQ_MNESIA_BASE=str(self.base / "mnesia"),
            RABBITMQ_LOG_BASE=str(self.base / "log"),
            RABBITMQ_PID_FILE=str(self.base / "pid"),
        )
        self.url = f"amqp://guest:guest@127.0.0.1:{self.port}//"
        self._log = log_path.open("wb")
        server = rabbitmq_script("rabbitmq-server")
        assert server is not None
        self.process = subprocess.Popen(
            [server],
            env=self.env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.ctl("wait", str(self.base / "pid"), "--timeout", "120", timeout=150)
        self.wait_until_serving()

    def ctl(self, *args: str, timeout: float = 60) -> str:
        ctl = rabbitmq_script("rabbitmqctl")
        assert ctl is not None
        done = subprocess.run(
            [ctl, "-n", self.node, *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        assert done.returncode == 0, f"rabbitmqctl {' '.join(args)}: {done.stdout}{done.stderr}"
        return done.stdout

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
        with contextlib.suppress(AssertionError, subprocess.TimeoutExpired):
            self.ctl("shutdown", timeout=60)
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=30)
        self._log.close()
        shutil.rmtree(self.base, ignore_errors=True)


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
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ],
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
