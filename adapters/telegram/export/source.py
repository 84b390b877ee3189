"""Opening an export file: which file (a folder holding `result.json` will do), what it is not (missing,
unreadable, empty, an HTML export, a zip, not JSON), the bytes as JSON can read them, and ijson's errors as
refusals a user understands (SPEC §10: exit 2)."""

from __future__ import annotations

import re
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

import ijson

from bot.importing.model import ImportRefused

RESULT = "result.json"
HOW_TO_EXPORT_JSON = (
    "Telegram Desktop → Settings → Advanced → Export Telegram data → Format: Machine-readable JSON, "
    f"then give the {RESULT} it writes"
)
_BOM = b"\xef\xbb\xbf"
_JSON_STARTS = frozenset(bytes([byte]) for byte in b'{["-0123456789tfn')
#: `\xNN` after an odd run of backslashes: how Telegram Desktop writes control characters other than \n, \r and
#: \t (export_output_json.cpp `SerializeString`). JSON has no such escape; it is read as `\u00NN`.
_HEX_ESCAPE = re.compile(rb"(?<!\\)((?:\\\\)*)\\x([0-9A-Fa-f]{2})")
#: What may follow a chunk's last backslash when the escape goes on in the next chunk.
_UNFINISHED = re.compile(rb"(?:x[0-9A-Fa-f]?)?")


class JsonBytes:
    """The file as ijson reads it (`read(size)`), without a byte-order mark and with Telegram's `\\xNN`."""

    def __init__(self, raw: BinaryIO) -> None:
        self._raw = raw
        self._carry = b""
        self._first = True

    def read(self, size: int = -1) -> bytes:
        while True:
            data = self._raw.read(size)
            chunk, self._carry = self._carry + data, b""
            if self._first and chunk:  # (ijson's first call reads 0 bytes, to see bytes from text)
                self._first = False
                chunk = chunk.removeprefix(_BOM)
            if data and size > 0:
                cut = _open_tail(chunk)
                chunk, self._carry = chunk[:cut], chunk[cut:]
            if chunk or not data or size <= 0:  # b"" only at the end of the file
                return _HEX_ESCAPE.sub(rb"\1\\u00\2", chunk) if b"\\x" in chunk else chunk


def _open_tail(chunk: bytes) -> int:
    """Where a possibly unfinished escape at the chunk's end starts (its whole run of backslashes, whose parity
    decides what it is), or the chunk's length."""
    last = chunk.rfind(b"\\", max(0, len(chunk) - 3))
    if last < 0 or not _UNFINISHED.fullmatch(chunk[last + 1 :]):
        return len(chunk)
    start = last
    while start > 0 and chunk[start - 1] == 0x5C:
        start -= 1
    return start


def locate(path: str | Path) -> Path:
    """The export's JSON file. A folder is looked into: its `result.json`, or an HTML export's `messages.html`."""
    target = Path(path).expanduser()
    if target.is_dir():
        if (target / RESULT).is_file():
            return target / RESULT
        if any(target.glob("messages*.html")):
            raise ImportRefused(f"{target} holds Telegram's HTML export; the import reads JSON: {HOW_TO_EXPORT_JSON}.")
        raise ImportRefused(f"{target} is a folder without {RESULT}: give the {RESULT} of a Telegram Desktop export.")
    if not target.exists():
        raise ImportRefused(f"No such file: {target}")
    if target.suffix.lower() in (".html", ".htm"):
        raise ImportRefused(f"{target} is Telegram's HTML export; the import reads JSON: {HOW_TO_EXPORT_JSON}.")
    return target


def sniff(path: Path) -> None:
    """Refuse what is plainly no JSON, from its first bytes (the rest is checked as it is parsed)."""
    try:
        with path.open("rb") as file:
            head = file.read(512)
    except OSError as error:
        raise ImportRefused(f"Cannot read {path}: {error.strerror or error}") from error
    start = head.removeprefix(_BOM).lstrip()
    if not start:
        raise ImportRefused(f"{path} is empty: not a Telegram export.")
    lower = start[:64].lower()
    if lower.startswith((b"<!doctype html", b"<html")) or (lower.startswith(b"<") and b"<html" in head.lower()):
        raise ImportRefused(f"{path} is Telegram's HTML export; the import reads JSON: {HOW_TO_EXPORT_JSON}.")
    if start.startswith(b"PK\x03\x04"):
        raise ImportRefused(_zip_refusal(path))
    if start[:1] not in _JSON_STARTS:
        raise ImportRefused(f"{path} is not JSON, so not a Telegram Desktop export ({RESULT}).")


def _zip_refusal(path: Path) -> str:
    """A zip: a Slack workspace export (its own command), else presumably a zipped Telegram export."""
    try:
        with zipfile.ZipFile(path) as archive:
            names = {name.rsplit("/", 1)[-1] for name in archive.namelist()}
    except (zipfile.BadZipFile, OSError, ValueError):
        names = set()
    if {"channels.json", "users.json"} <= names:
        return f"{path} is a Slack workspace export: import it with `omi-bridge import slack-export FILE.zip`."
    return f"{path} is a zip archive: unpack it and give the {RESULT} inside."


@contextmanager
def opened(path: Path) -> Iterator[JsonBytes]:
    """The file for one streaming pass; a read or parse error on the way becomes a refusal."""
    try:
        with path.open("rb") as file:
            yield JsonBytes(file)
    except ijson.JSONError as error:
        if "premature EOF" in str(error):
            raise ImportRefused(
                f"{path} ends too early: the file is cut off (a download or copy that did not finish?). "
                "Copy it again whole, or export again."
            ) from error
        raise ImportRefused(f"{path} is damaged: it is not valid JSON, so it cannot be read as an export.") from error
    except UnicodeDecodeError as error:
        raise ImportRefused(f"{path} is damaged: it is not valid UTF-8 JSON.") from error
    except OSError as error:
        raise ImportRefused(f"Cannot read {path}: {error.strerror or error}") from error
