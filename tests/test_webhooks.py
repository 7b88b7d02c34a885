"""Webhooks: each job end is posted once, signed as Standard Webhooks says, through the
broker's wait queues until the receiver takes it; outbound requests reach public addresses
only, unless OUTBOUND_ALLOW_NETWORKS allows more.

The end-to-end tests run an API of their own (short retry delays, loopback allowed) on a
database and a virtual host of their own, and a receiver in this process.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import json
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from kombu import Connection
from sqlalchemy import create_engine

from server.jobs.migrate import upgrade
from server.messaging import topology
from server.outbound import RefusedUrl, check_literal, check_syntax, refusal
from server.settings import Settings
from server.webhooks.endpoints import configure
from tests.broker import empty, vhost_beside
from tests.conftest import StartWorker
from tests.harness import Database, bearer, free_port, make_key, start_api, wait_until
from tests.support import (
    CUSTOMER_COLUMNS,
    CUSTOMERS_DDL,
    TEST_SCHEMA,
    csv_bytes,
    customer_rows,
    keys_command,
    upload,
    wait_for_job,
)
from tests.test_operations import metric

RETRY_DELAYS = [1, 2]


# --- the receiver -------------------------------------------------------------------------


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes
    answered: int


@dataclass
class Receiver:
    """Answers the first `refuse` posts with 503, then 200; keeps every post."""

    refuse: int = 0
    posts: list[Received] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def answer(self) -> int:
        with self.lock:
            return 503 if len(self.posts) < self.refuse else 200

    def accepted(self) -> list[Received]:
        return [post for post in self.posts if post.answered == 200]


@pytest.fixture
def receiver() -> Iterator[tuple[Receiver, str]]:
    state = Receiver(refuse=2)

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["content-length"]))
            status = state.answer()
            with state.lock:
                state.posts.append(Received(dict(self.headers.items()), body, status))
            self.send_response(status)
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, *_: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state, f"http://127.0.0.1:{server.server_address[1]}/hooks/imports"
    finally:
        server.shutdown()
        server.server_close()


def verify(secret: str, post: Received) -> dict[str, Any]:
    """Standard Webhooks' check, written out from the specification: HMAC-SHA256 of
    `id.timestamp.body` with the base64-decoded secret, one of the `v1,` signatures."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    headers = {name.lower(): value for name, value in post.headers.items()}
    signed = f"{headers['webhook-id']}.{headers['webhook-timestamp']}.".encode() + post.body
    expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    given = [s.split(",", 1)[1] for s in headers["webhook-signature"].split() if s[:3] == "v1,"]
    assert any(hmac.compare_digest(expected, signature) for signature in given)
    assert abs(time.time() - int(headers["webhook-timestamp"])) < 300
    payload: dict[str, Any] = json.loads(post.body)
    return payload


# --- a site of its own --------------------------------------------------------------------


@dataclass(frozen=True)
class Site:
    url: str
    database: Database
    settings: dict[str, str]
    secret: str
    key: str

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers=bearer(self.key), timeout=60)


@pytest.fixture
def site(fresh_database: str, log_dir: Path) -> Iterator[Site]:
    upgrade(fresh_database)
    database = Database(fresh_database)
    database.execute(f"CREATE SCHEMA {TEST_SCHEMA}")
    database.execute(f"CREATE TABLE {TEST_SCHEMA}.target {CUSTOMERS_DDL}")
    broker_url = vhost_beside("_webhooks")
    settings = {
        "database_url": fresh_database,
        "broker_url": broker_url,
        "webhook_retry_delays_seconds": ",".join(map(str, RETRY_DELAYS)),
        "outbound_allow_networks": "127.0.0.0/8",
    }
    env = dict(os.environ, **{name.upper(): value for name, value in settings.items()})
    typed = Settings(**settings)  # type: ignore[arg-type]
    empty(typed)
    port = free_port()
    api = start_api(env, log_dir, port)
    secret = _secret(fresh_database, "hooked")
    key = make_key(fresh_database, "hooked")
    try:
        yield Site(f"http://127.0.0.1:{port}", database, settings, secret, key)
    finally:
        api.stop()
        empty(typed)


def _secret(database_url: str, tenant: str) -> str:
    engine = create_engine(database_url)
    try:
        with engine.begin() as connection:
            made = configure(connection, tenant, None, keep_url=False, new_secret=True)
    finally:
        engine.dispose()
    assert made is not None
    return made


