"""The services `make run` needs, brought up when they are not there.

endpoints.py    where a URL points, whether something listens there.
postgresql.py   a project-local PostgreSQL (initdb, pg_ctl) under var/services/postgresql.
redis_server.py a project-local Redis under var/services/redis.
rabbitmq.py     a project-local RabbitMQ node, with its management UI, under
                var/services/rabbitmq.
compose.py      the same three from docker-compose.yml, when a Docker engine runs.
packages.py     the Debian/Ubuntu packages that hold the servers' programs.
bring_up.py     for each service: use it, start it, or say what to do; and stop.

python -m server.services up | stop | status
"""

from __future__ import annotations

import time
from collections.abc import Callable


def wait_for(check: Callable[[], bool], seconds: float) -> bool:
    """Whether `check` came true within `seconds`."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if check():
            return True
        time.sleep(0.1)
    return False


class CannotStart(RuntimeError):
    """What stops a service from starting, in words a user can act on."""
