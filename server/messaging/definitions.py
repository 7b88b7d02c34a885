"""The definitions file RabbitMQ loads at boot: the topology, the service's user and its
permissions.

Compose writes it before the broker starts, with the user's password from the environment
(`RABBITMQ_PASSWORD`, from `.env`):

    python -m server.messaging.definitions /data/rabbitmq/definitions.json

A broker that loads definitions at boot makes no default user, so the service's user must be
in the file; RabbitMQ keeps only a salted hash of its password.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import secrets
import sys
from pathlib import Path
from typing import Any

from server.messaging import topology
from server.settings import Settings

USER = "csvimport"
DEFAULT_PASSWORD = "csvimport"  # noqa: S105 - compose's documented default
_SALT_BYTES = 4


def password_hash(password: str, salt: bytes | None = None) -> str:
    """RabbitMQ's `rabbit_password_hashing_sha256`: base64 of a 4-byte salt followed by
    the sha256 of the salt and the password."""
    salt = secrets.token_bytes(_SALT_BYTES) if salt is None else salt
    return base64.b64encode(salt + hashlib.sha256(salt + password.encode()).digest()).decode()


def password_matches(password: str, hashed: str) -> bool:
    salted = base64.b64decode(hashed)
    return password_hash(password, salted[:_SALT_BYTES]) == hashed


def definitions(settings: Settings, user: str, password: str, vhost: str = "/") -> dict[str, Any]:
    return {
        **topology.definitions(topology.build(settings), vhost),
        "vhosts": [{"name": vhost}],
        "users": [
            {
                "name": user,
                "password_hash": password_hash(password),
                "hashing_algorithm": "rabbit_password_hashing_sha256",
                "tags": ["administrator"],
                "limits": {},
            }
        ],
        "permissions": [
            {"user": user, "vhost": vhost, "configure": ".*", "write": ".*", "read": ".*"}
        ],
    }


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        sys.stderr.write("usage: python -m server.messaging.definitions PATH\n")
        return 2
    password = os.environ.get("RABBITMQ_PASSWORD") or DEFAULT_PASSWORD
    found = definitions(Settings(), USER, password)
    path = Path(argv[0])
    path.write_text(json.dumps(found, indent=2, sort_keys=True) + "\n")
    print(f"{path}: the topology and user {USER!r}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
