"""Schemathesis against the running API, with a real key: whatever it sends, as the OpenAPI
schema describes it or not, the API never answers with a 5xx, and every answer conforms to
the document: a status code it lists, its content type, a body that validates against its
schema, and its headers.

Run through its command line, the way CI would: the boundary-case and fuzzing phases, with
a bounded number of examples per operation so that the run stays well under a minute. Half
of the generated requests use real data (a finished job of this tenant, another tenant's
job, an allowed target, a CSV file), so that they reach past the 404s and 422s. The seed is
printed; a JUnit report is kept in test-artifacts/schemathesis.
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path

import httpx

from tests.conftest import ARTIFACTS, MakeKey, MakeTable
from tests.harness import Process, bearer
from tests.support import upload, wait_for_job

EXAMPLES_PER_OPERATION = 40
# No 5xx, and every answer as the document says: its status, content type, body and headers.
CHECKS = ",".join(
    [
        "not_a_server_error",
        "status_code_conformance",
        "content_type_conformance",
        "response_schema_conformance",
        "response_headers_conformance",
    ]
)
CSV = "id,email\n1,a@example.com\n2,b@example.com\n"


def test_no_request_makes_the_api_fail(
    api: str,
    api_key: str,
    client: httpx.Client,
    make_key: MakeKey,
    worker: Process,
    table: MakeTable,
    tmp_path: Path,
) -> None:
    target = table()
    own = wait_for_job(client, upload(client, CSV.encode(), target).json()["id"])
    with httpx.Client(base_url=api, headers=bearer(make_key("someone-else"))) as other:
        theirs = upload(other, CSV.encode(), target).json()
    config = tmp_path / "schemathesis.toml"
    config.write_text(
        real_data(
            {"jobs": [own["id"], theirs["id"]], "targets": [target, "customers"], "files": [CSV]}
        )
    )
    seed = random.randrange(2**31)
    print(f"schemathesis seed: {seed}")

    result = subprocess.run(
        [
            str(Path(sys.executable).parent / "st"),
            "--config-file",
            str(config),
            "run",
            f"{api}/openapi.json",
            "--checks",
            CHECKS,
            "--header",
            f"Authorization: Bearer {api_key}",
            "--max-examples",
            str(EXAMPLES_PER_OPERATION),
            "--seed",
            str(seed),
            "--phases",
            "coverage,fuzzing",
            "--generation-allow-x00",
            "true",
            "--generation-database",
            "none",
            "--request-timeout",
            "30",
            "--no-color",
            "--report",
            "junit",
            "--report-dir",
            str(ARTIFACTS / "schemathesis"),
        ],
        capture_output=True,
        text=True,
        timeout=900,  # fifteen operations fuzzed on a 2-core machine: minutes, not hours
        check=False,
    )
    print(result.stdout)
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]


def real_data(dictionaries: dict[str, list[str]]) -> str:
    """schemathesis.toml: each dictionary fills its field half of the time; no cache of
    crashes in the working tree."""
    fields = {"jobs": "path.job_id", "targets": "body.target", "files": "body.file"}
    lines = ["[cache]", "enabled = false", ""]
    for name, values in dictionaries.items():
        lines += [f"[dictionaries.{name}]", f"values = {json.dumps(values)}", ""]
    lines.append("[parameters]")
    lines += [
        f'"{fields[name]}" = {{ dictionary = "{name}", probability = 0.5 }}'
        for name in dictionaries
    ]
    return "\n".join(lines) + "\n"
