"""The migrations create exactly the tables the code queries, keep their revision in a
table of their own, and run with Alembic's usual command line."""

from __future__ import annotations

import subprocess
import sys

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine

from server.db import metadata
from server.jobs import tables as job_tables  # noqa: F401 - the tables join the metadata
from server.jobs.migrate import VERSION_TABLE, alembic_config, upgrade
from server.keys import tables as key_tables  # noqa: F401
from server.webhooks import tables as webhook_tables  # noqa: F401
from tests.conftest import ENV
from tests.harness import ROOT, Database


def test_migrated_schema_matches_the_table_definitions(prepared: None) -> None:
    engine = create_engine(ENV["DATABASE_URL"])
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"version_table": VERSION_TABLE})
        differences = [
            d
            for d in compare_metadata(context, metadata)
            # Tables outside the job records (the demo target) are not modelled.
            if not (d[0] == "remove_table" and d[1].name == "customers")
        ]
    engine.dispose()
    assert differences == []


def test_a_users_own_alembic_version_table_is_left_alone(fresh_database: str) -> None:
    theirs = Database(fresh_database)
    theirs.execute("CREATE TABLE alembic_version (version_num varchar(32) PRIMARY KEY)")
    theirs.execute("INSERT INTO alembic_version VALUES ('their0042')")
    upgrade(fresh_database)
    assert theirs.rows("SELECT version_num FROM alembic_version") == [("their0042",)]
    assert theirs.rows(f"SELECT version_num FROM {VERSION_TABLE}") == [(head(),)]


def test_a_database_migrated_into_the_shared_table_moves_to_its_own(fresh_database: str) -> None:
    """As every database migrated before the version table had a name of its own."""
    upgrade(fresh_database)
    database = Database(fresh_database)
    database.execute(f"ALTER TABLE {VERSION_TABLE} RENAME TO alembic_version")
    database.execute(
        f"ALTER TABLE alembic_version RENAME CONSTRAINT {VERSION_TABLE}_pkc TO alembic_version_pkc"
    )
    upgrade(fresh_database)
    tables = {row[0] for row in database.rows("SELECT tablename FROM pg_tables")}
    assert "alembic_version" not in tables
    assert database.rows(f"SELECT version_num FROM {VERSION_TABLE}") == [(head(),)]


def test_alembic_works_from_the_command_line(fresh_database: str) -> None:
    def alembic(*args: str) -> str:
        done = subprocess.run(
            [sys.executable, "-m", "alembic", *args],
            cwd=ROOT,
            env={**ENV, "DATABASE_URL": fresh_database},
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    alembic("upgrade", "head")
    assert f"{head()} (head)" in alembic("current")
    assert Database(fresh_database).value("SELECT count(*) FROM import_jobs") == 0


def head() -> str:
    found = ScriptDirectory.from_config(alembic_config(ENV["DATABASE_URL"])).get_current_head()
    assert found is not None
    return found
