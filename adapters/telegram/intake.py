"""What both transports store for an update: the raw JSON plus the keys that make redeliveries duplicates."""

from __future__ import annotations

import json
import logging
from typing import Any

from adapters.telegram.kinds import as_dict
from adapters.telegram.lenient import as_id, message_address
from bot.events import Platform, session_key
from bot.store import Arrival, InboxRow

log = logging.getLogger(__name__)

#: The updates the bridge asks Telegram for (getUpdates and setWebhook): no channel posts, no passive extras.
ALLOWED_UPDATES = ("message", "edited_message", "callback_query")

KIND_UPDATE = "update"
KIND_UNUSABLE = "unusable"


def arrival_for(payload: Any, raw: str | None = None) -> Arrival:
    """An update as an `Arrival`; never raises, whatever the payload's shape. JSON that is no usable update is
    stored too (and ignored by the parser): answering it with an error would only make Telegram resend it
    forever. `raw`: the JSON text as it came, stored as is (serialising the parsed payload again costs time on
    every request)."""
    if raw is None:
        raw = json.dumps(payload, ensure_ascii=False, separators=(",", ":"))
        if not raw.isascii():
            try:
                raw.encode()
            except UnicodeEncodeError:  # a lone surrogate ("\ud800" in the JSON): stored escaped instead
                raw = json.dumps(payload, separators=(",", ":"))
    if not isinstance(payload, dict) or not (
        as_id(payload.get("update_id")) is not None or any(isinstance(payload.get(f), dict) for f in ALLOWED_UPDATES)
    ):
        log.warning("telegram: received JSON that is not an update; stored and ignored")
        return Arrival(Platform.TELEGRAM.value, KIND_UNUSABLE, raw)
    return Arrival(Platform.TELEGRAM.value, KIND_UPDATE, raw, dedupe_keys(payload), session=_session(payload))


def dedupe_keys(update: dict[str, Any]) -> tuple[str, ...]:
    """`tg:update:<id>` catches redeliveries; the per-message key catches the same message in another update
    (e.g. after a webhook was re-registered and Telegram numbered pending updates anew). Only real ids make
    keys: a missing or odd one would make every later update with the same oddity a "duplicate"."""
    keys = []
    update_id = _positive(update.get("update_id"))
    if update_id is not None:
        keys.append(f"tg:update:{update_id}")
    message = update.get("message")
    edited = update.get("edited_message")
    callback = update.get("callback_query")
    if isinstance(message, dict):
        chat_id, message_id = _chat_and_id(message)
        if chat_id is not None:
            keys.append(f"tg:msg:{chat_id}:{message_id}")
    elif isinstance(edited, dict):
        chat_id, message_id = _chat_and_id(edited)
        edit_date = _positive(edited.get("edit_date"))
        if chat_id is not None:
            keys.append(f"tg:edit:{chat_id}:{message_id}:{'' if edit_date is None else edit_date}")
    elif isinstance(callback, dict) and _token(callback.get("id")) is not None:
        keys.append(f"tg:cb:{_token(callback.get('id'))}")
    return tuple(keys)


def _chat_and_id(message: dict[str, Any]) -> tuple[int | None, int | None]:
    chat_id = as_id(as_dict(message.get("chat")).get("id"))
    message_id = _positive(message.get("message_id"))
    if not chat_id or message_id is None:
        return None, None
    return chat_id, message_id


def _positive(value: object) -> int | None:
    """Update and message ids count from 1; anything else cannot tell one update from another."""
    number = as_id(value)
    return number if number is not None and number > 0 else None


def _token(value: object) -> str | None:
    """A callback query id: a short string (or a number), as it can safely become part of a key."""
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if isinstance(value, str) and 0 < len(value) <= 128 and value.isprintable() and value.isascii():
        return value
    return None


def session_hint(row: InboxRow) -> str | None:
    """Whose update this is (chat and sender), read without building the update: see `bot.processing`."""
    if row.kind != KIND_UPDATE:
        return None
    payload = json.loads(row.payload)
    return _session(payload) if isinstance(payload, dict) else None


def _session(update: dict[str, Any]) -> str | None:
    """The session key the parsed message will have (`InboundMessage.session_key`), from the same reading of
    chat and sender as the converter's (lenient.py); None when the update names neither."""
    callback = update.get("callback_query")
    if isinstance(callback, dict):
        user = as_id(as_dict(callback.get("from")).get("id"))
        if user is None:
            return None
        chat = as_id(as_dict(as_dict(callback.get("message")).get("chat")).get("id"))
        return session_key(Platform.TELEGRAM, user if chat is None else chat, user)
    for field in ("message", "edited_message"):
        message = update.get(field)
        if isinstance(message, dict):
            address = message_address(message)
            return session_key(Platform.TELEGRAM, *address) if address is not None else None
    return None
