"""The export's layout, read as a stream: a single chat (`{name, type, id, messages}`) or the full export
(`{about, personal_information, …, chats: {about, list: [chat, …]}, left_chats: {…}}`), its chats and how many
messages each holds — without ever holding more than one message in memory.

The first pass reads the whole file (so a cut-off or damaged file is refused before anything is imported) and
records, per chat, where its entries sit among the `messages` arrays of its section: a full export is walked event
by event, the only way to see where one chat's messages end and the next chat's begin; a single-chat export (its
header before `messages`, as Telegram Desktop writes it) only up to its first message, the rest counted by their
`type` with ijson's C `items`. The second pass builds one chat's entries with C `items`, one at a time."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import Any

import ijson

from adapters.telegram.export.content import clean
from adapters.telegram.export.source import RESULT, opened
from bot.importing.model import ChatInfo, ImportRefused

#: Where chats live in a full export; "" is the root of a single-chat export.
SECTIONS = ("chats", "left_chats")
#: Keys only a full export has: one without "chats" was exported without any chat ticked.
_ACCOUNT_KEYS = frozenset(
    {"about", "personal_information", "profile_pictures", "stories", "contacts", "frequent_contacts", "sessions",
     "web_sessions", "other_data"}
)  # fmt: skip
_HEADER = ("name", "type", "id")
_VALUE_EVENTS = frozenset({"start_map", "start_array", "string", "number", "boolean", "null"})
_SCALARS = frozenset({"string", "number", "boolean", "null"})
_DATE_KEYS = frozenset({"date", "date_unixtime"})
_ENTRY_ENDS = frozenset({"end_map", "end_array", "string", "number", "boolean", "null"})
#: Bot API ids (the form the live bridge keys chats by) from the bare ids Telegram Desktop writes.
_CHANNEL_LIKE = frozenset({"private_supergroup", "public_supergroup", "private_channel", "public_channel"})
_UNNAMED = {"saved_messages": "Saved Messages", "replies": "Replies", "verification_codes": "Verification Codes"}


@dataclass
class Place:
    """Where one chat's entries are: the `messages` arrays of `section`, from entry `start`, `entries` of them."""

    section: str
    start: int = 0
    entries: int = 0  # all of them (a single-chat export: not counted, its second pass takes every one)
    typed: int = 0  # those with a `type` (every Telegram entry has one)
    service: int = 0
    dated: int = 0  # `date`/`date_unixtime` keys seen (a single-chat export: in its first entry); Telegram's have
    name: object = None
    type: object = None
    id: object = None
    has_id: bool = False

    def items_prefix(self) -> str:
        return f"{self.section}.list.item.messages.item" if self.section else "messages.item"

    def info(self) -> ChatInfo:
        kind = clean(self.type) if isinstance(self.type, str) else ""
        return ChatInfo(chat_id(self.id, kind), chat_name(self.name, kind, self.id), kind, self.typed - self.service)


def chat_id(bare: object, kind: str) -> str:
    """The Bot API form: a supergroup or channel `-100<id>`, a basic group `-<id>`, a user, bot or Saved Messages
    its own id. An id that is not a positive integer is kept as written."""
    if isinstance(bare, int) and not isinstance(bare, bool) and bare > 0:
        if kind in _CHANNEL_LIKE:
            return f"-100{bare}"
        if kind == "private_group":
            return f"-{bare}"
    return clean(str(bare))


def bare_id(chat: str, kind: str) -> str:
    """`chat_id` undone: the id as Telegram Desktop writes it."""
    if kind in _CHANNEL_LIKE:
        return chat.removeprefix("-100")
    return chat.removeprefix("-") if kind == "private_group" else chat


def chat_name(name: object, kind: str, bare: object) -> str:
    if isinstance(name, str) and name.strip():
        return clean(" ".join(name.split()))
    if kind in _UNNAMED:
        return _UNNAMED[kind]  # Telegram Desktop writes no name for these
    return "Deleted Account" if kind in ("personal_chat", "bot_chat") else f"Chat {bare}"


def _prefix(section: str, rest: str) -> str:
    return f"{section}.list.item.{rest}" if section else rest


#: prefix → (section, what the event there is)
_ROUTES: dict[str, tuple[str, str]] = {}
for _section in ("", *SECTIONS):
    for _field in _HEADER:
        _ROUTES[_prefix(_section, _field)] = (_section, _field)
    _ROUTES[_prefix(_section, "messages.item")] = (_section, "entry")
    _ROUTES[_prefix(_section, "messages.item.type")] = (_section, "entry_type")
    if _section:
        _ROUTES[f"{_section}.list.item"] = (_section, "chat")


