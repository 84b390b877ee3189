"""One entry of an exported chat's `messages` → an `ImportedMessage`, or the reason it is left out."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from adapters.telegram.export.content import clean, message_text
from bot.importing.model import ChatInfo, ImportedMessage

SOURCE = "telegram"
#: The name shown for a sender or an origin the export names as null (a deleted account has no name).
DELETED_ACCOUNT = "Deleted Account"
CHANNEL_TYPES = frozenset({"public_channel", "private_channel"})
#: Dates outside these years are no Telegram message's (a broken field, milliseconds for seconds, …).
_EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
_LATEST = datetime(2100, 1, 1, tzinfo=UTC)
_DIGITS = re.compile(r"-?[0-9]{1,20}")


@dataclass
class ReadStats:
    """What a pass over one chat yielded and left out (the caller says how many were skipped, and why)."""

    read: int = 0
    service: int = 0  # joins, pins, calls, title changes, … (`type: "service"`)
    empty: int = 0  # neither text nor a medium (e.g. `type: "unsupported"` entries)
    undated: int = 0  # no usable `date_unixtime` nor `date`
    odd: int = 0  # not an object, or without an id

    @property
    def skipped(self) -> int:
        return self.service + self.empty + self.undated + self.odd

    def count(self, outcome: ImportedMessage | str) -> None:
        if isinstance(outcome, ImportedMessage):
            self.read += 1
        else:
            setattr(self, outcome, getattr(self, outcome) + 1)


def _integer(value: object) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, Decimal | float):
        try:
            return int(value) if value == int(value) else None
        except (ValueError, OverflowError):  # NaN, infinity
            return None
    if isinstance(value, str) and _DIGITS.fullmatch(value.strip()):
        return int(value.strip())
    return None


def _in_range(moment: datetime) -> datetime | None:
    return moment if _EARLIEST <= moment < _LATEST else None


def sent_at(entry: dict[str, Any]) -> datetime | None:
    """`date_unixtime` (seconds, UTC; a string in the export). Exports older than that field have only
    `date`: the exporting computer's local time without a zone, read here as this computer's local time (the
    same computer, usually; on a server in UTC it is read as UTC). None: no usable date."""
    seconds = _integer(entry.get("date_unixtime"))
    if seconds is not None and _EARLIEST.timestamp() <= seconds < _LATEST.timestamp():
        return datetime.fromtimestamp(seconds, UTC)
    local = entry.get("date")
    if not isinstance(local, str):
        return None
    try:
        parsed = datetime.fromisoformat(local.strip())
    except ValueError:
        return None
    try:
        return _in_range(parsed.astimezone(UTC))  # a naive time is taken as local time
    except (OverflowError, OSError, ValueError):
        return None


def _name(value: object) -> str:
    return clean(" ".join(value.split())) if isinstance(value, str) else ""


def author(entry: dict[str, Any], chat: ChatInfo) -> str:
    """SPEC §10: `from` (a channel's posts without one: the channel's name; null: a deleted account), with the
    post's signature as SPEC §6 writes it (`Title (Signature)`), and a forward's origin kept."""
    name = _name(entry.get("from"))
    if not name:
        name = chat.name if chat.type in CHANNEL_TYPES else DELETED_ACCOUNT
    signature = _name(entry.get("author"))
    if signature and signature != name:
        name = f"{name} ({signature})"
    if "forwarded_from" in entry:
        origin = _name(entry.get("forwarded_from")) or DELETED_ACCOUNT
        name = f"{name} (forwarded from {origin})"
    return name


def convert(entry: object, chat: ChatInfo) -> ImportedMessage | str:
    """The message, or why it is left out: "service", "empty", "undated" or "odd" (a `ReadStats` field)."""
    if not isinstance(entry, dict):
        return "odd"
    message_id = _integer(entry.get("id"))
    if message_id is None:
        return "odd"
    if entry.get("type") == "service":
        return "service"
    text = message_text(entry)  # any other type ("message", "unsupported", one added later) keeps its words
    if not text:
        return "empty"
    moment = sent_at(entry)
    if moment is None:
        return "undated"
    return ImportedMessage(SOURCE, chat.id, str(message_id), author(entry, chat), text, moment)
