"""Imports from a URL: an upload's `source_url` field instead of its file part.

The file is downloaded into storage as an uploaded one is written (the same size and
unpacking limits, hashed, unpacked if packed). Every hop, the first and each redirect, goes
through the outbound rules (server/outbound.py): its host resolved and every address checked
(private, loopback, link-local and other non-public ones refused unless
OUTBOUND_ALLOW_NETWORKS allows them), then the request sent to the address that was checked.
Runs in a thread: httpx's client is synchronous here.
"""

from __future__ import annotations

from collections.abc import Generator, Iterator
from contextlib import closing, contextmanager
from pathlib import PurePosixPath
from urllib.parse import unquote, urljoin, urlsplit

import httpx

from server.api.errors import ApiError
from server.api.unpack import UnpackLimits
from server.api.upload import CHUNK, Intake, Upload
from server.outbound import Destination, HostNotFound, RefusedUrl, pinned, resolve
from server.settings import Settings
from server.storage import Storage

MAX_REDIRECTS = 5
USER_AGENT = "csv-import"


def download(url: str, storage: Storage, key: str, settings: Settings) -> Upload:
    """The file at `url`, in storage under `key`; on any failure nothing is left there."""
    upload = Upload(key, filename=_file_name(url))
    limits = UnpackLimits(settings.max_uncompressed_bytes, settings.max_compression_ratio)
    intake = Intake(storage, upload, settings.max_upload_bytes, limits)
    try:
        with closing(_pieces(url, settings)) as pieces:  # closed at once on a refusal
            for piece in pieces:
                intake.take(piece)
        intake.end()
    except BaseException:
        intake.close()
        storage.discard(key)
        raise
    storage.commit(key)
    return upload


def _pieces(url: str, settings: Settings) -> Generator[bytes, None, None]:
    if url.startswith("s3://"):
        yield from _object(url, settings)
        return
    with _answer(url, settings) as response:
        yield from response.iter_bytes(CHUNK)


def _object(url: str, settings: Settings) -> Iterator[bytes]:
    """An object of the configured store (its endpoint and credentials)."""
    if not settings.storage_url.startswith("s3://"):
        raise ApiError(
            422,
            "source_refused",
            "an s3:// source needs the service's storage in an object store (STORAGE_URL)",
            field="source_url",
        )
    from server.objectstore import client, parse_url  # boto3 only where it is used

    bucket, key = parse_url(url)
    try:
        answer = client(settings.s3_endpoint_url).get_object(Bucket=bucket, Key=key.rstrip("/"))
    except Exception as error:  # noqa: BLE001 - boto3 raises many kinds here
        raise _unreachable(url, str(error)) from None
    body = answer["Body"]
    try:
        while piece := body.read(CHUNK):
            yield piece
    finally:
        body.close()


@contextmanager
def _answer(url: str, settings: Settings) -> Iterator[httpx.Response]:
    """The final answer's body, redirects followed by hand (each one checked)."""
    timeout = httpx.Timeout(30.0, read=settings.upload_idle_seconds)
    with httpx.Client(timeout=timeout, follow_redirects=False, trust_env=False) as client:
        for _ in range(MAX_REDIRECTS + 1):
            target, host, extensions = pinned(_checked(url, settings))
            request = client.build_request(
                "GET",
                target,
                headers={**host, "user-agent": USER_AGENT},
                extensions=extensions,
            )
            try:
                response = client.send(request, stream=True)
            except httpx.HTTPError as error:
                raise _unreachable(url, f"{type(error).__name__}: {error}") from None
            try:
                if response.is_redirect:
                    url = urljoin(url, response.headers.get("location", ""))
                    continue
                if response.status_code != 200:
                    raise _unreachable(url, f"it answered {response.status_code}")
                yield response
                return
            finally:
                response.close()
    raise ApiError(
        422, "source_refused", f"more than {MAX_REDIRECTS} redirects", field="source_url"
    )


def _checked(url: str, settings: Settings) -> Destination:
    try:
        return resolve(url, settings.outbound_allow_networks)
    except HostNotFound as error:
        raise _unreachable(url, str(error)) from None
    except RefusedUrl as error:
        raise ApiError(422, "source_refused", str(error), field="source_url") from None


def _unreachable(url: str, why: str) -> ApiError:
    return ApiError(
        422, "source_unreachable", f"{_shown(url)} could not be read: {why}", field="source_url"
    )


def _shown(url: str) -> str:
    """The URL without its query (which may hold a token)."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}{parts.path}"


def _file_name(url: str) -> str:
    return PurePosixPath(unquote(urlsplit(url).path)).name or "download.csv"
