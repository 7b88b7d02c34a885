"""A project-local PostgreSQL: its own data directory, port and socket directory.

PostgreSQL refuses to run as root, so as root it runs as the `postgres` account that
Debian's packages create, which must be able to reach the data directory.
"""

from __future__ import annotations

import os
import pwd
import shlex
import shutil
import subprocess
from pathlib import Path

from server.services import CannotStart
from server.services.endpoints import Endpoint

# The account PostgreSQL runs as when we are root (it will not run as root itself).
ROOTLESS_ACCOUNT = "postgres"


def bin_dir() -> Path | None:
    """Debian keeps the server's programs out of PATH, one directory per major version."""
    versions = [
        path.parent
        for path in Path("/usr/lib/postgresql").glob("*/bin/pg_ctl")
        if path.parent.parent.name.isdigit()
    ]
    if versions:
        return max(versions, key=lambda path: int(path.parent.name))
    found = shutil.which("pg_ctl")
    return Path(found).parent if found else None


class LocalPostgres:
    name = "PostgreSQL"
    package = "postgresql"

    def __init__(self, base: Path, endpoint: Endpoint, user: str) -> None:
        self.home = base / "postgresql"
        self.data = self.home / "data"
        self.log = self.home / "server.log"
        self.endpoint = endpoint
        self.user = user

    def installed(self) -> bool:
        return bin_dir() is not None

    def start(self) -> str:
        fresh = not (self.data / "PG_VERSION").exists()
        if fresh:
            self._initialise()
        sockets = shlex.quote(str(self.home.resolve()))
        options = f"-h {self.endpoint.host} -p {self.endpoint.port} -k {sockets}"
        self._run(
            "pg_ctl",
            "-D",
            str(self.data),
            "-l",
            str(self.log),
            "-w",
            "-t",
            "60",
            "-o",
            options,
            "start",
        )
        made = " (initialised now)" if fresh else ""
        return f"data in {self.data}{made}, log {self.log}"

    def running(self) -> bool:
        if not (self.data / "postmaster.pid").exists() or bin_dir() is None:
            return False
        return self._run("pg_ctl", "-D", str(self.data), "status", check=False).returncode == 0

    def stop(self) -> bool:
        if not self.running():
            return False
        self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "-t", "60", "stop")
        return True

    def _initialise(self) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        self._hand_over(self.home)
        self._run(
            "initdb",
            "-D",
            str(self.data),
            "-U",
            self.user,
            "--auth=trust",
            "--encoding=UTF8",
            "--no-locale",
        )

    def _hand_over(self, directory: Path) -> None:
        """As root, the directory belongs to the account the server runs as."""
        if os.geteuid() != 0:
            return
        try:
            account = pwd.getpwnam(ROOTLESS_ACCOUNT)
        except KeyError:
            raise CannotStart(
                f"as root, PostgreSQL runs as the {ROOTLESS_ACCOUNT!r} account, and there is none"
                " (install the postgresql package, or run as another user)"
            ) from None
        os.chown(directory, account.pw_uid, account.pw_gid)
        if self._as_server("test", "-w", str(directory.resolve()), check=False).returncode:
            raise CannotStart(
                f"as root, PostgreSQL runs as {ROOTLESS_ACCOUNT!r}, who cannot reach"
                f" {directory.resolve()} (a parent directory is closed to others):"
                " run `make run` as a normal user, or from a directory others can read"
            )

    def _run(
        self, program: str, *args: str, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        where = bin_dir()
        assert where is not None, "PostgreSQL's programs are not installed"
        done = self._as_server(str(where / program), *args, check=False)
        if check and done.returncode:
            raise CannotStart(
                f"{program} failed: {(done.stderr or done.stdout).strip()} (see {self.log})"
            )
        return done

    def _as_server(self, *command: str, check: bool) -> subprocess.CompletedProcess[str]:
        prefix = ["runuser", "-u", ROOTLESS_ACCOUNT, "--"] if os.geteuid() == 0 else []
        return subprocess.run(
            [*prefix, *command], capture_output=True, text=True, check=check, timeout=120
        )
