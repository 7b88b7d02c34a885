"""Uploads in an S3-compatible store (STORAGE_URL=s3://…), against a real S3 server speaking
the protocol over HTTP (moto's standalone server, started here): an upload lands as an
object and nothing on the API's disk, a read dropped mid-file goes on from the right byte,
a failed upload leaves no parts, housekeeping removes objects."""

from __future__ import annotations

import contextlib
import os
import secrets
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine

from server import housekeeping
from server.jobs.migrate import upgrade
from server.objectstore import READ_BYTES, ObjectStorage, ensure_bucket
from server.settings import Settings
from tests.broker import empty, vhost_beside
from tests.conftest import StartWorker
from tests.harness import Database, bearer, free_port, make_key, start_api, wait_until
from tests.s3server import CREDENTIALS, S3
from tests.support import (
    CUSTOMER_COLUMNS,
    CUSTOMERS_DDL,
    TEST_SCHEMA,
    csv_bytes,
    customer_rows,
    upload,
    wait_for_job,
)
from tests.test_preview import multipart


@pytest.fixture(autouse=True)
def aws_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in CREDENTIALS.items():
        monkeypatch.setenv(name, value)


# --- a connection that drops once, mid-answer -------------------------------------------------


@dataclass
class DroppingProxy:
    """Forwards TCP to the S3 server; once armed, cuts the next answer after `cut_after`
    bytes. Counts the bytes it forwarded to the client."""

    target: int
    cut_after: int | None = None
    forwarded: int = 0
    cuts: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def serve(self) -> int:
        listener = socket.socket()
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()
        port: int = listener.getsockname()[1]
        return port

    def _accept(self, listener: socket.socket) -> None:
        while True:
            client, _ = listener.accept()
            upstream = socket.create_connection(("127.0.0.1", self.target))
            threading.Thread(target=self._pipe, args=(client, upstream, False), daemon=True).start()
            threading.Thread(target=self._pipe, args=(upstream, client, True), daemon=True).start()

    def _pipe(self, source: socket.socket, sink: socket.socket, answers: bool) -> None:
        try:
            while chunk := source.recv(65536):
                keep = self._keep(chunk) if answers else len(chunk)
                sink.sendall(chunk[:keep])
                if keep < len(chunk):
                    raise ConnectionResetError("cut by the test")
        except OSError:
            pass
        finally:
            for end in (source, sink):
                with contextlib.suppress(OSError):
                    end.shutdown(socket.SHUT_RDWR)
                end.close()

    def _keep(self, chunk: bytes) -> int:
        """How much of this piece of an answer goes through: all of it, unless the cut
        falls inside it."""
        with self.lock:
            keep = len(chunk)
            if self.cut_after is not None:
                keep = min(keep, max(0, self.cut_after - self.forwarded))
                if keep < len(chunk):
                    self.cut_after, self.cuts = None, self.cuts + 1
            self.forwarded += keep
            return keep


def test_a_read_dropped_mid_file_goes_on_from_the_byte_it_lacks(s3: S3) -> None:
    content = secrets.token_bytes(3 * READ_BYTES + 12_345)
    writer = ObjectStorage(f"s3://{s3.bucket}/reads", s3.endpoint)
    with writer.create("whole.bin") as sink:
        sink.write(content)
    writer.commit("whole.bin")
    proxy = DroppingProxy(int(s3.endpoint.rsplit(":", 1)[1]))
    reader = ObjectStorage(f"s3://{s3.bucket}/reads", f"http://127.0.0.1:{proxy.serve()}")
    with reader.open("whole.bin") as file:
        file.seek(READ_BYTES + 7)  # a worker starts at its checkpoint's byte
        proxy.forwarded = 0
        proxy.cut_after = READ_BYTES // 2
        rest = file.read()
    assert proxy.cuts == 1
    assert rest == content[READ_BYTES + 7 :]
    # What was read before the cut was kept: the range went on from the first byte missing,
    # not from its start (headers aside, the bytes crossed the wire about once).
    assert proxy.forwarded < len(rest) + 256 * 1024


def test_a_writer_sends_parts_as_they_come_and_an_aborted_upload_leaves_none(s3: S3) -> None:
    storage = ObjectStorage(f"s3://{s3.bucket}/aborted", s3.endpoint)
    sink = storage.create("half.csv")
    sink.write(b"x" * (READ_BYTES + 1))  # one part sent already
    assert s3.parts("aborted/") == ["aborted/half.csv"]
    storage.discard("half.csv")
    assert s3.parts("aborted/") == []
    assert s3.keys("aborted/") == []


# --- the service on an object store -----------------------------------------------------------


@dataclass(frozen=True)
class Site:
    url: str
    key: str
    settings: dict[str, str]
    database: Database
    uploads: Path