def deliveries(client: httpx.Client, job_id: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = client.get(f"/imports/{job_id}").json()["deliveries"]
    return found


def attempts_counted(site: Site) -> dict[str, float]:
    body = httpx.get(f"{site.url}/metrics", timeout=30).text
    name = "csv_import_webhook_attempts_total"
    return {
        outcome: metric(body, f'{name}{{outcome="{outcome}"}}')
        for outcome in ("delivered", "retrying", "given_up")
    }


# --- end to end ---------------------------------------------------------------------------


@pytest.mark.slow
def test_a_receiver_that_refuses_twice_gets_each_job_end_once_and_signed(
    site: Site, workers: StartWorker, receiver: tuple[Receiver, str]
) -> None:
    state, url = receiver
    content = csv_bytes(CUSTOMER_COLUMNS, customer_rows(500))
    workers(**site.settings)
    counted_before = attempts_counted(site)
    with site.client() as client:
        answer = upload(client, content, f"{TEST_SCHEMA}.target", callback_url=url)
        assert answer.status_code == 202, answer.text
        job_id = answer.json()["id"]
        assert answer.json()["callback_url"] == url
        job = wait_for_job(client, job_id)
        assert job["status"] == "completed"

        def delivered() -> list[dict[str, Any]] | None:
            found = deliveries(client, job_id)
            return found if found and found[0]["status"] == "delivered" else None

        [delivery] = wait_until(delivered, 60, lambda: f"not delivered: {state.posts}", every=0.2)
        time.sleep(sum(RETRY_DELAYS) + 1)  # long enough for any stray attempt to arrive
    assert [post.answered for post in state.posts] == [503, 503, 200]
    assert delivery["attempts"] == 3
    assert delivery["last_status_code"] == 200
    assert delivery["event"] == "import.completed"
    # Every attempt is the same message: one id, one body, a fresh signature each time.
    assert {post.headers["webhook-id"] for post in state.posts} == {delivery["id"]}
    assert len({post.body for post in state.posts}) == 1
    payload = verify(site.secret, state.accepted()[0])
    assert payload["type"] == "import.completed"
    assert payload["data"]["id"] == job_id
    assert payload["data"]["status"] == "completed"
    assert payload["data"]["rows_loaded"] == 500
    assert payload["data"]["url"].endswith(f"/imports/{job_id}")
    after = attempts_counted(site)
    assert {k: after[k] - counted_before[k] for k in after} == {
        "delivered": 1,
        "retrying": 2,
        "given_up": 0,
    }
    with pytest.raises(AssertionError):
        verify(
            "whsec_" + base64.b64encode(b"another secret, not the tenant's").decode(),
            state.posts[2],
        )


@pytest.mark.slow
def test_a_job_ended_by_sql_alone_is_announced_by_the_sweeper(
    site: Site, workers: StartWorker, receiver: tuple[Receiver, str]
) -> None:
    state, url = receiver
    state.refuse = 0
    content = csv_bytes(CUSTOMER_COLUMNS, customer_rows(10))
    with site.client() as client:
        job_id = upload(client, content, f"{TEST_SCHEMA}.target", callback_url=url).json()["id"]
        # No worker runs yet: the job waits, queued; an operator cancels it by hand.
        site.database.execute(
            "UPDATE import_jobs SET status = 'cancelled', finished_at = now() WHERE id = %s",
            (job_id,),
        )
        site.database.execute(  # once more: an end that was no change makes no delivery
            "UPDATE import_jobs SET status = 'cancelled' WHERE id = %s", (job_id,)
        )
        workers(**site.settings)
        wait_until(lambda: state.accepted(), 60, "the sweeper did not publish the webhook")
        time.sleep(2)
        [delivery] = deliveries(client, job_id)
    assert delivery["status"] == "delivered"
    assert len(state.posts) == 1
    assert verify(site.secret, state.posts[0])["type"] == "import.cancelled"


@pytest.mark.slow
def test_an_address_that_may_not_be_reached_is_given_up_at_once_and_dead_lettered(
    site: Site, workers: StartWorker
) -> None:
    # `localhost` is a name: the upload takes it; the worker, after looking it up, refuses.
    closed = {**site.settings, "outbound_allow_networks": "192.0.2.0/24"}
    workers(**closed)
    content = csv_bytes(CUSTOMER_COLUMNS, customer_rows(10))
    with site.client() as client:
        url = f"http://localhost:{free_port()}/hook"
        job_id = upload(client, content, f"{TEST_SCHEMA}.target", callback_url=url).json()["id"]
        assert wait_for_job(client, job_id)["status"] == "completed"

        def given_up() -> dict[str, Any] | None:
            found = deliveries(client, job_id)
            return found[0] if found and found[0]["status"] == "failed" else None

        delivery = wait_until(given_up, 60, "the delivery was not given up", every=0.2)
    assert delivery["attempts"] == 1
    assert "loopback" in delivery["last_error"]
    assert "OUTBOUND_ALLOW_NETWORKS" in delivery["last_error"]
    with Connection(site.settings["broker_url"]) as connection:

        def dead_lettered() -> bool:
            channel: Any = connection.default_channel
            found = channel.queue_declare(topology.WEBHOOK_DEAD_QUEUE, passive=True)
            return bool(found.message_count == 1)

        wait_until(dead_lettered, 30, "the given-up delivery is not in webhooks.dead")


# --- the upload's field and the tenant's settings ------------------------------------------


def test_a_callback_url_needs_a_signing_secret_and_a_public_address(
    client: httpx.Client, make_key: Any
) -> None:
    content = csv_bytes(CUSTOMER_COLUMNS, customer_rows(3))
    target = "public.customers"
    no_secret = upload(client, content, target, callback_url="https://example.com/hook")
    assert no_secret.status_code == 422
    assert no_secret.json()["error"]["code"] == "webhook_secret_missing"
    assert "csv-import-keys webhook" in no_secret.json()["error"]["message"]
    tenant = f"hooks-{time.monotonic_ns()}"
    assert keys_command("webhook", "--tenant", tenant).returncode == 0
    with httpx.Client(base_url=str(client.base_url), headers=bearer(make_key(tenant))) as theirs:
        for url, code in [
            ("http://127.0.0.1:8000/metrics", "callback_refused"),
            ("http://169.254.169.254/latest/meta-data/", "callback_refused"),
            ("http://10.1.2.3/hook", "callback_refused"),
            ("http://[::1]/hook", "callback_refused"),
            ("ftp://example.com/hook", "invalid_option"),
            ("https://user:pass@example.com/hook", "invalid_option"),
        ]:
            refused = upload(theirs, content, target, callback_url=url)
            assert refused.status_code == 422, url
            assert refused.json()["error"]["code"] == code, url
            assert refused.json()["error"]["field"] == "callback_url", url


def test_the_key_command_shows_a_secret_once_and_keeps_the_default_endpoint(
    prepared: None,
) -> None:
    tenant = f"hooks-{time.monotonic_ns()}"
    made = keys_command("webhook", "--tenant", tenant, "--url", "https://example.com/in")
    assert made.returncode == 0, made.stderr
    secret = made.stdout.strip()
    assert secret.startswith("whsec_")
    assert len(base64.b64decode(secret.removeprefix("whsec_"))) == 32
    again = keys_command("webhook", "--tenant", tenant)
    assert again.returncode == 0
    assert again.stdout.strip() == ""  # shown once: never again
    assert "https://example.com/in" in again.stderr
    rotated = keys_command("webhook", "--tenant", tenant, "--new-secret")
    assert rotated.stdout.strip().startswith("whsec_")
    assert rotated.stdout.strip() != secret
    assert "https://example.com/in" in rotated.stderr
    refused = keys_command("webhook", "--tenant", tenant, "--url", "http://192.168.1.1/")
    assert refused.returncode == 1
    assert "private" in refused.stderr


# --- the outbound rules -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("address", "kind"),
    [
        ("127.0.0.1", "loopback"),
        ("::1", "loopback"),
        ("10.0.0.5", "private"),
        ("172.16.3.4", "private"),
        ("192.168.0.1", "private"),
        ("169.254.169.254", "link-local"),
        ("fe80::1", "link-local"),
        ("fd00::1", "private"),
        ("::ffff:127.0.0.1", "loopback"),
        ("0.0.0.0", "unspecified"),  # noqa: S104 - an address to refuse, not to bind
        ("224.0.0.1", "multicast"),
        ("100.64.0.1", "not a public address"),
    ],
)
def test_addresses_that_are_not_public_are_refused(address: str, kind: str) -> None:
    reason = refusal(ipaddress.ip_address(address), [])
    assert reason is not None
    assert kind in reason


def test_public_addresses_and_allowed_networks_may_be_reached() -> None:
    assert refusal(ipaddress.ip_address("93.184.215.14"), []) is None
    assert refusal(ipaddress.ip_address("2606:4700::1111"), []) is None
    allowed = [ipaddress.ip_network("10.20.0.0/16")]
    assert refusal(ipaddress.ip_address("10.20.3.4"), allowed) is None
    assert refusal(ipaddress.ip_address("10.21.3.4"), allowed) is not None
    check_literal("http://10.20.3.4:8080/hook", allowed)
    with pytest.raises(RefusedUrl, match="OUTBOUND_ALLOW_NETWORKS"):
        check_literal("http://10.21.3.4/hook", allowed)


@pytest.mark.parametrize(
    "url",
    [
        "example.com/hook",
        "ftp://example.com/",
        "https:///path",
        "https://a:b@example.com/",
        "http://example.com:99999/",
        "https://" + "a" * 2000 + ".com/",
    ],
)
def test_urls_that_are_not_plain_http_are_refused(url: str) -> None:
    with pytest.raises(RefusedUrl):
        check_syntax(url)
