"""Bring the services up, stop the ones `make run` started, or say where each one is.

python -m server.services up       (what `make run` does first)
python -m server.services stop     (`make stop`)
python -m server.services status
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from server.services import CannotStart
from server.services.bring_up import bring_up, services, stop_all
from server.settings import get_settings


def status() -> list[str]:
    return [
        f"{service.local.name}: {where(service.endpoint.listening(), service.local.running())}"
        f" at {service.endpoint}"
        for service in services(get_settings())
    ]


def where(answers: bool, ours: bool) -> str:
    if ours:
        return "the project's own, running"
    return "answering" if answers else "not answering"


def main(argv: Sequence[str]) -> int:
    which = argv[0] if argv else "status"
    try:
        if which == "up":
            lines = bring_up(get_settings()).lines
        elif which == "stop":
            lines = stop_all(get_settings())
        elif which == "status":
            lines = status()
        else:
            print("usage: python -m server.services [up|stop|status]", file=sys.stderr)
            return 2
    except CannotStart as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
