"""Which reader a table file needs: its content's magic bytes first, its extension as a hint."""

from __future__ import annotations

import bz2
import gzip
import lzma
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from serendip.tools.loading.problems import BadTable, one_line

HEAD_BYTES = 8192

# Extension -> format it claims (text formats are told apart later by their delimiter).
EXTENSIONS = {
    ".csv": "csv", ".tsv": "csv", ".tab": "csv", ".txt": "csv", ".dat": "csv", ".psv": "csv",
    ".parquet": "parquet", ".pq": "parquet", ".parq": "parquet",
    ".xlsx": "excel", ".xlsm": "excel",
    ".fits": "fits", ".fit": "fits", ".fts": "fits",
    ".vot": "votable", ".votable": "votable", ".xml": "votable",
}
COMPRESSIONS = {".gz": "gzip", ".bz2": "bz2", ".xz": "xz"}
_OPENERS = {"gzip": gzip.open, "bz2": bz2.open, "xz": lzma.open}
_NAMES = {"csv": "delimited text", "parquet": "Parquet", "excel": "Excel (.xlsx)", "fits": "FITS",
          "votable": "VOTable"}


@dataclass
class Detected:
    """What a file holds.

    Attributes:
        format: csv (any delimited text), parquet, excel, fits or votable.
        compression: gzip, bz2, xz or None.
        warnings: Notes for the table (e.g. the extension disagreed with the content).
        text_bytes: Size of a text table's content after decompression (0 until measured).
    """

    format: str
    compression: str | None = None
    warnings: list[str] = field(default_factory=list)
    text_bytes: int = 0


def detect_format(path: Path) -> Detected:
    """Tell the format from the first bytes (decompressed if need be), warning when the extension
    claims another one.

    Raises:
        BadTable: empty, unsupported or unrecognisable content.
    """
    with open(path, "rb") as handle:
        head = handle.read(HEAD_BYTES)
    if not head:
        raise BadTable("the file is empty")
    compression = _compression_of(head)
    if compression:
        try:
            with _OPENERS[compression](path, "rb") as handle:
                head = handle.read(HEAD_BYTES)
        except (OSError, EOFError, lzma.LZMAError) as exc:
            raise BadTable(f"the {compression} compressed data is corrupt ({one_line(exc)})") from None
        if not head:
            raise BadTable("the file is empty (after decompression)")
    found = _format_of_content(head, path, compression)
    detected = Detected(found, compression)
    claimed = _claimed_format(path)
    if claimed and claimed != found:
        detected.warnings.append(
            f"the file name says {_NAMES[claimed]} but the content is {_NAMES[found]}; read it as {_NAMES[found]}")
    return detected


def open_binary(path: Path, compression: str | None):
    """The file opened for reading bytes, decompressing on the fly when ``compression`` is set."""
    return _OPENERS[compression](path, "rb") if compression else open(path, "rb")


def _compression_of(head: bytes) -> str | None:
    if head.startswith(b"\x1f\x8b"):
        return "gzip"
    if head.startswith(b"BZh") and len(head) > 3 and head[3:4].isdigit():
        return "bz2"
    if head.startswith(b"\xfd7zXZ\x00"):
        return "xz"
    return None


def _format_of_content(head: bytes, path: Path, compression: str | None) -> str:
    """The format whose signature ``head`` carries; delimited text when it is plain text."""
    if head.startswith(b"SIMPLE  =") or head.startswith(b"SIMPLE ="):
        return "fits"
    if head.startswith(b"PAR1"):
        if compression:
            raise BadTable(f"a {compression}-compressed Parquet file is not supported; decompress it first")
        return "parquet"
    if head.startswith(b"PK\x03\x04") or head.startswith(b"PK\x05\x06"):
        return _zip_format(path, compression)
    if head.startswith(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"):
        raise BadTable("this is a legacy Excel .xls (or other OLE) file, which is not supported; "
                       "save it as .xlsx or CSV")
    if head.startswith(b"\x89HDF"):
        raise BadTable("this is an HDF5 file, which is not supported; export the table as FITS, Parquet or CSV")
    if head.startswith(b"%PDF"):
        raise BadTable("this is a PDF document, not a table")
    text = _head_text(head)
    if text is None:
        raise BadTable("unknown format: the content is binary and matches none of FITS, Parquet, "
                       "Excel .xlsx or VOTable")
    stripped = text.lstrip()
    if not stripped:
        raise BadTable("the file is empty (only blank lines)")
    if stripped.startswith("<"):
        if "<VOTABLE" in text.upper():
            return "votable"
        if stripped.startswith("<?xml") or stripped[:20].lower().startswith(("<!doctype", "<html")):
            raise BadTable("unknown format: an XML/HTML document that is not a VOTable")
    return "csv"


def _zip_format(path: Path, compression: str | None) -> str:
    if compression:
        raise BadTable("unknown format: a compressed ZIP archive")
    try:
        with zipfile.ZipFile(path) as archive:
            names = set(archive.namelist())
    except (zipfile.BadZipFile, OSError) as exc:
        raise BadTable(f"the file looks like a ZIP/.xlsx archive but is corrupt ({one_line(exc)})") from None
    if "xl/workbook.xml" in names:
        return "excel"
    if any(n.startswith("content.xml") for n in names) and "mimetype" in names:
        raise BadTable("this is an OpenDocument spreadsheet (.ods), which is not supported; save it as .xlsx or CSV")
    raise BadTable("unknown format: a ZIP archive that is not an Excel .xlsx workbook")


def _head_text(head: bytes) -> str | None:
    """The first bytes as text, or None when they look binary."""
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        return head.decode("utf-16", errors="replace")
    if b"\x00" in head:
        return None
    text = head.decode("utf-8", errors="replace")
    controls = sum(1 for ch in text if ord(ch) < 32 and ch not in "\r\n\t\f\v")
    if controls > 0.05 * max(len(text), 1) or text.count("\ufffd") > 0.3 * max(len(text), 1):
        return None
    return text


def _claimed_format(path: Path) -> str | None:
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] in COMPRESSIONS:
        suffixes = suffixes[:-1]
    return EXTENSIONS.get(suffixes[-1]) if suffixes else None
