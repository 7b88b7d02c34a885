"""The servers' programs come from Debian/Ubuntu packages: installed when we may (root,
apt), or named in the one command that installs them."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

from server.services import CannotStart

POLICY = Path("/usr/sbin/policy-rc.d")


def install_command(packages: list[str]) -> list[str]:
    return ["apt-get", "install", "-y", "-q", "--no-install-recommends", *packages]


def install(packages: list[str]) -> str:
    """Install the packages, or raise with the command that would."""
    command = install_command(packages)
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        raise CannotStart(
            f"{', '.join(packages)} not installed: run `sudo {' '.join(command)}` "
            "(Debian/Ubuntu; elsewhere your system's packages of the same names) "
            "or start a Docker engine, then `make run` again"
        )
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    subprocess.run(["apt-get", "update", "-qq"], env=env, check=False, capture_output=True)
    with no_service_starts():
        done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    if done.returncode:
        raise CannotStart(f"`{' '.join(command)}` failed: {done.stderr.strip()[-2000:]}")
    return f"installed {', '.join(packages)} (their system services were not started)"


@contextlib.contextmanager
def no_service_starts() -> Iterator[None]:
    """Debian's packages start their own servers on the default ports, where the project's
    own are about to start; its policy hook (exit 101: "not allowed") keeps them stopped."""
    if POLICY.exists():
        yield
        return
    POLICY.write_text("#!/bin/sh\nexit 101\n")
    POLICY.chmod(0o755)
    try:
        yield
    finally:
        POLICY.unlink(missing_ok=True)
