"""Where uploaded files live until their job is done.

By default a directory shared by the API and the workers (`UPLOAD_DIR`, or
`STORAGE_URL=file:///path`); with `STORAGE_URL=s3://bucket/prefix`, an S3-compatible object
store (server/objectstore.py), for workers on other hosts.
"""

from __future__ import annotations

import os
import re
import time
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, Protocol
from urllib.parse import unquote, urlsplit

if TYPE_CHECKING:
    from server.settings import Settings

_KEY = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,200}")


class Storage(Protocol):
    def create(self, key: str) -> BinaryIO: ...
    def commit(self, key: str) -> None: ...
    def discard(self, key: str) -> None: ...
    def open(self, key: str) -> BinaryIO: ...
    def delete(self, key: str) -> None: ...
    def remove_stale_parts(self, older_than_seconds: float) -> int: ...


class LocalStorage:
    """Files in one directory. A file is written under a temporary name and renamed when
    complete, so a reader never sees half an upload. Keys are made by the service, never
    taken from a client, and are checked anyway so that no path leaves the directory."""

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()
        self.root.mkdir(parents=True, exist_ok=True)

    def _path(self, key: str, suffix: str = "") -> Path:
        if not _KEY.fullmatch(key):
            raise ValueError(f"invalid storage key {key!r}")
        return self.root / (key + suffix)

    def create(self, key: str) -> BinaryIO:
        return open(self._path(key, ".part"), "xb")

    def commit(self, key: str) -> None:
        os.replace(self._path(key, ".part"), self._path(key))

    def discard(self, key: str) -> None:
        self._path(key, ".part").unlink(missing_ok=True)

    def open(self, key: str) -> BinaryIO:
        return open(self._path(key), "rb")

    def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)

    def remove_stale_parts(self, older_than_seconds: float) -> int:
        """Half-written uploads left by a crash."""
        limit = time.time() - older_than_seconds
        stale = [p for p in self.root.glob("*.part") if p.stat().st_mtime < limit]
        for path in stale:
            path.unlink(missing_ok=True)
        return len(stale)


def open_storage(settings: Settings) -> Storage:
    """The storage STORAGE_URL names: a directory, or a bucket and prefix."""
    url = settings.storage_url
    if not url:
        return LocalStorage(settings.upload_dir)
    scheme = urlsplit(url).scheme
    if scheme == "file":
        return LocalStorage(Path(unquote(urlsplit(url).path)))
    if scheme == "s3":
        from server.objectstore import ObjectStorage  # boto3 only where it is used

        return ObjectStorage(url, settings.s3_endpoint_url)
    raise ValueError(f"STORAGE_URL must start with file:// or s3://, not {url!r}")
