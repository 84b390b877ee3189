"""A Slack workspace export (the zip from Slack's "Export data" admin page, SPEC §10), read safely: one
conversation's messages oldest first, threads in place, authors from users.json — or a clear refusal.

The layout: `users.json` (`org_users.json` on Enterprise Grid), `channels.json`, and when the export has them
`groups.json` (private channels), `mpims.json` (group DMs), `dms.json`; one folder per conversation (a channel's
or group DM's `name`, a DM's `id`) of `YYYY-MM-DD.json` day files, each a JSON array of messages. A thread's
replies are messages of their own (`thread_ts` ≠ `ts`), in whatever day file they were written.

Safety before anything is read out: not a zip or a damaged one, a member whose path leaves the export's folder,
a member that unpacks to more than `max_member_bytes` (by the zip's directory, and counted while unpacking, so a
directory that lies is caught too), more than `max_members` members, a Telegram export — each is an
`ImportRefused` (exit 2). Every JSON file is parsed as a stream (ijson); the conversation's messages go to the
same on-disk `MessageSpool` as the Web API import, so memory does not grow with the export, and every refusal
comes before the first message is handed out."""

from __future__ import annotations

import re
import zipfile
import zlib
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import IO, Any

import ijson

from adapters.slack.convert import parse_ts
from adapters.slack.history import KnownChannels, KnownPeople, MessageSpool, render_message
from adapters.slack.jobs import as_dict, as_str
from adapters.slack.people import SlackPerson, person_from_user
from bot.importing.model import EXIT_USAGE, ChatInfo, ImportedMessage, ImportRefused

MAX_MEMBER_BYTES = 200 * 1024 * 1024  # SPEC §10: members over 200 MB uncompressed are refused (zip bombs)
MAX_MEMBERS = 100_000
#: The conversation listings an export may hold, and the kind each lists.
LISTINGS = (("channels.json", "channel"), ("groups.json", "private"), ("mpims.json", "mpim"), ("dms.json", "dm"))
PEOPLE = ("users.json", "org_users.json")
_DAY = re.compile(r"(?P<folder>[^/]+)/(?P<day>[0-9]{4}-[0-9]{2}-[0-9]{2})\.json")
_HOW_TO_EXPORT = "a Slack export is the .zip that Slack's Workspace settings → Import/Export Data → Export gives"
#: How many conversations an "unknown channel" refusal names before "… and N more".
LISTED = 30


class _Overflow(Exception):
    """A member unpacked to more bytes than allowed."""


class _Capped:
    """A member's bytes for the JSON parser, refused past `limit` (its declared size, or the cap if lower)."""

    def __init__(self, stream: IO[bytes], limit: int) -> None:
        self._stream = stream
        self._limit = limit
        self._seen = 0

    def read(self, size: int = -1) -> bytes:
        data = self._stream.read(size if size >= 0 else self._limit + 1)
        self._seen += len(data)
        if self._seen > self._limit:
            raise _Overflow
        return data


def _refused(path: Path, why: str) -> ImportRefused:
    return ImportRefused(f"{path.name}: {why}; nothing was imported", EXIT_USAGE)


def _declared_members(handle: IO[bytes]) -> int | None:
    """The member count the zip's end record declares (zip64 too), read before `ZipFile` loads the directory:
    a zip of millions of tiny members is refused without holding them all in memory."""
    size = handle.seek(0, 2)
    handle.seek(max(0, size - 65_557))  # the end record (22 bytes) plus the longest comment
    tail = handle.read()
    at = tail.rfind(b"PK\x05\x06")
    if at < 0 or len(tail) - at < 22:
        return None
    count = int.from_bytes(tail[at + 10 : at + 12], "little")
    if count != 0xFFFF:
        return count
    locator = tail.rfind(b"PK\x06\x07", 0, at)
    if locator < 0:
        return None
    handle.seek(int.from_bytes(tail[locator + 8 : locator + 16], "little"))
    record = handle.read(56)
    return int.from_bytes(record[32:40], "little") if record[:4] == b"PK\x06\x06" else None


def _not_a_zip(path: Path, head: bytes) -> ImportRefused:
    start = head.lstrip(b"\xef\xbb\xbf \t\r\n")
    if start[:1] in (b"{", b"["):
        return _refused(
            path,
            "this is a JSON file, not a Slack export (a Telegram export's result.json? import that with"
            f" `omi-bridge import telegram {path.name} --as telegram:ID`); {_HOW_TO_EXPORT}",
        )
    return _refused(path, f"not a zip file, so not a Slack export; {_HOW_TO_EXPORT}")


