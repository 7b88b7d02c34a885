"""The secret that signs event-stream tokens.

`SECRET_KEY` when it is set; it must be, in production. A local run without one gets a
random secret, made once into `SECRET_KEY_FILE` (var/, which git ignores) and shared by
every API process on the machine: nothing guessable is ever derived, and a fresh clone
needs no configuration.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path

from server.settings import MIN_SECRET_LENGTH, Settings


class UnsafeSecret(RuntimeError):
    """No secret, or one too short to sign with."""


def signing_secret(settings: Settings) -> bytes:
    if settings.secret_key:
        return settings.secret_key.encode()
    if settings.environment == "production":
        raise UnsafeSecret(
            "set SECRET_KEY in production (at least "
            f"{MIN_SECRET_LENGTH} random characters, the same for every "
            "API process)"
        )
    return local_secret(settings.secret_key_file)


def local_secret(path: Path) -> bytes:
    if not path.exists():
        write_private(path, secrets.token_urlsafe(32), replace=False)
    secret = path.read_text().strip()
    if len(secret) < MIN_SECRET_LENGTH:
        raise UnsafeSecret(
            f"{path} holds a secret shorter than {MIN_SECRET_LENGTH} "
            "characters; delete it to have a new one made"
        )
    return secret.encode()


def write_private(path: Path, text: str, replace: bool = True) -> None:
    """A file that only its owner can read, written aside and put in place whole. Without
    `replace`, a file already there stays: two processes starting at once agree on one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    aside = path.with_name(f".{path.name}.{os.getpid()}")
    with os.fdopen(os.open(aside, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as file:
        file.write(text + "\n")
    try:
        if replace:
            os.replace(aside, path)
        else:
            with contextlib.suppress(FileExistsError):
                os.link(aside, path)
    finally:
        aside.unlink(missing_ok=True)
