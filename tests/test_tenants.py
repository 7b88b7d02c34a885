"""API keys keep tenants apart: another tenant's job answers exactly like a missing one.

Two tenants, each with its own real key. Every way one could reach the other's job, its
events, its refused rows or its idempotency key answers 404 (or simply does not show it);
a missing, wrong or revoked key gets 401; a tampered or expired event-stream token opens
nothing; a tenant's targets can be limited.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlparse

import httpx
import pytest

from server.keys import tokens
from server.keys.keys import digest
from tests.conftest import ENV, MakeKey, MakeTable
from tests.harness import Database, Process, bearer
from tests.support import (
    CUSTOMER_COLUMNS,
    csv_bytes,
    customer_rows,
    keys_command,
    upload,
    wait_for_job,
)

SECRET = ENV["SECRET_KEY"].encode()
ROWS = csv_bytes(CUSTOMER_COLUMNS, [*customer_rows(3), ["x", "bad@example.com"] + [""] * 6])


@dataclass
class Tenant:
    name: str
    key: str
    http: httpx.Client


@pytest.fixture
def tenants(api: str, make_key: MakeKey) -> Iterator[tuple[Tenant, Tenant]]:
    made = []
    for side in ("a", "b"):
        name = f"{side}-{uuid.uuid4().hex[:8]}"
        key = make_key(name)
        made.append(Tenant(name, key, httpx.Client(base_url=api, headers=bearer(key), timeout=60)))
    yield made[0], made[1]
    for tenant in made:
        tenant.http.close()


@pytest.fixture
def finished_job(
    tenants: tuple[Tenant, Tenant], worker: Process, table: MakeTable
) -> dict[str, Any]:
    """Tenant a's job, done, with one refused row."""
    owner, _ = tenants
    job = wait_for_job(owner.http, upload(owner.http, ROWS, table()).json()["id"])
    assert (job["status"], job["rows_refused"]) == ("completed", 1)
    return job


def not_found(response: httpx.Response, job_id: str) -> bool:
    """The very answer a job that does not exist gets."""
    return response.status_code == 404 and response.json() == {
        "error": {"code": "job_not_found", "message": f"no import with id {job_id}"}
    }


def token_of(job: dict[str, Any]) -> str:
    url: str = job["events_url"]
    return parse_qs(urlparse(url).query)["token"][0]


def events(http: httpx.Client, job_id: str, token: str | None = None) -> httpx.Response:
    params = {"token": token} if token is not None else {}
    return http.get(f"/imports/{job_id}/events", params=params)


def test_another_tenants_job_is_not_there(
    tenants: tuple[Tenant, Tenant],
    finished_job: dict[str, Any],
) -> None:
    owner, other = tenants
    job_id = finished_job["id"]
    attempts = {
        "job": other.http.get(f"/imports/{job_id}"),
        "events": events(other.http, job_id),
        "refused rows": other.http.get(f"/imports/{job_id}/errors"),
        "refused rows as CSV": other.http.get(f"/imports/{job_id}/errors?format=csv"),
        "refused rows, Accept CSV": other.http.get(
            f"/imports/{job_id}/errors", headers={"Accept": "text/csv"}
        ),
        "cancel": other.http.post(f"/imports/{job_id}/cancel"),
    }
    missing = str(uuid.uuid4())
    assert not_found(other.http.get(f"/imports/{missing}"), missing)
    leaks = [what for what, response in attempts.items() if not not_found(response, job_id)]
    assert leaks == []
    assert owner.http.get(f"/imports/{job_id}").json()["status"] == "completed"
    assert len(owner.http.get(f"/imports/{job_id}/errors").json()["items"]) == 1


def test_a_cancel_from_another_tenant_changes_nothing(
    tenants: tuple[Tenant, Tenant],
    table: MakeTable,
    db: Database,
) -> None:
    owner, other = tenants
    job_id = upload(owner.http, ROWS, table()).json()["id"]
    assert not_found(other.http.post(f"/imports/{job_id}/cancel"), job_id)
    assert db.value("SELECT cancel_requested FROM import_jobs WHERE id = %s", (job_id,)) is False


def test_listings_show_only_the_tenants_own_jobs(
    tenants: tuple[Tenant, Tenant],
    table: MakeTable,
) -> None:
    owner, other = tenants
    target = table()
    mine = {upload(owner.http, ROWS, target).json()["id"] for _ in range(2)}
    theirs = upload(other.http, ROWS, target).json()["id"]
    assert {job["id"] for job in owner.http.get("/imports").json()["items"]} == mine
    assert [job["id"] for job in other.http.get("/imports").json()["items"]] == [theirs]


def test_an_event_stream_token_opens_its_own_job_only(
    tenants: tuple[Tenant, Tenant],
    finished_job: dict[str, Any],
    table: MakeTable,
) -> None:
    owner, other = tenants
    their_job = upload(other.http, ROWS, table()).json()
    anonymous = httpx.Client(base_url=str(owner.http.base_url), timeout=60)
    job_id = finished_job["id"]
    with anonymous:
        assert events(anonymous, job_id, token_of(finished_job)).status_code == 200
        assert "event: completed" in events(anonymous, job_id, token_of(finished_job)).text
        assert not_found(events(anonymous, job_id, token_of(their_job)), job_id)
        assert not_found(events(other.http, job_id, token_of(their_job)), job_id)
    # With a key, the key decides, whatever the token.
    assert not_found(events(other.http, job_id, token_of(finished_job)), job_id)