def _unsafe_name(name: str) -> bool:
    """A member path that would leave the export's folder if unpacked (`../`, absolute, a drive letter)."""
    name = name.replace("\\", "/")
    return name.startswith("/") or bool(re.match(r"[A-Za-z]:", name)) or ".." in name.split("/")


def _finish(coroutine: Coroutine[Any, Any, Any]) -> Any:
    """Runs a coroutine that never waits to its end, without an event loop: the live bridge's rendering is async
    for its look-ups, and here every look-up is answered from users.json and the listings in memory."""
    try:
        coroutine.send(None)
    except StopIteration as done:
        return done.value
    coroutine.close()
    raise RuntimeError("an export look-up waited")


class _Export:
    """An opened, checked export: its members, where its root folder is, and its JSON read as a stream."""

    def __init__(self, path: str | Path, max_member_bytes: int, max_members: int) -> None:
        self.path = Path(path)
        self._limit = max_member_bytes
        try:
            with self.path.open("rb") as handle:
                head = handle.read(4096)
                declared = _declared_members(handle) if head.startswith(b"PK") else None
        except OSError as exc:
            raise _refused(self.path, f"cannot be read ({exc.strerror or exc})") from exc
        if not head.startswith(b"PK"):
            raise _not_a_zip(self.path, head)
        if declared is not None and declared > max_members:
            raise _refused(self.path, f"the zip holds {declared:,} files, more than an export has ({max_members:,})")
        try:
            self._zip = zipfile.ZipFile(self.path)
            members = self._zip.infolist()
        except (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError) as exc:
            raise _refused(self.path, f"the zip file is damaged ({exc}); download the export again") from exc
        try:
            self._check(members, max_members)
            self._names = {member.filename for member in members}
            self._root = self._find_root()
        except ImportRefused:
            self._zip.close()
            raise
        self.days: dict[str, list[str]] = {}  # folder → its day files, in date order
        for name in sorted(self._names):
            match = _DAY.fullmatch(name.removeprefix(self._root)) if name.startswith(self._root) else None
            if match:
                self.days.setdefault(match["folder"], []).append(name)

    def _check(self, members: list[zipfile.ZipInfo], max_members: int) -> None:
        if len(members) > max_members:
            raise _refused(self.path, f"the zip holds {len(members):,} files, more than an export has")
        for member in members:
            if _unsafe_name(member.filename):
                raise _refused(
                    self.path, f"it holds {member.filename!r}, a path outside the export's folder: refused as unsafe"
                )
            if member.file_size > self._limit:
                raise _refused(
                    self.path,
                    f"{member.filename} would unpack to {member.file_size / 2**20:,.0f} MB, over the"
                    f" {self._limit / 2**20:,.0f} MB a file of an export may have (a zip bomb?)",
                )

    def _find_root(self) -> str:
        """ "" or the folder the export was zipped in (an export unpacked and zipped again by hand)."""
        roots = [
            name[: -len(listing)]
            for name in self._names
            for listing in (*PEOPLE, "channels.json")
            if name.endswith(listing) and (name == listing or name[: -len(listing)].endswith("/"))
        ]
        if roots:
            return min(roots, key=len)
        if any(name.rsplit("/", 1)[-1] in ("result.json", "messages.html") for name in self._names):
            raise _refused(
                self.path,
                "this is a Telegram export, not a Slack export: unzip it and import its result.json with"
                " `omi-bridge import telegram result.json --as telegram:ID`",
            )
        raise _refused(self.path, f"not a Slack export (it has no users.json or channels.json); {_HOW_TO_EXPORT}")

    def close(self) -> None:
        self._zip.close()

    def __enter__(self) -> _Export:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def items(self, name: str) -> Iterator[Any]:
        """The elements of the JSON array in member `name`, one at a time."""
        member = self._zip.getinfo(name)
        shown = name.removeprefix(self._root)
        try:
            with self._zip.open(member) as raw:
                yield from ijson.items(_Capped(raw, min(member.file_size, self._limit)), "item", use_float=True)
        except _Overflow as exc:
            raise _refused(
                self.path,
                f"{shown} unpacks to more than its {min(member.file_size, self._limit):,} bytes (a zip bomb?)",
            ) from exc
        except (zipfile.BadZipFile, zlib.error, EOFError, OSError, NotImplementedError, RuntimeError) as exc:
            raise _refused(self.path, f"{shown} is damaged ({exc}); download the export again") from exc
        except (ijson.JSONError, UnicodeDecodeError, ValueError) as exc:
            raise _refused(self.path, f"{shown} is not valid JSON ({exc})") from exc

    def people(self) -> dict[str, SlackPerson]:
        found: dict[str, SlackPerson] = {}
        for listing in PEOPLE:
            if self._root + listing in self._names:
                for user in self.items(self._root + listing):
                    person = person_from_user(as_dict(user))
                    if person.id:
                        found[person.id] = person
        return found

    def conversations(self, people: dict[str, SlackPerson]) -> list[tuple[ChatInfo, str]]:
        """Every conversation the listings describe, with its folder; then folders no listing describes."""
        found: list[tuple[ChatInfo, str]] = []
        for listing, kind in LISTINGS:
            if self._root + listing not in self._names:
                continue
            for item in self.items(self._root + listing):
                item = as_dict(item)
                chat_id, name = as_str(item.get("id")), as_str(item.get("name"))
                if kind == "dm":
                    members = item.get("members") if isinstance(item.get("members"), list) else []
                    name = ", ".join(people[m].name if m in people else as_str(m) for m in members) or chat_id
                folder = chat_id if kind == "dm" else name
                if chat_id and folder:
                    found.append((ChatInfo(chat_id, name, kind), folder))
        described = {folder for _, folder in found}
        found += [(ChatInfo(folder, folder, "channel"), folder) for folder in self.days if folder not in described]
        return found


