"""Uploads in an S3-compatible object store (AWS S3, MinIO, …): what workers on other hosts
read, with no disk shared with the API.

`STORAGE_URL=s3://bucket/prefix`; the endpoint comes from `S3_ENDPOINT_URL` (or boto3's own
`AWS_ENDPOINT_URL`), the credentials from the usual AWS variables or files.

An upload streams into a multipart upload, a part sent each time `PART_BYTES` have arrived,
so that memory stays bounded; the object exists only once its upload is completed (on
commit), and a discarded upload is aborted, leaving no parts behind. A reader fetches ranges
of `READ_BYTES` from where it stands, so a worker starts at its checkpoint's byte; a range
cut short by a dropped connection is asked for again from the first byte it lacks.
"""

from __future__ import annotations

import io
import logging
import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Any, BinaryIO
from urllib.parse import urlsplit

import boto3
import botocore.exceptions
from botocore.config import Config

log = logging.getLogger(__name__)
PART_BYTES = 8 << 20  # S3 takes parts of 5 MiB or more (the last may be smaller)
READ_BYTES = 8 << 20
READ_ATTEMPTS = 5
# What a dropped or stalled connection raises while a range is read.
DROPPED = (
    botocore.exceptions.ConnectionError,
    botocore.exceptions.ReadTimeoutError,
    botocore.exceptions.ResponseStreamingError,
    botocore.exceptions.IncompleteReadError,
    ConnectionError,
)


def parse_url(url: str) -> tuple[str, str]:
    """`s3://bucket/prefix` → the bucket, and the prefix with its slash (or "")."""
    parts = urlsplit(url)
    if parts.scheme != "s3" or not parts.netloc:
        raise ValueError(f"not an s3://bucket/prefix URL: {url!r}")
    prefix = parts.path.strip("/")
    return parts.netloc, f"{prefix}/" if prefix else ""


def client(endpoint_url: str | None) -> Any:
    config = Config(retries={"max_attempts": 5, "mode": "standard"}, read_timeout=60)
    return boto3.session.Session().client("s3", endpoint_url=endpoint_url or None, config=config)


def ensure_bucket(url: str, endpoint_url: str | None = None) -> bool:
    """The URL's bucket, made if missing; whether it was made now."""
    bucket, _ = parse_url(url)
    s3 = client(endpoint_url)
    try:
        s3.head_bucket(Bucket=bucket)
    except botocore.exceptions.ClientError as error:
        if error.response.get("Error", {}).get("Code") not in ("404", "NoSuchBucket"):
            raise
        s3.create_bucket(Bucket=bucket)
        return True
    return False


class ObjectStorage:
    """The Storage interface over one bucket and prefix."""

    def __init__(self, url: str, endpoint_url: str | None = None, s3: Any = None) -> None:
        self.bucket, self.prefix = parse_url(url)
        self.s3 = s3 or client(endpoint_url)
        self.uploads: dict[str, _Upload] = {}
        self.lock = threading.Lock()

    def name(self, key: str) -> str:
        return self.prefix + key

    def create(self, key: str) -> BinaryIO:
        answer = self.s3.create_multipart_upload(Bucket=self.bucket, Key=self.name(key))
        upload = _Upload(self.s3, self.bucket, self.name(key), answer["UploadId"])
        with self.lock:
            self.uploads[key] = upload
        return upload  # type: ignore[return-value]

    def commit(self, key: str) -> None:
        with self.lock:
            upload = self.uploads.pop(key)
        upload.complete()

    def discard(self, key: str) -> None:
        with self.lock:
            upload = self.uploads.pop(key, None)
        if upload is not None:
            upload.abort()

    def open(self, key: str) -> BinaryIO:
        head = self.s3.head_object(Bucket=self.bucket, Key=self.name(key))
        reader = _Ranges(self.s3, self.bucket, self.name(key), int(head["ContentLength"]))
        return io.BufferedReader(reader, buffer_size=READ_BYTES)

    def delete(self, key: str) -> None:
        self.s3.delete_object(Bucket=self.bucket, Key=self.name(key))

    def remove_stale_parts(self, older_than_seconds: float) -> int:
        """Multipart uploads left by a crash (never completed, never aborted)."""
        limit = datetime.now(UTC) - timedelta(seconds=older_than_seconds)
        listing = self.s3.list_multipart_uploads(Bucket=self.bucket, Prefix=self.prefix)
        stale = [u for u in listing.get("Uploads", []) if u["Initiated"] < limit]
        for upload in stale:
            self.s3.abort_multipart_upload(
                Bucket=self.bucket, Key=upload["Key"], UploadId=upload["UploadId"]
            )
        return len(stale)


