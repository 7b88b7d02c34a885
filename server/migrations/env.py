"""Alembic environment: the database URL comes from the settings object.

The revision lives in a version table of the service's own (`csv_import_version`), so a
database whose own Alembic keeps `alembic_version` is never confused with ours.
"""

from __future__ import annotations

from alembic import context
from alembic.script import ScriptDirectory
from sqlalchemy import (
    Column,
    Connection,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    create_engine,
    insert,
    inspect,
    select,
)

from server.db import metadata
from server.jobs import tables as job_tables  # noqa: F401 - the tables join the metadata
from server.jobs.migrate import SHARED_VERSION_TABLE, VERSION_TABLE
from server.keys import tables as key_tables  # noqa: F401
from server.settings import get_settings
from server.webhooks import tables as webhook_tables  # noqa: F401


def run_migrations() -> None:
    url = context.config.get_main_option("sqlalchemy.url") or get_settings().database_url
    engine = create_engine(url)
    with engine.begin() as connection:
        adopt_shared_version(connection)
    with engine.connect() as connection:
        context.configure(
            connection=connection, target_metadata=metadata, version_table=VERSION_TABLE
        )
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


def adopt_shared_version(connection: Connection) -> None:
    """Databases migrated before kept our revision in Alembic's shared `alembic_version`:
    it moves to our own table, when the revision there is one of ours."""
    tables = inspect(connection).get_table_names()
    if VERSION_TABLE in tables or SHARED_VERSION_TABLE not in tables:
        return
    script = ScriptDirectory.from_config(context.config)
    ours = {revision.revision for revision in script.walk_revisions()}
    shared, own = version_table(SHARED_VERSION_TABLE), version_table(VERSION_TABLE)
    versions = set(connection.execute(select(shared.c.version_num)).scalars())
    if not versions or not versions <= ours:
        return
    own.create(connection)
    connection.execute(insert(own).from_select(["version_num"], select(shared.c.version_num)))
    shared.drop(connection)


def version_table(name: str) -> Table:
    """The shape Alembic gives its version table."""
    return Table(
        name,
        MetaData(),
        Column("version_num", String(32), nullable=False),
        PrimaryKeyConstraint("version_num", name=f"{name}_pkc"),
    )


run_migrations()