def _choose(export: _Export, wanted: str, conversations: list[tuple[ChatInfo, str]]) -> tuple[ChatInfo, str]:
    """`wanted` as a name (`general`, `#general`), an id (`C0123`) or a folder."""
    key = wanted.strip().removeprefix("#").casefold()
    for chat, folder in conversations:
        if key in (chat.name.casefold(), chat.id.casefold(), folder.casefold()):
            return chat, folder
    names = [f"#{chat.name}" if chat.type in ("channel", "private") else chat.name for chat, _ in conversations]
    shown = ", ".join(names[:LISTED]) + (f" … and {len(names) - LISTED} more" if len(names) > LISTED else "")
    raise _refused(export.path, f"it has no channel {wanted!r}; it has: {shown or 'no conversations'}")


def list_channels(
    path: str | Path, *, max_member_bytes: int = MAX_MEMBER_BYTES, max_members: int = MAX_MEMBERS
) -> list[ChatInfo]:
    """The conversations the export holds (`type`: channel, private, mpim, dm; `messages` unknown: None)."""
    with _Export(path, max_member_bytes, max_members) as export:
        return [chat for chat, _ in export.conversations(export.people())]


def read_export(
    path: str | Path, channel_name: str, *, max_member_bytes: int = MAX_MEMBER_BYTES, max_members: int = MAX_MEMBERS
) -> Iterator[ImportedMessage]:
    """The messages of one conversation (`channel_name`: a name, `#name` or an id), oldest first, each thread's
    replies right after their parent. `chat` is the channel's id, `message_id` its `ts`, as the Web API import
    keys them, so the ledger knows a message whichever way it came. A generator: the whole conversation is read
    (and every check made) at the first `next()`, which raises any `ImportRefused`."""
    with _Export(path, max_member_bytes, max_members) as export:
        people = export.people()
        conversations = export.conversations(people)
        chat, folder = _choose(export, channel_name, conversations)
        names = {info.id: info.name for info in (found for found, _ in conversations) if info.type != "dm"}

        async def find_person(user_id: str, fallback: str | None) -> SlackPerson:
            return people.get(user_id) or SlackPerson(user_id, fallback or user_id)

        async def find_channel(channel_id: str) -> str | None:
            return names.get(channel_id)

        directory, channels = KnownPeople(find_person), KnownChannels(find_channel)
        with MessageSpool("slack", chat.id) as spool:
            for day in export.days.get(folder, []):
                for item in export.items(day):
                    message = as_dict(item)
                    user, profile = as_str(message.get("user")), as_dict(message.get("user_profile"))
                    if user and user not in people and profile:  # someone from another workspace, say
                        people[user] = person_from_user({"id": user, "profile": profile, **profile}, user)
                    ts = parse_ts(message.get("ts"))
                    rendered = _finish(render_message(message, chat.id, directory, channels))
                    if ts is not None and rendered is not None:
                        spool.add(ts, parse_ts(message.get("thread_ts")), *rendered)
            yield from spool
