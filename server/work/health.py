"""Container health check for a worker: can it reach the broker and the database?

python -m server.work.health
"""

from __future__ import annotations

import sys

from kombu import Connection
from sqlalchemy import text

from server.db import worker_engine
from server.settings import get_settings


def main() -> int:
    settings = get_settings()
    try:
        with Connection(settings.broker_url, connect_timeout=3) as connection:
            connection.ensure_connection(max_retries=1)
        engine = worker_engine(settings)
        with engine.connect() as db:
            db.execute(text("SELECT 1"))
        engine.dispose()
    except Exception as error:  # noqa: BLE001 - any failure is unhealthy
        print(f"unhealthy: {type(error).__name__}: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
