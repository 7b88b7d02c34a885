"""Stream a multipart upload to storage, never holding it whole in memory.

The file part is hashed and counted as it arrives; the size limit is enforced while
streaming (413 as soon as it is crossed), and so is an idle limit (408 when the client
stops sending). Parsing and disk writes run in a thread, chunk by chunk, so the event
loop never waits on the disk.
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

import anyio
from anyio import to_thread
from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.requests import ClientDisconnect, Request

from server.api.errors import BODY_LEFT_UNREAD, ApiError
from server.api.unpack import Unpacker, UnpackLimits
from server.api.workbook import SheetCsv
from server.storage import Storage

FIELD_LIMIT = 64 * 1024
# Parts of one upload: the file and its fields (a dozen are known). With FIELD_LIMIT, what
# an upload holds in memory is bounded, however it is sent (chunked encoding included).
MAX_PARTS = 32
CHUNK = 256 * 1024


@dataclass
class Upload:
    key: str
    filename: str = ""
    size: int = 0  # in storage: unpacked, if the file came compressed
    compression: str | None = None
    spreadsheet: bool = False  # stored as sent, to be read into CSV before it is accepted
    sheet: SheetCsv | None = None  # what was read of it
    sha256: str = ""
    fields: dict[str, str] = field(default_factory=dict)
    has_file: bool = False


# Hashing threads shared by every upload of the process (hashlib lets go of the GIL for large
# pieces); each upload has at most one piece with them at a time, so its pieces keep order.
_HASHING = ThreadPoolExecutor(4, thread_name_prefix="sha256")


class _Digest:
    """The file's sha256, computed beside the parsing and the disk writes."""

    def __init__(self) -> None:
        self.hash = hashlib.sha256()
        self.pending: Future[None] | None = None

    def update(self, piece: bytes) -> None:
        self.wait()
        self.pending = _HASHING.submit(self.hash.update, piece)

    def wait(self) -> None:
        if self.pending is not None:
            self.pending.result()
            self.pending = None

    def hexdigest(self) -> str:
        self.wait()
        return self.hash.hexdigest()


class Intake:
    """A file's bytes as they arrive, into storage: counted against the size limit, hashed,
    unpacked if packed. The multipart body's `file` part, or a download."""

    def __init__(
        self, storage: Storage, upload: Upload, max_bytes: int, limits: UnpackLimits
    ) -> None:
        self.storage, self.upload, self.max_bytes = storage, upload, max_bytes
        self.sink = storage.create(upload.key)
        self.unpacker = Unpacker(self.sink, limits)
        self.hash = _Digest()
        self.received = 0
        self.upload.has_file = True

    def take(self, piece: bytes) -> None:
        self.received += len(piece)
        if self.received > self.max_bytes:
            raise ApiError(
                413,
                "file_too_large",
                f"the file is larger than the limit of {self.max_bytes} bytes",
                headers=BODY_LEFT_UNREAD,
            )
        self.hash.update(piece)
        self.unpacker.write(piece)

    def end(self) -> None:
        self.unpacker.finish()
        self.upload.size = self.unpacker.kept
        self.upload.spreadsheet = self.unpacker.spreadsheet
        if not self.upload.spreadsheet:
            self.upload.compression = self.unpacker.compression
        self.sink.close()
        self.upload.sha256 = self.hash.hexdigest()

    def close(self) -> None:
        self.hash.wait()
        self.sink.close()


