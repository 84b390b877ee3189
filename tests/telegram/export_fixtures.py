"""Telegram Desktop exports ("Machine-readable JSON") built as Telegram Desktop writes them
(export_output_json.cpp): message fields in its order, `date` in the exporting computer's local time beside
`date_unixtime` (a string), `text` as a string or pieces and `text_entities` as the same pieces all objects,
`null` names, "(File not included. …)" paths, bare chat ids. Made up here, not copied from anyone's export."""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

#: The exporting computer's UTC offset: `date` is its local time (Berlin in winter), `date_unixtime` is UTC.
EXPORTER_OFFSET = timedelta(hours=1)
NOT_INCLUDED = "(File not included. Change data exporting settings to download.)"
T0 = datetime(2024, 3, 5, 14, 2, 11, tzinfo=UTC)

Text = str | list[str | dict[str, Any]]


def piece(kind: str, text: str, **extra: Any) -> dict[str, Any]:
    return {"type": kind, "text": text, **extra}


def entities(text: Text) -> list[dict[str, Any]]:
    """`text_entities`: the same parts, every one an object ("plain" for bare strings)."""
    if isinstance(text, str):
        return [piece("plain", text)] if text else []
    return [piece("plain", part) if isinstance(part, str) else part for part in text]


def at(minutes: float = 0) -> datetime:
    return T0 + timedelta(minutes=minutes)


def _dates(moment: datetime) -> dict[str, str]:
    local = (moment + EXPORTER_OFFSET).replace(tzinfo=None)
    return {"date": local.isoformat(timespec="seconds"), "date_unixtime": str(int(moment.timestamp()))}


def message(
    message_id: int,
    minutes: float = 0,
    text: Text = "",
    *,
    sender: str | None = "Alice Liddell",
    sender_id: str = "user1001",
    **fields: Any,
) -> dict[str, Any]:
    """A message as written: id, type, dates, from, from_id, then media fields (given), then text."""
    out: dict[str, Any] = {"id": message_id, "type": "message", **_dates(at(minutes))}
    if sender != "<missing>":
        out["from"] = sender
        out["from_id"] = sender_id
    out.update(fields)
    out["text"] = text
    out["text_entities"] = entities(text)
    return out


def service(entry_id: int, minutes: float, action: str, actor: str = "Alice Liddell", **fields: Any) -> dict[str, Any]:
    return {
        "id": entry_id, "type": "service", **_dates(at(minutes)), "actor": actor, "actor_id": "user1001",
        "action": action, **fields, "text": "", "text_entities": [],
    }  # fmt: skip


