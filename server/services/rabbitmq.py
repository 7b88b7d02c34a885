"""A project-local RabbitMQ node: its own node name, ports, data, logs and Erlang cookie,
with the management UI beside it (15672 beside 5672).

It runs the real scripts, not Debian's wrapper in /usr/sbin, which switches to the
`rabbitmq` account (who may not write our directories).
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import os
import shutil
import socket
import subprocess
from pathlib import Path

from server.services import CannotStart
from server.services.endpoints import Endpoint
from server.settings import MANAGEMENT_PORT_OFFSET

RABBITMQ_BIN = Path("/usr/lib/rabbitmq/bin")
# Where nodes talk to their command-line tools, from the AMQP port (RabbitMQ's default).
DISTRIBUTION_OFFSET = 20_000
START_SECONDS = 120


def script(name: str) -> str | None:
    own = RABBITMQ_BIN / name
    return str(own) if own.exists() else shutil.which(name)


def port_free(host: str, port: int) -> bool:
    if not 0 < port < 65536:
        return False
    with socket.socket() as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


class LocalRabbit:
    name = "RabbitMQ"
    package = "rabbitmq-server"

    def __init__(
        self,
        home: Path,
        endpoint: Endpoint,
        management: bool = True,
        node: str | None = None,
    ) -> None:
        self.home = home
        self.endpoint = endpoint
        self.log = home / "server.log"
        self.pid_file = home / "pid"
        # One node name per directory: two checkouts on one machine never meet.
        digest = hashlib.sha1(str(home.resolve()).encode()).hexdigest()[:8]  # noqa: S324
        self.node = node or f"csvimport-{digest}@localhost"
        self.management_port = endpoint.port + MANAGEMENT_PORT_OFFSET if management else None
        self.process: subprocess.Popen[bytes] | None = None
        self.distribution_port: int | None = None

    def installed(self) -> bool:
        return script("rabbitmq-server") is not None

    @functools.cached_property
    def env(self) -> dict[str, str]:
        address = "127.0.0.1" if self.endpoint.host == "localhost" else self.endpoint.host
        return dict(
            os.environ,
            HOME=str(self.home / "home"),
            RABBITMQ_NODENAME=self.node,
            RABBITMQ_NODE_IP_ADDRESS=address,
            RABBITMQ_NODE_PORT=str(self.endpoint.port),
            RABBITMQ_DIST_PORT=str(self._distribution_port()),
            RABBITMQ_CONFIG_FILE=str(self.home / "rabbitmq.conf"),
            RABBITMQ_ENABLED_PLUGINS_FILE=str(self.home / "enabled_plugins"),
            RABBITMQ_CONF_ENV_FILE=str(self.home / "rabbitmq-env.conf"),
            RABBITMQ_ADVANCED_CONFIG_FILE=str(self.home / "advanced.config"),
            RABBITMQ_MNESIA_BASE=str(self.home / "mnesia"),
            RABBITMQ_LOG_BASE=str(self.home / "log"),
            RABBITMQ_PID_FILE=str(self.pid_file),
        )

    def start(self) -> str:
        self._configure()
        server = script("rabbitmq-server")
        assert server is not None, "RabbitMQ is not installed"
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [server],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        try:
            self.ctl("wait", str(self.pid_file), "--timeout", str(START_SECONDS))
        except CannotStart:
            raise CannotStart(f"RabbitMQ did not start (see {self.log})") from None
        ui = (
            f"management UI http://127.0.0.1:{self.management_port}/"
            if self.management_port
            else "no management UI (its port is taken)"
        )
        return f"node {self.node}, data in {self.home / 'mnesia'}, {ui}"

    def grant(self, user: str, password: str, vhost: str) -> None:
        """The URL's user and virtual host exist on the node (guest exists already)."""
        if vhost not in self.ctl("-q", "list_vhosts").split():
            self.ctl("add_vhost", vhost)
        if user != "guest" and user not in self.ctl("-q", "list_users").split():
            self.ctl("add_user", user, password)
            self.ctl("set_user_tags", user, "administrator")
        self.ctl("set_permissions", "-p", vhost, user, ".*", ".*", ".*")

    def running(self) -> bool:
        try:
            pid = int(self.pid_file.read_text().strip())
            os.kill(pid, 0)
        except (OSError, ValueError):
            return False
        return True

    def stop(self) -> bool:
        if not self.running():
            return False
        self.ctl("shutdown", timeout=60)
        return True

    def ctl(self, *args: str, timeout: float = START_SECONDS + 30) -> str:
        ctl = script("rabbitmqctl")
        assert ctl is not None, "RabbitMQ is not installed"
        try:
            done = subprocess.run(
                [ctl, "-n", self.node, *args],
                env=self.env,
                capture_output=True,
                text=True,
                timeout=timeout,
                check=False,
            )
        except subprocess.TimeoutExpired:
            raise CannotStart(f"rabbitmqctl {args[0]} took over {timeout:.0f} s") from None
        if done.returncode:
            raise CannotStart(f"rabbitmqctl {' '.join(args)}: {done.stdout}{done.stderr}")
        return done.stdout

    def _configure(self) -> None:
        (self.home / "home").mkdir(parents=True, exist_ok=True)
        lines = ["log.console = false"]
        plugins = []
        if self.management_port and port_free("127.0.0.1", self.management_port):
            lines += [
                "management.tcp.ip = 127.0.0.1",
                f"management.tcp.port = {self.management_port}",
            ]
            plugins.append("rabbitmq_management")
        else:
            self.management_port = None
        (self.home / "rabbitmq.conf").write_text("\n".join(lines) + "\n")
        (self.home / "enabled_plugins").write_text(f"[{','.join(plugins)}].\n")
        (self.home / "rabbitmq-env.conf").write_text("")

    def _distribution_port(self) -> int:
        if self.distribution_port:
            return self.distribution_port
        port = self.endpoint.port + DISTRIBUTION_OFFSET
        if port_free("127.0.0.1", port):
            return port
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            free: int = sock.getsockname()[1]
            return free


def forget_port_mapper() -> None:
    """The Erlang port mapper our node started stays behind it; stop it when no node is
    left registered with it."""
    epmd = shutil.which("epmd")
    if epmd is None:
        return
    names = subprocess.run([epmd, "-names"], capture_output=True, text=True, check=False)
    if names.returncode == 0 and "name " not in names.stdout:
        with contextlib.suppress(OSError):
            subprocess.run([epmd, "-kill"], capture_output=True, check=False, timeout=10)
