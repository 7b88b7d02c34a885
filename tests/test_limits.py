"""Each tenant's share: over its uploads a minute or the bytes it may hold in storage, an
upload gets 429 with Retry-After, before its body is read; other tenants are not held up."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import MakeKey, MakeTable
from tests.harness import bearer, free_port, start_api
from tests.support import CUSTOMER_COLUMNS, csv_bytes, customer_rows, upload


@pytest.fixture
def limited_api(log_dir: Path, prepared: None) -> Iterator[str]:
    env = dict(os.environ, TENANT_UPLOADS_PER_MINUTE="3", TENANT_MAX_STORED_BYTES="5000")
    port = free_port()
    process = start_api(env, log_dir, port)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        process.stop()


def tenant_client(url: str, make_key: MakeKey) -> httpx.Client:
    key = make_key(f"limited-{uuid.uuid4().hex[:8]}")
    return httpx.Client(base_url=url, headers=bearer(key), timeout=60)


def test_over_its_uploads_a_minute_a_tenant_waits_and_others_do_not(
    limited_api: str, make_key: MakeKey, table: MakeTable
) -> None:
    target = table()
    small = csv_bytes(CUSTOMER_COLUMNS, customer_rows(2))
    with tenant_client(limited_api, make_key) as one, tenant_client(limited_api, make_key) as two:
        assert [upload(one, small, target).status_code for _ in range(3)] == [202] * 3
        refused = upload(one, small, target)
        assert refused.status_code == 429
        assert refused.json()["error"]["code"] == "upload_rate"
        wait = int(refused.headers["retry-after"])
        assert 1 <= wait <= 20  # a token every 20 s at 3 a minute
        assert refused.json()["error"]["retry_after"] == wait
        assert upload(two, small, target).status_code == 202


def test_a_tenant_holding_its_bytes_in_storage_waits_for_housekeeping(
    limited_api: str, make_key: MakeKey, table: MakeTable
) -> None:
    target = table()
    content = csv_bytes(CUSTOMER_COLUMNS, customer_rows(45))
    assert 2500 < len(content) < 5000
    with tenant_client(limited_api, make_key) as client:
        assert upload(client, content, target).status_code == 202
        assert upload(client, content, target).status_code == 202
        refused = upload(client, content, target)
    assert refused.status_code == 429
    assert refused.json()["error"]["code"] == "storage_full"
    assert "TENANT_MAX_STORED_BYTES" in refused.json()["error"]["message"]
    assert int(refused.headers["retry-after"]) > 0
