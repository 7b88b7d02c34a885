"""moto's standalone S3 server, started by the tests that need an S3-compatible store."""

from __future__ import annotations

import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest

from tests.harness import free_port, wait_until

CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}


@dataclass(frozen=True)
class S3:
    endpoint: str
    bucket: str

    def client(self, endpoint: str | None = None) -> Any:
        return boto3.session.Session(
            aws_access_key_id=CREDENTIALS["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
            region_name=CREDENTIALS["AWS_DEFAULT_REGION"],
        ).client("s3", endpoint_url=endpoint or self.endpoint)

    def keys(self, prefix: str = "") -> list[str]:
        listing = self.client().list_objects_v2(Bucket=self.bucket, Prefix=prefix)
        return [item["Key"] for item in listing.get("Contents", [])]

    def parts(self, prefix: str = "") -> list[str]:
        listing = self.client().list_multipart_uploads(Bucket=self.bucket, Prefix=prefix)
        return [item["Key"] for item in listing.get("Uploads", [])]


@pytest.fixture(scope="module")
def s3(log_dir: Path) -> Iterator[S3]:
    """moto's S3 server, in a process of its own, with a bucket."""
    port = free_port()
    log = (log_dir / "s3-server.log").open("w")
    server = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_until(lambda: _answers(port), 60, "the S3 server did not start", every=0.2)
        found = S3(f"http://127.0.0.1:{port}", "imports")
        found.client().create_bucket(Bucket=found.bucket)
        yield found
    finally:
        server.terminate()
        server.wait(timeout=10)
        log.close()


def _answers(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0
