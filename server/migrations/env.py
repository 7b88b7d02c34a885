"""Alembic environment: the database URL comes from the settings object."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine

from server.db import metadata
from server.jobs import tables as job_tables  # noqa: F401 - the tables join the metadata
from server.keys import tables as key_tables  # noqa: F401
from server.settings import get_settings


def run_migrations() -> None:
    url = context.config.get_main_option("sqlalchemy.url") or get_settings().database_url
    engine = create_engine(url)
    with engine.connect() as connection:
        context.configure(connection=connection, target_metadata=metadata)
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


run_migrations()
