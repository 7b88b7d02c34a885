"""API keys: the operator's command, keys stored only as hashes, the signing secret, the
event-stream tokens, and the first key a fresh install gets."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from pydantic import ValidationError
from sqlalchemy.engine import make_url

from server.keys import tokens
from server.keys.keys import digest
from server.keys.secret import UnsafeSecret, local_secret, signing_secret
from server.settings import Settings
from tests.conftest import ENV
from tests.harness import ROOT, Database, bearer
from tests.support import keys_command

JOB = uuid.UUID("6f1c7f4e-9d0a-4a53-8d5e-2b1c0e7a9f10")
SECRET = b"s" * 32


def test_a_created_key_is_printed_once_and_stored_only_as_its_hash(api: str, db: Database) -> None:
    tenant = f"acme-{uuid.uuid4().hex[:8]}"
    created = keys_command("create", "--tenant", tenant, "--name", "nightly export")
    assert created.returncode == 0, created.stderr
    key = created.stdout.strip()
    assert created.stdout == key + "\n", "the key alone on stdout"
    assert key.startswith("csvi_")
    assert len(key) > 40

    rows = db.rows("SELECT key_hash, t::text FROM api_keys t WHERE tenant = %s", (tenant,))
    assert [row[0] for row in rows] == [digest(key)]
    assert key not in rows[0][1]
    assert db.value("SELECT count(*) FROM api_keys t WHERE strpos(t::text, %s) > 0", (key,)) == 0
    assert httpx.get(f"{api}/imports", headers=bearer(key)).status_code == 200


def test_keys_are_listed_without_themselves_and_revoked_for_good(api: str, db: Database) -> None:
    tenant = f"acme-{uuid.uuid4().hex[:8]}"
    key = keys_command("create", "--tenant", tenant, "--targets", "public.customers").stdout.strip()
    listing = keys_command("list", "--tenant", tenant)
    assert listing.returncode == 0
    assert tenant in listing.stdout
    assert key[:11] in listing.stdout
    assert key not in listing.stdout
    assert "public.customers" in listing.stdout
    key_id = str(db.value("SELECT id FROM api_keys WHERE key_hash = %s", (digest(key),)))

    assert keys_command("revoke", key_id).returncode == 0
    assert keys_command("revoke", key_id).returncode == 1, "already revoked"
    assert httpx.get(f"{api}/imports", headers=bearer(key)).status_code == 401


@pytest.mark.parametrize(
    "args",
    [
        ["create", "--tenant", "bad tenant"],
        ["create", "--tenant", ""],
        ["create", "--tenant", "ok", "--targets", "a.b.c"],
        ["revoke", "999999999"],
    ],
    ids=["space in tenant", "empty tenant", "bad target", "no such key"],
)
def test_the_key_command_refuses_what_it_cannot_do(args: list[str], prepared: None) -> None:
    result = keys_command(*args)
    assert result.returncode == 1, result.stdout + result.stderr
    assert result.stdout == ""


def test_a_token_opens_one_job_of_one_tenant_until_it_expires() -> None:
    token = tokens.sign(SECRET, JOB, "acme", 1000)
    assert tokens.opens(SECRET, token, JOB, "acme", now=999.5)
    assert tokens.opens(SECRET, token, JOB, "acme", now=1000)
    assert not tokens.opens(SECRET, token, JOB, "acme", now=1000.5)
    assert not tokens.opens(SECRET, token, uuid.uuid4(), "acme", now=0)
    assert not tokens.opens(SECRET, token, JOB, "acme2", now=0)
    assert not tokens.opens(b"t" * 32, token, JOB, "acme", now=0)
    for garbage in ("", ".", "1000.", token + "=", "١٠٠٠." + token.split(".")[1], "é" * 50):
        assert not tokens.opens(SECRET, garbage, JOB, "acme", now=0), garbage


def test_a_short_secret_is_refused_and_production_needs_one() -> None:
    with pytest.raises(ValidationError, match="at least 32"):
        Settings(secret_key="changethis")  # noqa: S106 - the weak secret it refuses
    with pytest.raises(UnsafeSecret, match="SECRET_KEY"):
        signing_secret(Settings(secret_key="", environment="production"))
    assert signing_secret(Settings(secret_key="k" * 32, environment="production")) == b"k" * 32


def test_a_local_secret_is_made_once_readable_by_its_owner_only(tmp_path: Path) -> None:
    path = tmp_path / "var" / "secret-key"
    first = local_secret(path)
    assert len(first) >= 32
    assert local_secret(path) == first
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    path.write_text("short\n")
    with pytest.raises(UnsafeSecret):
        local_secret(path)


@pytest.fixture
def fresh_database(prepared: None) -> Iterator[str]:
    """An empty database of its own, as on a fresh clone."""
    url = make_url(ENV["DATABASE_URL"])
    name = f"{url.database}_fresh_{os.getpid()}"
    server = Database(ENV["DATABASE_URL"]).connect()  # DROP DATABASE runs outside a transaction
    try:
        server.cursor().execute(f'DROP DATABASE IF EXISTS "{name}"')
        yield url.set(database=name).render_as_string(hide_password=False)
        server.cursor().execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        server.close()


def test_a_fresh_install_gets_a_first_key_in_a_private_file(
    fresh_database: str,
    tmp_path: Path,
) -> None:
    key_file = tmp_path / "var" / "api-key"
    env = dict(os.environ, DATABASE_URL=fresh_database, API_KEY_FILE=str(key_file))

    def setup() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "server.setup"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    first = setup()
    assert first.returncode == 0, first.stderr
    assert f"an API key for tenant 'default' is in {key_file}" in first.stdout
    key = key_file.read_text().strip()
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    fresh = Database(fresh_database.replace("postgresql+psycopg2://", "postgresql://"))
    assert fresh.rows("SELECT tenant, key_hash FROM api_keys") == [("default", digest(key))]

    again = setup()
    assert again.returncode == 0, again.stderr
    assert key_file.read_text().strip() == key, "a second setup keeps the first key"
    assert fresh.value("SELECT count(*) FROM api_keys") == 1


def test_an_operators_key_sees_the_workers_and_a_tenants_key_does_not(api: str) -> None:
    tenant = f"ops-{uuid.uuid4().hex[:8]}"
    made = keys_command("create", "--tenant", tenant, "--operator")
    assert made.returncode == 0, made.stderr
    plain = keys_command("create", "--tenant", tenant).stdout.strip()
    assert "yes" in keys_command("list", "--tenant", tenant).stdout  # the operator column
    with httpx.Client(base_url=api, timeout=30) as http:
        seen = http.get("/workers", headers=bearer(made.stdout.strip()))
        refused = http.get("/workers", headers=bearer(plain))
    assert seen.status_code == 200
    assert isinstance(seen.json()["items"], list)
    assert (refused.status_code, refused.json()["error"]["code"]) == (403, "operator_only")