def test_a_tampered_expired_or_foreign_token_opens_nothing(
    api: str,
    tenants: tuple[Tenant, Tenant],
    finished_job: dict[str, Any],
) -> None:
    owner, _ = tenants
    job_id = uuid.UUID(finished_job["id"])
    good = token_of(finished_job)
    expires, mac = good.split(".")
    flipped = mac[:-1] + ("A" if mac[-1] != "A" else "B")
    later = int(time.time()) + 3600
    refused = {
        "tampered mac": f"{expires}.{flipped}",
        "later expiry, same mac": f"{later}.{mac}",
        "expired": tokens.sign(SECRET, job_id, owner.name, int(time.time()) - 1),
        "another secret": tokens.sign(b"x" * 32, job_id, owner.name, later),
        "another tenant": tokens.sign(SECRET, job_id, "someone-else", later),
        "not a token": "'; DROP TABLE import_jobs; --",
        "empty": "",
    }
    with httpx.Client(base_url=api, timeout=30) as anonymous:
        opened = [
            what
            for what, token in refused.items()
            if not not_found(events(anonymous, str(job_id), token), str(job_id))
        ]
        fresh = tokens.sign(SECRET, job_id, owner.name, later)
        assert events(anonymous, str(job_id), fresh).status_code == 200
    assert opened == []


def test_an_idempotency_key_belongs_to_its_tenant(
    tenants: tuple[Tenant, Tenant],
    table: MakeTable,
) -> None:
    owner, other = tenants
    target, key = table(), {"Idempotency-Key": f"nightly-{uuid.uuid4()}"}
    first = upload(owner.http, ROWS, target, headers=key)
    theirs = upload(other.http, ROWS, target, headers=key)
    again = upload(owner.http, ROWS, target, headers=key)

    assert theirs.status_code == 202
    assert theirs.json()["id"] != first.json()["id"]
    assert "Idempotent-Replayed" not in theirs.headers
    assert again.json()["id"] == first.json()["id"]
    assert again.headers["Idempotent-Replayed"] == "true"


CALLS = [
    ("GET", "/imports"),
    ("POST", "/imports"),
    ("GET", "/targets"),
    ("GET", "/imports/{id}"),
    ("GET", "/imports/{id}/events"),
    ("GET", "/imports/{id}/errors"),
    ("GET", "/imports/{id}/errors?format=csv"),
    ("POST", "/imports/{id}/cancel"),
]


def revoked_key(make_key: MakeKey, db: Database) -> str:
    """A key that worked, revoked with the operator's command."""
    key = make_key("revoked")
    key_id = db.value("SELECT id FROM api_keys WHERE key_hash = %s", (digest(key),))
    assert keys_command("revoke", str(key_id)).returncode == 0
    return key


@pytest.mark.parametrize("credentials", ["missing", "wrong", "revoked", "not bearer"])
def test_without_a_valid_key_every_endpoint_answers_401(
    api: str,
    make_key: MakeKey,
    db: Database,
    finished_job: dict[str, Any],
    credentials: str,
) -> None:
    made: dict[str, Callable[[], dict[str, str]]] = {
        "missing": dict,
        "wrong": lambda: bearer("csvi_" + "x" * 43),
        "revoked": lambda: bearer(revoked_key(make_key, db)),
        "not bearer": lambda: {"Authorization": "Basic dXNlcjpwYXNz"},
    }
    headers = made[credentials]()
    with httpx.Client(base_url=api, headers=headers, timeout=30) as http:
        answers = [
            http.request(method, path.format(id=finished_job["id"])) for method, path in CALLS
        ]
    for (method, path), response in zip(CALLS, answers, strict=True):
        assert response.status_code == 401, (method, path, response.text)
        assert response.headers["WWW-Authenticate"].startswith("Bearer"), (method, path)
        assert set(response.json()["error"]) == {"code", "message"}, (method, path)


def test_health_metrics_and_the_page_need_no_key(api: str) -> None:
    with httpx.Client(base_url=api, timeout=30) as anonymous:
        assert [anonymous.get(path).status_code for path in ("/health", "/metrics", "/")] == [
            200,
            200,
            200,
        ]


def test_a_tenant_limited_to_some_targets_is_refused_the_others(
    api: str,
    make_key: MakeKey,
    table: MakeTable,
) -> None:
    open_to_it, closed_to_it = table(), table()
    key = make_key(f"limited-{uuid.uuid4().hex[:8]}", targets=[open_to_it, "public.import_jobs"])
    with httpx.Client(base_url=api, headers=bearer(key), timeout=60) as http:
        accepted = upload(http, ROWS, open_to_it)
        refused = [upload(http, ROWS, name) for name in (closed_to_it, "public.import_jobs")]
        listed = [t["name"] for t in http.get("/targets").json()["items"]]
    assert accepted.status_code == 202, accepted.text
    for response in refused:
        assert response.status_code == 422
        assert response.json()["error"]["code"] == "unknown_target"
        assert "not a table that imports are allowed into" in response.json()["error"]["message"]
    assert listed == [open_to_it], "the operator's allow-list still applies"