def chat(name: str | None, kind: str, chat_id: int, messages: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """Saved Messages (and "Replies") have no `name` key at all."""
    head: dict[str, Any] = {} if kind in ("saved_messages", "replies") else {"name": name}
    return {**head, "type": kind, "id": chat_id, "messages": list(messages)}


def full_export(*chats: dict[str, Any], left: Iterable[dict[str, Any]] = ()) -> dict[str, Any]:
    """The whole-account export: account data first, then `chats` and `left_chats`."""
    out: dict[str, Any] = {
        "about": "Here is the data you requested. Remember: Telegram is ad free, it doesn't sell your data.",
        "personal_information": {
            "user_id": 1001, "first_name": "Alice", "last_name": "Liddell", "phone_number": "+49 30 1234567",
            "username": "@alice", "bio": "",
        },
        "contacts": {"about": "This is your contact list.", "list": [
            {"user_id": 1002, "first_name": "Bob", "last_name": "Byrne", "phone_number": "+44 20 7946 0000",
             "date": "2020-01-02T10:00:00", "date_unixtime": "1577955600"},
        ]},
        "frequent_contacts": {"about": "Frequent contacts.", "list": [
            {"id": 1002, "category": "people", "type": "user", "name": "Bob Byrne", "rating": 0.5},
        ]},
        "chats": {"about": "This page lists all chats from this export.", "list": list(chats)},
    }  # fmt: skip
    left = list(left)
    if left:
        out["left_chats"] = {"about": "This page lists all supergroups and channels you left.", "list": left}
    return out


def write(directory: Path, data: Any, name: str = "result.json") -> Path:
    """As Telegram Desktop writes it: UTF-8, not ASCII-escaped, indented."""
    path = directory / name
    path.write_text(json.dumps(data, ensure_ascii=False, indent=1), encoding="utf-8")
    return path


# Realistic chats -------------------------------------------------------------------------------------------------


def family_group() -> dict[str, Any]:
    """A supergroup: Unicode names, formatting, forwards (a comment before them, as clients send it), media,
    service messages, a deleted account."""
    return chat("Семья 👨‍👩‍👧 Liddell", "private_supergroup", 1234567890, [
        service(1, -5, "create_group", title="Семья", members=["Bob Byrne", "Ольга Петрова"]),
        message(2, 0, ["Look at ", piece("bold", "this"), " 👉 ", piece("text_link", "recipe", href="https://ex.am/ple")]),
        message(3, 1, "Это прекрасно! 🎉", sender="Ольга Петрова", sender_id="user1003"),
        message(4, 2, "From my sister:", sender="Bob Byrne", sender_id="user1002"),
        message(5, 2, "Dinner at 7, bring 🍰", sender="Bob Byrne", sender_id="user1002", forwarded_from="Carol Byrne"),
        message(6, 3, "", sender="Bob Byrne", sender_id="user1002", forwarded_from="Tech News",
                photo=NOT_INCLUDED, width=1280, height=720),
        message(7, 4, "", sender=None, sender_id="user1004", media_type="sticker", sticker_emoji="😀",
                file=NOT_INCLUDED, file_name="sticker.webp", thumbnail=NOT_INCLUDED, width=512, height=512),
        service(8, 5, "pin_message", message_id=2),
        message(9, 6, "", sender="Ольга Петрова", sender_id="user1003", file=NOT_INCLUDED,
                file_name="audio_1@05-03-2024_15-08-11.ogg", media_type="voice_message", mime_type="audio/ogg",
                duration_seconds=12),
    ])  # fmt: skip


def news_channel() -> dict[str, Any]:
    """A channel: posts from the channel itself, one signed, one from an old export without `from`."""
    return chat("Tech News ⚡", "public_channel", 1500000001, [
        service(1, -10, "create_channel", actor="Tech News ⚡", title="Tech News ⚡"),
        message(2, 0, ["Release ", piece("code", "v2.0"), " is out: ", piece("link", "https://ex.am/v2")],
                sender="Tech News ⚡", sender_id="channel1500000001"),
        message(3, 60, "Interview today", sender="Tech News ⚡", sender_id="channel1500000001", author="Dana Scully"),
        message(4, 120, "An old post", sender="<missing>"),
    ])  # fmt: skip


def saved_messages() -> dict[str, Any]:
    """Saved Messages: no name; a note and a message saved from another chat."""
    return chat(
        None,
        "saved_messages",
        1001,
        [
            message(1, 0, "Buy milk 🥛"),
            message(2, 5, "Meeting notes", forwarded_from="Bob Byrne", saved_from="Bob Byrne"),
        ],
    )


def private_chat(name: str | None = "Bob Byrne", chat_id: int = 1002, n: int = 3) -> dict[str, Any]:
    return chat(name, "personal_chat", chat_id, [
        message(k, k, f"message {k} from Bob", sender=name, sender_id=f"user{chat_id}") for k in range(1, n + 1)
    ])  # fmt: skip


def write_large(path: Path, target_bytes: int, *, full: bool = False) -> int:
    """A realistic export of about `target_bytes`, written message by message (never held whole); returns how
    many messages it holds. `full`: the whole-account layout, the big chat between two small ones. Its messages
    are long posts (about 2 KB), as in a channel."""
    text = "Let us meet at the café near the station at seven — bring the notes, and the 🍰. " * 24
    count = 0
    with path.open("w", encoding="utf-8") as out:
        if full:
            head = json.dumps(full_export(private_chat("Zed", 7, 2)), ensure_ascii=False, indent=1)
            out.write(head[: head.rindex("]")].rstrip() + ",\n")  # the list stays open for the big chat
        header = json.dumps({"name": "Big Group 🐘", "type": "private_supergroup", "id": 1700000000})[:-1]
        out.write(f'{header}, "messages": [\n')
        while out.tell() < target_bytes:
            pieces = [f"{count}: ", piece("bold", "Note"), " ", text]
            entry = message(count + 1, count / 10, pieces, sender=("Alice Liddell", "Bob Byrne")[count % 2])
            out.write(("," if count else "") + json.dumps(entry, ensure_ascii=False, indent=1))
            count += 1
        out.write("\n]}")
        if full:
            tail = json.dumps(private_chat("Ann", 8, 2), ensure_ascii=False, indent=1)
            out.write(f",\n{tail}\n]}}}}")
    return count