class _Walk:
    """The state of the first pass."""

    def __init__(self) -> None:
        self.root_keys: list[str] = []
        self.places: list[Place] = []
        self.open: dict[str, Place] = {}
        self.entries = dict.fromkeys(SECTIONS, 0)

    def place(self, section: str) -> Place | None:
        if not section and "" not in self.open:
            self.open[""] = Place("")  # the root of a single-chat export opens with the file
            self.places.append(self.open[""])
        return self.open.get(section)

    def event(self, section: str, what: str, event: str, value: Any) -> None:
        if what == "chat":
            if event == "start_map":
                self.open[section] = Place(section, start=self.entries[section])
                self.places.append(self.open[section])
            elif event == "end_map" and section in self.open:
                self.entries[section] += self.open.pop(section).entries
            return
        place = self.place(section)
        if place is None:
            return
        if what == "entry":
            if event in _VALUE_EVENTS:
                place.entries += 1
            elif event == "map_key" and value in _DATE_KEYS:
                place.dated += 1
        elif what == "entry_type" and event in _VALUE_EVENTS:
            place.typed += 1
            place.service += event == "string" and value == "service"
        elif event in _SCALARS:
            setattr(place, what, value)
            place.has_id = place.has_id or (what == "id" and value is not None)


def first_pass(path: Path) -> list[Place]:
    """Every chat of the export, in file order (refusals: damaged or cut-off file, not a Telegram export)."""
    walk = _Walk()
    single = False
    with opened(path) as source:
        for prefix, event, value in ijson.parse(source):
            if not prefix:
                if event == "start_array":
                    raise _not_telegram(path, "a list at the top (a Slack export's day file looks like this)")
                if event in _SCALARS:
                    raise _not_telegram(path, "a single value")
                if event == "map_key":
                    walk.root_keys.append(value)
                    single = value == "messages" and _single_header_done(walk)
                continue
            route = _ROUTES.get(prefix)
            if route is not None:
                walk.event(route[0], route[1], event, value)
            if single and _first_entry_done(prefix, event):
                break  # a single-chat export as Telegram writes it: its first entry seen, C items count the rest
        else:
            return _chats(path, walk)
    root = walk.open[""]
    seen, root.entries, root.typed, root.service = root.entries, 0, 0, 0
    with opened(path) as source:
        for kind in ijson.items(source, "messages.item.type"):
            root.typed += 1
            root.service += kind == "service"
    return [_telegram_like(path, root, seen)]


def _first_entry_done(prefix: str, event: str) -> bool:
    if prefix == "messages":
        return event == "end_array"
    return prefix == "messages.item" and event in _ENTRY_ENDS


def _single_header_done(walk: _Walk) -> bool:
    root = walk.open.get("")
    if root is None or not root.has_id or any(key in SECTIONS for key in walk.root_keys):
        return False
    return "name" in walk.root_keys or root.type in _UNNAMED


def _chats(path: Path, walk: _Walk) -> list[Place]:
    keys = set(walk.root_keys)
    chats = [place for place in walk.places if place.section and place.has_id]
    if chats:
        return chats
    root = walk.open.get("")
    if "messages" in keys and root is not None and root.has_id and not keys & set(SECTIONS):
        return [_telegram_like(path, root, root.entries)]
    if keys & (_ACCOUNT_KEYS | set(SECTIONS)):
        raise ImportRefused(
            f"{path} is a Telegram export without any chat: export again with the chats you want ticked "
            "(Telegram Desktop → Settings → Advanced → Export Telegram data, Format: Machine-readable JSON)."
        )
    raise _not_telegram(path, 'no chat in it (no "messages" or "chats")')


def _telegram_like(path: Path, root: Place, entries: int) -> Place:
    if entries and not root.dated:
        raise _not_telegram(path, "its messages have no dates")
    return root


def _not_telegram(path: Path, why: str) -> ImportRefused:
    return ImportRefused(f"{path} is not a Telegram export: {why}. Give the {RESULT} of a Telegram Desktop export.")


def entries(path: Path, place: Place) -> Iterator[object]:
    """One chat's entries, in file order, as ijson builds them (one at a time)."""
    with opened(path) as source:
        found = ijson.items(source, place.items_prefix())
        yield from islice(found, place.start, place.start + place.entries) if place.section else found
