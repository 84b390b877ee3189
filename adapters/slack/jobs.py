"""Which Slack requests become stored jobs, with what payload and dedupe keys; everything else is just answered."""

from __future__ import annotations

import json
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from bot.events import Platform
from bot.store import Arrival, InboxRow

SAVE_MESSAGE = "save_to_omi"
SAVE_THREAD = "save_thread_to_omi"
#: action_id prefix of the bridge's own buttons (send.py); other apps' or old buttons are ignored.
BUTTON_PREFIX = "omi:"
#: Message subtypes that carry something a user wrote to the bot; edits, joins, deletions… are ignored.
SAVED_SUBTYPES = (None, "file_share", "thread_broadcast")


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
        return Arrival(Platform.SLACK.value, self.kind.value, json.dumps(self.payload), self.dedupe_keys)


def job_for(body: dict[str, Any], bot_user_id: str | None) -> Job | None:
    """The job a request carries, or None when the bridge ignores it (it is still answered 2xx)."""
    # The legacy verification token rides along in every payload; it has no business in the database.
    body = {key: value for key, value in body.items() if key != "token"}
    if body.get("command"):
        return Job(JobKind.COMMAND, body, _keys("slack:cmd:", body.get("trigger_id")))
    kind = body.get("type")
    if kind == "message_action":
        return _shortcut(body)
    if kind == "block_actions":
        actions = body.get("actions") or [{}]
        if str(actions[0].get("action_id", "")).startswith(BUTTON_PREFIX) and actions[0].get("value"):
            return Job(JobKind.ACTION, body, _keys("slack:action:", body.get("trigger_id")))
        return None
    if kind == "event_callback":
        return _event(body, bot_user_id)
    return None


def _shortcut(body: dict[str, Any]) -> Job | None:
    callback = body.get("callback_id")
    key = _keys("slack:action:", body.get("trigger_id"))
    if callback == SAVE_MESSAGE:
        return Job(JobKind.SHORTCUT, body, key)
    if callback == SAVE_THREAD:
        # Only the reference: the thread is read after the ack (it may be long; Slack waits 3 s at most).
        message = body.get("message") or {}
        reference = {
            "type": "message_action",
            "callback_id": SAVE_THREAD,
            "trigger_id": body.get("trigger_id"),
            "user": body.get("user") or {},
            "channel": body.get("channel") or {},
            "response_url": body.get("response_url"),
            "thread_ts": message.get("thread_ts") or message.get("ts"),
        }
        return Job(JobKind.SHORTCUT, reference, key)
    return None


def _event(body: dict[str, Any], bot_user_id: str | None) -> Job | None:
    event = body.get("event") or {}
    event_key = _keys("slack:event:", body.get("event_id"))
    if event.get("type") == "app_home_opened":
        if event.get("tab", "home") != "home" or not event.get("user"):
            return None
        return Job(JobKind.HOME, {"user": event["user"], "event_id": body.get("event_id")}, event_key)
    if event.get("type") != "message" or event.get("channel_type") != "im":
        return None
    if event.get("subtype") == "message_changed":
        return _edit(body, bot_user_id)
    if event.get("subtype") not in SAVED_SUBTYPES or event.get("bot_id") or not event.get("user"):
        return None
    if bot_user_id is not None and event["user"] == bot_user_id:
        return None
    # The message key too: the same DM must not count twice even if Slack sent it under two event ids.
    message_key = _keys(f"slack:msg:{event.get('channel', '')}:", event.get("ts"))
    return Job(JobKind.EVENT, body, event_key + message_key)


def _edit(body: dict[str, Any], bot_user_id: str | None) -> Job | None:
    """A DM edited by its author: replaces the text while its burst is open (later edits are ignored)."""
    event = body["event"]
    edited = event.get("message") or {}
    user = edited.get("user")
    if not user or edited.get("bot_id") or user == bot_user_id or not edited.get("ts"):
        return None
    stamp = (edited.get("edited") or {}).get("ts") or event.get("ts")
    edit_key = f"slack:edit:{event.get('channel', '')}:{edited['ts']}:{stamp}"
    return Job(JobKind.EVENT, body, (*_keys("slack:event:", body.get("event_id")), edit_key))


def _keys(prefix: str, identifier: object) -> tuple[str, ...]:
    """A dedupe key, only for a real id: an empty one would make every later request a "duplicate"."""
    return (f"{prefix}{identifier}",) if identifier else ()


def session_hint(row: InboxRow) -> str | None:
    """Which Slack user a stored job belongs to, read cheaply: see `bot.processing`."""
    body = json.loads(row.payload)
    user = body.get("user_id") or body.get("user")
    if isinstance(user, dict):
        user = user.get("id")
    if not user and isinstance(body.get("event"), dict):
        event = body["event"]
        user = event.get("user") or (event.get("message") or {}).get("user")
    return str(user) if user else None