class _Receiver:
    """python-multipart callbacks that send the `file` part to storage."""

    def __init__(
        self, storage: Storage, upload: Upload, max_bytes: int, limits: UnpackLimits
    ) -> None:
        self.storage, self.upload, self.max_bytes = storage, upload, max_bytes
        self.limits = limits
        self.intake: Intake | None = None
        self.headers: dict[bytes, bytes] = {}
        self.header_name = self.header_value = b""
        self.name = ""
        self.value = bytearray()
        self.done = False
        self.parts = 0

    def callbacks(self) -> dict[str, object]:
        return {
            "on_part_begin": self.part_begin,
            "on_header_field": self.header_field,
            "on_header_value": self.header_piece,
            "on_header_end": self.header_end,
            "on_headers_finished": self.headers_finished,
            "on_part_data": self.data,
            "on_part_end": self.part_end,
            "on_end": self.end,
        }

    def part_begin(self) -> None:
        self.headers, self.value = {}, bytearray()
        self.parts += 1
        if self.parts > MAX_PARTS:
            raise ApiError(
                413,
                "too_many_fields",
                f"an upload has at most {MAX_PARTS} parts: the file and its fields",
                headers=BODY_LEFT_UNREAD,
            )

    def header_field(self, data: bytes, start: int, end: int) -> None:
        self.header_name += data[start:end]
        self._bounded(self.header_name)

    def header_piece(self, data: bytes, start: int, end: int) -> None:
        self.header_value += data[start:end]
        self._bounded(self.header_value)

    def _bounded(self, header: bytes) -> None:
        if len(header) > FIELD_LIMIT:
            raise ApiError(
                413,
                "field_too_large",
                f"a part's header is larger than {FIELD_LIMIT} bytes",
                headers=BODY_LEFT_UNREAD,
            )

    def header_end(self) -> None:
        self.headers[self.header_name.lower()] = self.header_value
        self.header_name = self.header_value = b""

    def headers_finished(self) -> None:
        _, params = parse_options_header(self.headers.get(b"content-disposition", b""))
        self.name = params.get(b"name", b"").decode("utf-8", "replace")
        if self.name == "file":
            if self.upload.has_file:
                raise ApiError(400, "duplicate_file", "send one `file` part per upload")
            self.upload.filename = params.get(b"filename", b"").decode("utf-8", "replace")
            self.intake = Intake(self.storage, self.upload, self.max_bytes, self.limits)

    def data(self, data: bytes, start: int, end: int) -> None:
        piece = data[start:end]
        if self.intake is None:
            self.value += piece
            if len(self.value) > FIELD_LIMIT:
                raise ApiError(
                    413,
                    "field_too_large",
                    f"form field {self.name!r} is larger than {FIELD_LIMIT} bytes",
                    headers=BODY_LEFT_UNREAD,
                )
            return
        self.intake.take(piece)

    def part_end(self) -> None:
        if self.intake is not None:
            self.intake.end()
            self.intake = None
        elif self.name:
            self.upload.fields[self.name] = self.value.decode("utf-8", "replace")

    def end(self) -> None:
        self.done = True

    def close(self) -> None:
        if self.intake is not None:  # the body failed inside the file part
            self.intake.close()


def boundary_of(request: Request) -> bytes:
    kind, params = parse_options_header(request.headers.get("content-type", ""))
    if kind != b"multipart/form-data" or b"boundary" not in params:
        raise ApiError(
            415,
            "not_multipart",
            "send the file as multipart/form-data (curl -F file=@data.csv -F target=...)",
        )
    return params[b"boundary"]


async def receive(
    request: Request,
    storage: Storage,
    key: str,
    max_bytes: int,
    idle_seconds: float = 60.0,
    limits: UnpackLimits | None = None,
    file_required: bool = True,
) -> Upload:
    """Read the whole body; on any failure nothing is left in storage. Without
    `file_required`, a body of fields alone is taken (its `has_file` says so)."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_bytes + FIELD_LIMIT:
        raise ApiError(
            413,
            "file_too_large",
            f"the upload is larger than the limit of {max_bytes} bytes",
            headers=BODY_LEFT_UNREAD,
        )
    upload = Upload(key)
    receiver = _Receiver(storage, upload, max_bytes, limits or UnpackLimits())
    parser = MultipartParser(boundary_of(request), receiver.callbacks())  # type: ignore[arg-type]
    try:
        await _feed(request, parser, idle_seconds)
    except MultipartParseError as error:
        raise ApiError(400, "malformed_body", f"the multipart body is malformed: {error}") from None
    except ClientDisconnect:
        raise ApiError(400, "incomplete_body", "the client went away before the end") from None
    finally:
        receiver.close()
        if not receiver.done or not upload.has_file:
            storage.discard(key)
    if not receiver.done:
        raise ApiError(400, "incomplete_body", "the multipart body ended before its last part")
    if not upload.has_file:
        if file_required:
            raise ApiError(422, "missing_file", "the upload has no `file` part")
        return upload
    storage.commit(key)
    return upload


async def _feed(request: Request, parser: MultipartParser, idle_seconds: float) -> None:
    pending = bytearray()
    chunks = request.stream()
    while (chunk := await _next_chunk(chunks, idle_seconds)) is not None:
        pending += chunk
        if len(pending) >= CHUNK:
            await to_thread.run_sync(parser.write, bytes(pending))
            pending.clear()
    if pending:
        await to_thread.run_sync(parser.write, bytes(pending))
    parser.finalize()


async def _next_chunk(chunks: AsyncIterator[bytes], idle_seconds: float) -> bytes | None:
    """The next piece of the body, or None at its end. A client that sends nothing for
    `idle_seconds` is given up on: a stalled upload must not hold a request (and a half
    written file) forever."""
    try:
        with anyio.fail_after(idle_seconds):
            return await anext(chunks)
    except StopAsyncIteration:
        return None
    except TimeoutError:
        raise ApiError(
            408,
            "upload_timeout",
            f"nothing more of the upload arrived for {idle_seconds:g} seconds; send it again",
            headers=BODY_LEFT_UNREAD,
        ) from None