@pytest.fixture
def site(s3: S3, fresh_database: str, log_dir: Path, tmp_path: Path) -> Iterator[Site]:
    """An API and its settings on a bucket, a database and a virtual host of their own."""
    upgrade(fresh_database)
    database = Database(fresh_database)
    database.execute(f"CREATE SCHEMA {TEST_SCHEMA}")
    broker_url = vhost_beside("_s3")
    uploads = tmp_path / "uploads"
    settings = {
        "database_url": fresh_database,
        "broker_url": broker_url,
        "storage_url": f"s3://{s3.bucket}/jobs",
        "s3_endpoint_url": s3.endpoint,
        "upload_dir": str(uploads),
        "max_upload_bytes": str(12 << 20),
        "one_transaction_max_bytes": "0",
        "batch_rows": "2000",
    }
    empty(Settings(broker_url=broker_url))
    env = dict(os.environ, **CREDENTIALS, **{k.upper(): v for k, v in settings.items()})
    port = free_port()
    api = start_api(env, log_dir, port)
    try:
        yield Site(
            f"http://127.0.0.1:{port}", make_key(fresh_database, "s3"), settings, database, uploads
        )
    finally:
        api.stop()


def test_an_upload_lands_as_an_object_and_its_import_reads_it_from_there(
    site: Site, s3: S3, workers: StartWorker
) -> None:
    table = f"{TEST_SCHEMA}.target"
    site.database.execute(f"CREATE TABLE {table} {CUSTOMERS_DDL}")
    site.database.execute(f"CREATE TABLE {TEST_SCHEMA}.reference {CUSTOMERS_DDL}")
    content = csv_bytes(CUSTOMER_COLUMNS, customer_rows(60_000))
    with httpx.Client(base_url=site.url, headers=bearer(site.key), timeout=120) as client:
        answer = upload(client, content, table)
        assert answer.status_code == 202, answer.text
        job_id = answer.json()["id"]
        assert s3.keys("jobs/") == [f"jobs/{job_id}.csv"]
        assert list(site.uploads.glob("*")) == []  # nothing on the API's disk
        workers(**site.settings, **{k.lower(): v for k, v in CREDENTIALS.items()})
        job = wait_for_job(client, job_id, timeout=180)
    assert job["status"] == "completed"
    assert job["rows_loaded"] == 60_000
    site.database.copy_csv(f"{TEST_SCHEMA}.reference", content)
    assert site.database.fingerprint(table) == site.database.fingerprint(f"{TEST_SCHEMA}.reference")
    # Housekeeping removes the object with the job's other leftovers.
    settings = Settings(**{**site.settings, "retention_seconds": 0})  # type: ignore[arg-type]
    engine = create_engine(site.settings["database_url"])
    try:
        storage = ObjectStorage(settings.storage_url, settings.s3_endpoint_url)
        housekeeping.clean(engine, storage, settings)
    finally:
        engine.dispose()
    assert s3.keys("jobs/") == []


def test_an_upload_refused_mid_stream_leaves_no_object_and_no_parts(site: Site, s3: S3) -> None:
    site.database.execute(f"CREATE TABLE {TEST_SCHEMA}.target {CUSTOMERS_DDL}")
    with httpx.Client(base_url=site.url, headers=bearer(site.key), timeout=120) as client:
        # Sent in chunks, with no length declared: refused only once 12 MiB have come, with
        # a part of the multipart upload sent already.
        answer = client.post(
            "/imports",
            content=multipart(f"{TEST_SCHEMA}.target", 20 << 20),
            headers={"content-type": "multipart/form-data; boundary=previewboundary"},
        )
    assert answer.status_code == 413
    wait_until(lambda: s3.parts("jobs/") == [], 10, "parts were left behind")
    assert s3.keys("jobs/") == []


def test_setup_makes_the_bucket_once(s3: S3) -> None:
    url = f"s3://made-by-setup-{secrets.token_hex(4)}/uploads"
    assert ensure_bucket(url, s3.endpoint) is True
    assert ensure_bucket(url, s3.endpoint) is False
    assert url.split("/")[2] in {b["Name"] for b in s3.client().list_buckets()["Buckets"]}


def test_an_object_of_the_store_is_imported_by_its_s3_url(
    site: Site, s3: S3, workers: StartWorker
) -> None:
    table = f"{TEST_SCHEMA}.target"
    site.database.execute(f"CREATE TABLE {table} {CUSTOMERS_DDL}")
    content = csv_bytes(CUSTOMER_COLUMNS, customer_rows(5_000))
    s3.client().put_object(Bucket=s3.bucket, Key="sources/customers.csv", Body=content)
    workers(**site.settings, **{k.lower(): v for k, v in CREDENTIALS.items()})
    url = f"s3://{s3.bucket}/sources/customers.csv"
    fields = {"target": table, "source_url": url}
    with httpx.Client(base_url=site.url, headers=bearer(site.key), timeout=120) as client:
        answer = client.post("/imports", files={k: (None, v) for k, v in fields.items()})
        assert answer.status_code == 202, answer.text
        job = wait_for_job(client, answer.json()["id"])
        missing = client.post(
            "/imports",
            files={k: (None, v) for k, v in {**fields, "source_url": url + ".gone"}.items()},
        )
    assert (job["status"], job["rows_loaded"], job["file_name"]) == (
        "completed",
        5_000,
        "customers.csv",
    )
    assert missing.json()["error"]["code"] == "source_unreachable"
