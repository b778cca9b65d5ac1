"""Receiving an uploaded table: a streaming multipart reader with a size limit, and safe stored names.

The request body is parsed as it arrives (python-multipart's streaming parser) and the file part is
written straight to its place under the data directory, so an upload over the limit is refused as soon as
it passes the limit (or at once, when its Content-Length already says so), never after filling the disk.
The client's filename is only ever a label: the stored file is named from a fixed alphabet slug of it and
an extension from a fixed list, inside a folder whose name the server chose.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path

from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header

# Extensions the loader recognises (a hint only: it reads the format from the content), optionally compressed.
TABLE_SUFFIXES = {".csv", ".tsv", ".tab", ".txt", ".dat", ".psv", ".parquet", ".pq", ".parq", ".xlsx", ".xlsm",
                  ".fits", ".fit", ".fts", ".vot", ".votable", ".xml"}
COMPRESSED_SUFFIXES = {".gz", ".bz2", ".xz"}
NAME_CHARS = 200
SLUG_CHARS = 60
FORM_OVERHEAD_BYTES = 64 * 1024
"""Room for the multipart framing and small form fields on top of the file's own size limit."""


class UploadError(Exception):
    """An upload refused; ``status`` is the HTTP status and the message is one line for the user.

    Args:
        status: HTTP status code (400, 413, 415).
        message: What is wrong and how to fix it.
    """

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass
class ReceivedFile:
    """An upload written to disk.

    Attributes:
        name: The client's filename, cleaned for display (never used as a path).
        path: Where it was stored.
        size: Bytes written.
        sha256: Hex digest of the bytes.
    """

    name: str
    path: Path
    size: int
    sha256: str


def display_name(raw: str | None) -> str:
    """The client's filename as a label: its last path component, control characters dropped, bounded."""
    text = (raw or "").replace("\\", "/").split("/")[-1]
    text = "".join(ch for ch in text if unicodedata.category(ch)[0] != "C").strip()
    if text in ("", ".", ".."):
        return "table"
    return text[:NAME_CHARS]


def stored_name(name: str) -> str:
    """A file name for the stored upload built from a fixed alphabet: a slug of the label's stem plus a
    table extension the label ends with (``"../../x.csv"`` -> ``x.csv``, ``"<b>.exe"`` -> ``b``)."""
    lower = name.lower()
    suffix = ""
    for comp in sorted(COMPRESSED_SUFFIXES):
        if lower.endswith(comp):
            inner = lower[: -len(comp)]
            base = next((s for s in TABLE_SUFFIXES if inner.endswith(s)), "")
            suffix = base + comp
            break
    else:
        suffix = next((s for s in TABLE_SUFFIXES if lower.endswith(s)), "")
    stem = name[: len(name) - len(suffix)] if suffix else name.rsplit(".", 1)[0] if "." in name[1:] else name
    slug = re.sub(r"[^A-Za-z0-9_-]+", "_", stem).strip("_-")[:SLUG_CHARS] or "table"
    return slug + suffix


def human_bytes(n: int) -> str:
    """1073741824 -> '1 GB' (powers of 1024, at most one decimal)."""
    value = float(n)
    for unit in ("bytes", "KB", "MB", "GB", "TB"):
        if value < 1024 or unit == "TB":
            text = f"{value:.1f}".rstrip("0").rstrip(".")
            return f"{text} {unit}"
        value /= 1024
    return f"{n} bytes"  # pragma: no cover


class _Receiver:
    """Callbacks of the multipart parser: headers of each part, the file part's bytes to disk."""

    def __init__(self, folder: Path, limit: int) -> None:
        self.folder = folder
        self.limit = limit
        self.header_field = bytearray()
        self.header_value = bytearray()
        self.headers: dict[bytes, bytes] = {}
        self.in_file = False
        self.file = None
        self.received: ReceivedFile | None = None
        self.digest = hashlib.sha256()
        self.size = 0

    def callbacks(self) -> dict:
        return {"on_part_begin": self.part_begin, "on_header_field": self.field, "on_header_value": self.value,
                "on_header_end": self.header_end, "on_headers_finished": self.headers_finished,
                "on_part_data": self.data, "on_part_end": self.part_end}

    def part_begin(self) -> None:
        self.headers = {}
        self.in_file = False

    def field(self, data: bytes, start: int, end: int) -> None:
        self.header_field += data[start:end]

    def value(self, data: bytes, start: int, end: int) -> None:
        self.header_value += data[start:end]

    def header_end(self) -> None:
        self.headers[bytes(self.header_field).lower()] = bytes(self.header_value)
        self.header_field.clear()
        self.header_value.clear()

    def headers_finished(self) -> None:
        _, options = parse_options_header(self.headers.get(b"content-disposition", b""))
        if options.get(b"name") != b"file":
            return
        if self.received is not None:
            raise UploadError(400, "send one file per upload (in the field named 'file')")
        raw = options.get(b"filename", b"").decode("utf-8", errors="replace")
        name = display_name(raw)
        path = self.folder / stored_name(name)
        self.file = open(path, "xb")  # noqa: SIM115 - closed in part_end or close()
        self.received = ReceivedFile(name=name, path=path, size=0, sha256="")
        self.in_file = True

    def data(self, data: bytes, start: int, end: int) -> None:
        if not self.in_file:
            return
        chunk = data[start:end]
        self.size += len(chunk)
        if self.size > self.limit:
            raise UploadError(413, f"the file is larger than the upload limit of {human_bytes(self.limit)}")
        self.digest.update(chunk)
        self.file.write(chunk)

    def part_end(self) -> None:
        if self.in_file:
            self.file.close()
            self.in_file = False
            self.received.size = self.size
            self.received.sha256 = self.digest.hexdigest()

    def close(self) -> None:
        if self.file is not None and not self.file.closed:
            self.file.close()


async def receive_upload(headers, stream, folder: Path, limit: int) -> ReceivedFile:
    """Read a ``multipart/form-data`` body with the table in the field ``file`` into ``folder``.

    Args:
        headers: The request headers (a case-insensitive mapping).
        stream: The body as an async iterator of byte chunks (``request.stream()``).
        folder: An empty folder created by the caller for this upload.
        limit: Largest file accepted, in bytes.

    Returns:
        The stored file (its size and checksum computed on the way).

    Raises:
        UploadError: Not multipart, no file field, malformed, or over the limit (413). Whatever was
            written is left for the caller to remove with the folder.
    """
    content_type, options = parse_options_header(headers.get("content-type", ""))
    boundary = options.get(b"boundary")
    if content_type != b"multipart/form-data" or not boundary:
        raise UploadError(415, "send the table as multipart/form-data, the file in a field named 'file'")
    declared = headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit + FORM_OVERHEAD_BYTES:
        raise UploadError(413, f"the file is larger than the upload limit of {human_bytes(limit)}")
    receiver = _Receiver(folder, limit)
    parser = MultipartParser(boundary, receiver.callbacks())
    total = 0
    try:
        async for chunk in stream:
            total += len(chunk)
            if total > limit + FORM_OVERHEAD_BYTES:
                raise UploadError(413, f"the file is larger than the upload limit of {human_bytes(limit)}")
            parser.write(chunk)
        parser.finalize()
    except MultipartParseError:
        raise UploadError(400, "the upload is not valid multipart/form-data; send the file in a field named "
                               "'file'") from None
    finally:
        receiver.close()
    if receiver.received is None:
        raise UploadError(400, "no file in the upload: send it in a multipart field named 'file'")
    if receiver.in_file or not receiver.received.sha256:
        raise UploadError(400, "the upload ended before the file did; send it again")
    return receiver.received
