"""Which Slack requests become stored jobs, with what payload and dedupe keys; everything else is just answered."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from bot.events import Platform, session_key
from bot.store import Arrival, InboxRow

SAVE_MESSAGE = "save_to_omi"
SAVE_THREAD = "save_thread_to_omi"
#: action_id prefix of the bridge's own buttons (send.py); other apps' or old buttons are ignored.
BUTTON_PREFIX = "omi:"
_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,254}")
#: Message subtypes that carry something a user wrote to the bot; edits, joins, deletions… are ignored.
SAVED_SUBTYPES = (None, "file_share", "thread_broadcast", "me_message")


class JobKind(StrEnum):
    COMMAND = "command"  # `/omi …`
    SHORTCUT = "shortcut"  # a message shortcut (for a thread: only the thread reference)
    ACTION = "action"  # a click on one of the bridge's buttons
    EVENT = "event"  # a direct message to the bot
    HOME = "home"  # the App Home tab was opened: publish it after the ack


@dataclass(frozen=True, slots=True)
class Job:
    kind: JobKind
    payload: dict[str, Any]
    dedupe_keys: tuple[str, ...]

    def arrival(self) -> Arrival:
        """Stored with its session (whose it is), so with several instances its session's holder handles it."""
        return Arrival(
            Platform.SLACK.value,
            self.kind.value,
            json.dumps(self.payload),
            self.dedupe_keys,
            session=session_of(self.kind, self.payload),
        )


def job_for(body: object, bot_user_id: str | None) -> Job | None:
    """The job a request carries, or None when the bridge ignores it (it is still answered 2xx). Never raises,
    whatever the body's shape: what cannot be read here is left for the parser to refuse (with one log line)."""
    if not isinstance(body, dict):
        return None
    # The legacy verification token rides along in every payload; it has no business in the database.
    body = {key: value for key, value in body.items() if key != "token"}
    if body.get("command"):
        return Job(JobKind.COMMAND, body, _keys("slack:cmd:", body.get("trigger_id")))
    kind = body.get("type")
    if kind == "message_action":
        return _shortcut(body)
    if kind == "block_actions":
        actions = body.get("actions")
        first = as_dict(actions[0]) if isinstance(actions, list) and actions else {}
        if str(first.get("action_id", "")).startswith(BUTTON_PREFIX) and first.get("value"):
            return Job(JobKind.ACTION, body, _keys("slack:action:", body.get("trigger_id")))
        return None
    if kind == "event_callback" or (not isinstance(kind, str) and isinstance(body.get("event"), dict)):
        return _event(body, bot_user_id)
    return None


def as_dict(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def as_str(value: object) -> str:
    """A string field as a string (Slack ids and timestamps); "" for anything else."""
    return value if isinstance(value, str) else ""


def _shortcut(body: dict[str, Any]) -> Job | None:
    callback = body.get("callback_id")
    key = _keys("slack:action:", body.get("trigger_id"))
    if callback == SAVE_MESSAGE:
        return Job(JobKind.SHORTCUT, body, key)
    if callback == SAVE_THREAD:
        # Only the reference: the thread is read after the ack (it may be long; Slack waits 3 s at most).
        message = as_dict(body.get("message"))
        reference = {
            "type": "message_action",
            "callback_id": SAVE_THREAD,
            "trigger_id": body.get("trigger_id"),
            "user": as_dict(body.get("user")),
            "channel": as_dict(body.get("channel")),
            "response_url": body.get("response_url"),
            "thread_ts": message.get("thread_ts") or message.get("ts"),
        }
        return Job(JobKind.SHORTCUT, reference, key)
    return None


def is_direct(event: dict[str, Any]) -> bool:
    """An event in the user's DM with the bot (a DM's channel id starts with D when `channel_type` is missing)."""
    channel_type = event.get("channel_type")
    return channel_type == "im" or (not isinstance(channel_type, str) and as_str(event.get("channel")).startswith("D"))


def _event(body: dict[str, Any], bot_user_id: str | None) -> Job | None:
    event = as_dict(body.get("event"))
    event_key = _keys("slack:event:", body.get("event_id"))
    if event.get("type") == "app_home_opened":
        if event.get("tab", "home") != "home" or not as_str(event.get("user")):
            return None
        return Job(JobKind.HOME, {"user": event["user"], "event_id": body.get("event_id")}, event_key)
    if event.get("type") != "message" or not is_direct(event):
        return None
    if event.get("subtype") == "message_changed":
        return _edit(body, event, bot_user_id)
    if event.get("subtype") not in SAVED_SUBTYPES or event.get("bot_id") or not event.get("user"):
        return None
    if bot_user_id is not None and event["user"] == bot_user_id:
        return None
    # The message key too: the same DM must not count twice even if Slack sent it under two event ids.
    message_key = _keys(f"slack:msg:{as_str(event.get('channel'))}:", event.get("ts"))
    return Job(JobKind.EVENT, body, event_key + message_key)


def _edit(body: dict[str, Any], event: dict[str, Any], bot_user_id: str | None) -> Job | None:
    """A DM edited by its author: replaces the text while its burst is open (later edits are ignored)."""
    edited = as_dict(event.get("message"))
    user = edited.get("user")
    if not user or edited.get("bot_id") or user == bot_user_id or not _id(edited.get("ts")):
        return None
    stamp = _id(as_dict(edited.get("edited")).get("ts")) or _id(event.get("ts")) or ""
    edit_key = f"slack:edit:{as_str(event.get('channel'))}:{_id(edited.get('ts'))}:{stamp}"
    return Job(JobKind.EVENT, body, (*_keys("slack:event:", body.get("event_id")), edit_key))


def _id(value: object) -> str | None:
    """An id or timestamp as Slack writes them (`Ev0…`, `1712345678.123456`, trigger ids), fit to be part of a
    key; anything else cannot tell one request from another."""
    return value if isinstance(value, str) and _ID.fullmatch(value) else None


def _keys(prefix: str, identifier: object) -> tuple[str, ...]:
    """A dedupe key, only for a real id: an empty or odd one would make every later request a "duplicate"."""
    token = _id(identifier)
    return (f"{prefix}{token}",) if token else ()


def session_hint(row: InboxRow) -> str | None:
    """Whose a stored job is, read cheaply (see `bot.processing`): the same chat and user the parser gives the
    message (convert.py), so the key is the message's `session_key`."""
    body = json.loads(row.payload)
    return session_of(row.kind, body) if isinstance(body, dict) else None


def session_of(kind: str, body: dict[str, Any]) -> str | None:
    """A job's session key from its payload (None when it names no user)."""
    user, chat = "", ""
    if kind == JobKind.COMMAND:
        user, chat = as_str(body.get("user_id")), as_str(body.get("channel_id"))
    elif kind in (JobKind.ACTION, JobKind.SHORTCUT):
        user = as_str(as_dict(body.get("user")).get("id"))
        chat = as_str(as_dict(body.get("channel")).get("id"))
        if kind == JobKind.ACTION and not chat:
            chat = as_str(as_dict(body.get("container")).get("channel_id"))
    elif kind == JobKind.EVENT:
        event = as_dict(body.get("event"))
        if event.get("subtype") == "message_changed":
            user = as_str(as_dict(event.get("message")).get("user"))
        else:
            user = as_str(event.get("user"))
        chat = as_str(event.get("channel"))
    if not user:
        return None
    return session_key(Platform.SLACK, chat or user, user)
