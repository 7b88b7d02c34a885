"""Imports from a URL (`source_url`): the file downloaded under an upload's limits, every
hop of it to public addresses only, unless OUTBOUND_ALLOW_NETWORKS allows more."""

from __future__ import annotations

import gzip
import os
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import MakePair, stored_files
from tests.harness import Process, bearer, free_port, start_api
from tests.support import CUSTOMER_COLUMNS, csv_bytes, customer_rows, wait_for_job


def from_url(client: httpx.Client, url: str, target: str, **fields: str) -> httpx.Response:
    """Fields alone, as multipart/form-data (`curl -F source_url=… -F target=…`)."""
    parts = {"target": target, "source_url": url, **fields}
    return client.post("/imports", files={name: (None, value) for name, value in parts.items()})


class Files:
    """A web server on 127.0.0.1 with files, a redirect, and an error page."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.redirects: dict[str, str] = {}
        files = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path in files.redirects:
                    self.send_response(302)
                    self.send_header("location", files.redirects[self.path])
                    self.send_header("content-length", "0")
                    self.end_headers()
                    return
                body = files.files.get(self.path)
                self.send_response(200 if body is not None else 404)
                self.send_header("content-length", str(len(body or b"")))
                self.end_headers()
                self.wfile.write(body or b"")

            def log_message(self, *_: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def url(self, path: str, host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.server.server_address[1]}{path}"


@pytest.fixture
def files() -> Iterator[Files]:
    served = Files()
    yield served
    served.server.shutdown()
    served.server.server_close()


@pytest.fixture
def allowing_api(log_dir: Path, api_key: str) -> Iterator[httpx.Client]:
    """An API that may reach 127.0.0.1 (and only it, of the loopback network)."""
    env = dict(os.environ, OUTBOUND_ALLOW_NETWORKS="127.0.0.1/32")
    port = free_port()
    process = start_api(env, log_dir, port)
    try:
        with httpx.Client(
            base_url=f"http://127.0.0.1:{port}", headers=bearer(api_key), timeout=60
        ) as client:
            yield client
    finally:
        process.stop()


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("http://127.0.0.1:9/data.csv", "loopback"),
        ("http://localhost:9/data.csv", "loopback"),  # a name: refused after its lookup
        ("http://169.254.169.254/latest/meta-data/", "link-local"),
        ("http://10.20.30.40/data.csv", "private"),
        ("http://[::1]:9/data.csv", "loopback"),
    ],
)
def test_a_source_at_an_address_that_is_not_public_is_refused(
    client: httpx.Client, pair: MakePair, url: str, why: str
) -> None:
    before = stored_files()
    answer = from_url(client, url, pair(b"").target)
    assert answer.status_code == 422
    error = answer.json()["error"]
    assert (error["code"], error["field"]) == ("source_refused", "source_url")
    assert why in error["message"]
    assert "OUTBOUND_ALLOW_NETWORKS" in error["message"]
    assert stored_files() == before


def test_a_file_from_a_url_is_imported_as_an_uploaded_one(
    allowing_api: httpx.Client, files: Files, worker: Process, pair: MakePair
) -> None:
    content = csv_bytes(CUSTOMER_COLUMNS, customer_rows(20_000))
    tables = pair(content)
    files.files["/exports/customers.csv.gz"] = gzip.compress(content)
    files.redirects["/latest"] = "/exports/customers.csv.gz"
    answer = from_url(allowing_api, files.url("/latest"), tables.target)
    assert answer.status_code == 202, answer.text
    job = wait_for_job(allowing_api, answer.json()["id"])
    assert job["status"] == "completed"
    assert (job["file_name"], job["compression"]) == ("latest", "gzip")
    assert tables.equal()


def test_each_redirect_is_checked_and_failures_are_named(
    allowing_api: httpx.Client, files: Files, pair: MakePair
) -> None:
    target = pair(b"").target
    before = stored_files()
    # 127.0.0.2 is loopback too, outside the one address allowed.
    files.redirects["/elsewhere"] = files.url("/data.csv", host="127.0.0.2")
    refused = from_url(allowing_api, files.url("/elsewhere"), target)
    assert refused.json()["error"]["code"] == "source_refused"
    assert "127.0.0.2 is a loopback address" in refused.json()["error"]["message"]
    missing = from_url(allowing_api, files.url("/nothing.csv"), target)
    assert missing.json()["error"]["code"] == "source_unreachable"
    assert "answered 404" in missing.json()["error"]["message"]
    files.redirects["/loop"] = "/loop"
    looping = from_url(allowing_api, files.url("/loop"), target)
    assert "redirects" in looping.json()["error"]["message"]
    both = allowing_api.post(
        "/imports",
        data={"target": target, "source_url": files.url("/x.csv")},
        files={"file": ("x.csv", b"id\n1\n", "text/csv")},
    )
    assert both.json()["error"]["code"] == "file_and_source"
    assert stored_files() == before


def test_a_source_over_the_size_limit_is_refused_while_it_downloads(
    allowing_api: httpx.Client, files: Files, pair: MakePair
) -> None:
    files.files["/big.csv"] = csv_bytes(CUSTOMER_COLUMNS, customer_rows(400_000))
    assert len(files.files["/big.csv"]) > 20 * 1024 * 1024  # the tests' MAX_UPLOAD_BYTES
    before = stored_files()
    answer = from_url(allowing_api, files.url("/big.csv"), pair(b"").target)
    assert answer.status_code == 413
    assert answer.json()["error"]["code"] == "file_too_large"
    assert stored_files() == before
