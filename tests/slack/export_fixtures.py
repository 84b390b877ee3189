"""Slack workspace exports built in tests, laid out as Slack's export page lays them out (users.json,
channels.json, groups.json, mpims.json, dms.json, `FOLDER/YYYY-MM-DD.json` day files), and broken ones: a zip
slip, a zip bomb, a zip whose directory lies about a member's size, too many members, a damaged zip, and a
Telegram export in a zip."""

from __future__ import annotations

import json
import zipfile
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any


def day_of(ts: str) -> str:
    return datetime.fromtimestamp(float(ts), UTC).strftime("%Y-%m-%d")


@dataclass
class SlackExport:
    """An export being built: add people, conversations and messages, then `write` the zip."""

    users: list[dict[str, Any]] = field(default_factory=list)
    listings: dict[str, list[dict[str, Any]]] = field(default_factory=lambda: {"channels.json": []})
    days: dict[tuple[str, str], list[dict[str, Any]]] = field(default_factory=dict)
    extra: dict[str, bytes] = field(default_factory=dict)  # further members, written as given

    def user(self, user_id: str, real_name: str) -> str:
        handle = real_name.split()[0].lower()
        profile = {"real_name": real_name, "display_name": handle}
        self.users.append({"id": user_id, "name": handle, "real_name": real_name, "profile": profile})
        return user_id

    def channel(self, channel_id: str, name: str, *, kind: str = "channel", members: list[str] = ()) -> str:
        """`kind`: channel (channels.json), private (groups.json), mpim (mpims.json), dm (dms.json; no name)."""
        listing = {"channel": "channels.json", "private": "groups.json", "mpim": "mpims.json", "dm": "dms.json"}[kind]
        entry: dict[str, Any] = {"id": channel_id, "created": 1700000000, "members": list(members)}
        if kind != "dm":
            entry |= {"name": name, "is_archived": False, "topic": {"value": ""}, "purpose": {"value": ""}}
        self.listings.setdefault(listing, []).append(entry)
        return channel_id if kind == "dm" else name

    def message(self, folder: str, ts: str, text: str, *, user: str | None = None, **fields: Any) -> dict[str, Any]:
        """A message in `folder`'s day file for `ts`'s date (UTC)."""
        message = {"type": "message", "ts": ts, "text": text, **({"user": user} if user else {}), **fields}
        self.days.setdefault((folder, day_of(ts)), []).append(message)
        return message

    def thread(self, folder: str, parent: tuple[str, str, str], *replies: tuple[str, str, str]) -> None:
        """(user, ts, text) of a parent and its replies, each in the day file of its own date."""
        user, ts, text = parent
        reply_list = [{"user": who, "ts": when} for who, when, _ in replies]
        self.message(folder, ts, text, user=user, thread_ts=ts, reply_count=len(replies), replies=reply_list)
        for who, when, words in replies:
            self.message(folder, when, words, user=who, thread_ts=ts, parent_user_id=user)

    def members(self) -> dict[str, bytes]:
        found = {"users.json": json.dumps(self.users).encode()}
        found |= {name: json.dumps(entries).encode() for name, entries in self.listings.items()}
        # Day files in reverse date order in the zip: the reader must order them itself.
        for (folder, day), messages in sorted(self.days.items(), reverse=True):
            found[f"{folder}/{day}.json"] = json.dumps(messages, indent=1).encode()
        return found | self.extra

    def write(self, path: Path, *, root: str = "") -> Path:
        """The zip at `path`; `root`: a folder everything is inside (an export zipped again by hand)."""
        return write_zip(path, {root + name: data for name, data in self.members().items()})


def write_zip(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(zipfile.ZipInfo(name, date_time=(2024, 3, 1, 0, 0, 0)), data, zipfile.ZIP_DEFLATED)
    return path


def zip_bomb(path: Path, export: SlackExport, folder: str, size: int) -> Path:
    """A day file of `size` bytes that compresses to almost nothing (a JSON array padded with spaces)."""
    export.extra[f"{folder}/2024-03-09.json"] = b"[" + b" " * (size - 2) + b"]"
    return export.write(path)


def lying_zip(path: Path, export: SlackExport, folder: str, size: int, claimed: int) -> Path:
    """A day file of `size` bytes whose sizes in the zip (local header and central directory) say `claimed`."""
    name = f"{folder}/2024-03-09.json"
    export.extra[name] = b"[" + b" " * (size - 2) + b"]"
    export.write(path)
    with zipfile.ZipFile(path) as archive:
        member = archive.getinfo(name)
    data = bytearray(path.read_bytes())
    local = member.header_offset
    assert data[local : local + 4] == b"PK\x03\x04"
    data[local + 22 : local + 26] = claimed.to_bytes(4, "little")
    central = data.find(b"PK\x01\x02")
    while central >= 0:
        length = int.from_bytes(data[central + 28 : central + 30], "little")
        if data[central + 46 : central + 46 + length] == name.encode():
            data[central + 24 : central + 28] = claimed.to_bytes(4, "little")
            break
        central = data.find(b"PK\x01\x02", central + 4)
    else:
        raise AssertionError("central directory entry not found")
    path.write_bytes(bytes(data))
    return path


def telegram_zip(path: Path) -> Path:
    """Telegram Desktop's export folder, zipped."""
    result = {"name": "Family", "type": "private_group", "id": 42, "messages": []}
    return write_zip(path, {"ChatExport_2024-03-05/result.json": json.dumps(result).encode()})


def damaged_zip(path: Path, export: SlackExport, folder: str) -> Path:
    """A valid export whose one day file's compressed bytes were scrambled in transit."""
    name = f"{folder}/2024-03-09.json"
    export.extra[name] = json.dumps([{"type": "message", "ts": "1709942400.000100", "text": "x" * 500}]).encode()
    export.write(path)
    with zipfile.ZipFile(path) as archive:
        member = archive.getinfo(name)
    data = bytearray(path.read_bytes())
    local = member.header_offset
    name_length, extra_length = (int.from_bytes(data[at : at + 2], "little") for at in (local + 26, local + 28))
    start = local + 30 + name_length + extra_length
    for at in range(start + 2, start + member.compress_size - 2):
        data[at] ^= 0x5A
    path.write_bytes(bytes(data))
    return path