class _Upload(io.RawIOBase):
    """A multipart upload written like a file: a part goes each time enough has come."""

    def __init__(self, s3: Any, bucket: str, key: str, upload_id: str) -> None:
        self.s3, self.bucket, self.key, self.upload_id = s3, bucket, key, upload_id
        self.pending = bytearray()
        self.parts: list[dict[str, Any]] = []
        self.written = 0

    def writable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.written

    def write(self, data: Any) -> int:
        self.written += len(data)
        self.pending += data
        while len(self.pending) >= PART_BYTES:
            self._send(bytes(self.pending[:PART_BYTES]))
            del self.pending[:PART_BYTES]
        return len(data)

    def close(self) -> None:
        if not self.closed and (self.pending or not self.parts):
            self._send(bytes(self.pending))
            self.pending.clear()
        super().close()

    def _send(self, body: bytes) -> None:
        number = len(self.parts) + 1
        answer = self.s3.upload_part(
            Bucket=self.bucket, Key=self.key, UploadId=self.upload_id, PartNumber=number, Body=body
        )
        self.parts.append({"PartNumber": number, "ETag": answer["ETag"]})

    def complete(self) -> None:
        self.close()
        self.s3.complete_multipart_upload(
            Bucket=self.bucket,
            Key=self.key,
            UploadId=self.upload_id,
            MultipartUpload={"Parts": self.parts},
        )

    def abort(self) -> None:
        self.pending.clear()
        try:
            self.s3.abort_multipart_upload(
                Bucket=self.bucket, Key=self.key, UploadId=self.upload_id
            )
        except botocore.exceptions.ClientError as error:
            log.warning("upload %s: not aborted (%s); housekeeping will", self.key, error)


class _Ranges(io.RawIOBase):
    """An object read as a seekable file, one ranged GET per read."""

    def __init__(self, s3: Any, bucket: str, key: str, size: int) -> None:
        self.s3, self.bucket, self.key, self.size = s3, bucket, key, size
        self.position = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self.position, io.SEEK_END: self.size}[whence]
        self.position = max(0, base + offset)
        return self.position

    def readall(self) -> bytes:
        """The rest of the object, a range of READ_BYTES at a time."""
        out = bytearray()
        while chunk := self.read(READ_BYTES):
            out += chunk
        return bytes(out)

    def readinto(self, buffer: Any) -> int:
        """One range; a drop (or a short answer) asks again from the first missing byte."""
        wanted = min(len(buffer), self.size - self.position)
        if wanted <= 0:
            return 0
        view = memoryview(buffer).cast("B")
        got, failures = 0, 0
        while got < wanted:
            done, dropped = [0], False
            try:
                self._fetch(view[got:wanted], self.position + got, done)
            except DROPPED as error:
                dropped = True
                failures += 1
                if failures >= READ_ATTEMPTS:
                    raise
                log.warning(
                    "%s: a ranged read dropped at byte %s (%s); reading on from there",
                    self.key,
                    self.position + got + done[0],
                    error,
                )
                time.sleep(min(2.0, 0.1 * 2**failures))
            got += done[0]
            if done[0] == 0 and not dropped:
                break  # the object ends before its size said: nothing more to read
        self.position += got
        return got

    def _fetch(self, into: memoryview, start: int, done: list[int]) -> None:
        """Bytes from `start` into `into`, counted in `done` as they arrive (what came
        before a drop is kept)."""
        end = start + len(into) - 1
        answer = self.s3.get_object(Bucket=self.bucket, Key=self.key, Range=f"bytes={start}-{end}")
        body = answer["Body"]
        try:
            while done[0] < len(into):
                chunk = body.read(min(1 << 20, len(into) - done[0]))
                if not chunk:
                    return
                into[done[0] : done[0] + len(chunk)] = chunk
                done[0] += len(chunk)
        finally:
            body.close()
