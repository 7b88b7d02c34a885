"""The servers' programs come from Debian/Ubuntu packages: installed when we may (root,
apt), or named in the one command that installs them."""

from __future__ import annotations

import os
import shutil
import subprocess

from server.services import CannotStart


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
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    if done.returncode:
        raise CannotStart(f"`{' '.join(command)}` failed: {done.stderr.strip()[-2000:]}")
    return f"installed {', '.join(packages)}"
