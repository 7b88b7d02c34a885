"""With LOG_FORMAT=json every line the API and a worker write is a JSON object, and the
lines about a job carry its job id and tenant (and, in the API, the request's id)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import httpx

from server import logs
from tests.conftest import MakeKey, MakeTable, StartWorker
from tests.harness import Process, bearer, free_port, start_api
from tests.support import CUSTOMER_COLUMNS, csv_bytes, customer_rows, upload, wait_for_job


def json_lines(process: Process) -> list[dict[str, Any]]:
    text = process.log()
    lines = [line for line in text.splitlines() if line.strip()]
    assert lines, "nothing was logged"
    parsed = []
    for number, line in enumerate(lines, 1):
        try:
            parsed.append(json.loads(line))
        except json.JSONDecodeError:
            raise AssertionError(f"line {number} is not JSON: {line!r}") from None
    return parsed


def test_json_log_lines_name_the_job_its_tenant_and_the_request(
    workers: StartWorker, table: MakeTable, make_key: MakeKey, log_dir: Path
) -> None:
    target = table()
    tenant = "logging-tenant"
    port = free_port()
    api = start_api(dict(os.environ, LOG_FORMAT="json"), log_dir, port)
    worker = workers(log_format="json")
    try:
        with httpx.Client(
            base_url=f"http://127.0.0.1:{port}", headers=bearer(make_key(tenant)), timeout=60
        ) as client:
            sent = upload(
                client,
                csv_bytes(CUSTOMER_COLUMNS, customer_rows(50)),
                target,
                headers={"X-Request-ID": "upload-from-a-test"},
            )
            assert sent.status_code == 202, sent.text
            assert sent.headers["x-request-id"] == "upload-from-a-test"
            job_id = sent.json()["id"]
            assert wait_for_job(client, job_id)["status"] == "completed"
            fresh = client.get("/health", headers={"X-Request-ID": "bad id with spaces"})
            assert fresh.headers["x-request-id"] != "bad id with spaces"
    finally:
        api.stop()
        worker.stop()

    api_lines = json_lines(api)
    about_the_job = [line for line in api_lines if line.get("job_id") == job_id]
    assert {line["tenant"] for line in about_the_job} == {tenant}
    (accepted,) = [line for line in about_the_job if "accepted" in line["message"]]
    assert accepted["request_id"] == "upload-from-a-test"
    assert {"time", "level", "logger", "message"} <= accepted.keys()
    # uvicorn's access line of the upload is JSON too, with the request's id.
    assert any(
        "POST /imports" in line["message"] and line.get("request_id") == "upload-from-a-test"
        for line in api_lines
    )
    worker_lines = [line for line in json_lines(worker) if line.get("job_id") == job_id]
    assert any("segment starts" in line["message"] for line in worker_lines)
    assert {line.get("tenant") for line in worker_lines if "segment" in line["message"]} == {tenant}


def test_outside_a_scope_binding_changes_nothing_and_a_scope_ends_with_its_fields() -> None:
    logs.bind(job_id="nowhere")
    with logs.scope(request_id="r1") as fields:
        logs.bind(tenant="t")
        assert fields == {"request_id": "r1", "tenant": "t"}
    with logs.scope() as fields:
        assert fields == {}
