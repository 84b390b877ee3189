"""What both transports store for an update: the raw JSON plus the keys that make redeliveries duplicates."""

from __future__ import annotations

import json
import logging
from typing import Any

from bot.events import Platform
from bot.store import Arrival, InboxRow

log = logging.getLogger(__name__)

#: The updates the bridge asks Telegram for (getUpdates and setWebhook): no channel posts, no passive extras.
ALLOWED_UPDATES = ("message", "edited_message", "callback_query")

KIND_UPDATE = "update"
KIND_UNUSABLE = "unusable"


def arrival_for(payload: Any, raw: str | None = None) -> Arrival:
    """An update as an `Arrival`. JSON that is no usable update is stored too (and ignored by the parser):
    answering it with an error would only make Telegram resend it forever. `raw`: the JSON text as it came,
    stored as is (serialising the parsed payload again costs time on every request)."""
    if raw is None:
        raw = json.dumps(payload, ensure_ascii=False, separators=(",", ":"))
    if not isinstance(payload, dict) or not isinstance(payload.get("update_id"), int):
        log.warning("telegram: received JSON that is not an update; stored and ignored")
        return Arrival(Platform.TELEGRAM.value, KIND_UNUSABLE, raw)
    return Arrival(Platform.TELEGRAM.value, KIND_UPDATE, raw, dedupe_keys(payload), session=_session(payload))


def dedupe_keys(update: dict[str, Any]) -> tuple[str, ...]:
    """`tg:update:<id>` catches redeliveries; the per-message key catches the same message in another update
    (e.g. after a webhook was re-registered and Telegram numbered pending updates anew)."""
    keys = [f"tg:update:{update['update_id']}"]
    message = update.get("message")
    edited = update.get("edited_message")
    callback = update.get("callback_query")
    if isinstance(message, dict):
        chat_id, message_id = _chat_and_id(message)
        if chat_id is not None:
            keys.append(f"tg:msg:{chat_id}:{message_id}")
    elif isinstance(edited, dict):
        chat_id, message_id = _chat_and_id(edited)
        if chat_id is not None:
            keys.append(f"tg:edit:{chat_id}:{message_id}:{edited.get('edit_date', '')}")
    elif isinstance(callback, dict) and callback.get("id") is not None:
        keys.append(f"tg:cb:{callback['id']}")
    return tuple(keys)


def _chat_and_id(message: dict[str, Any]) -> tuple[object | None, object | None]:
    chat = message.get("chat")
    if not isinstance(chat, dict) or "id" not in chat or "message_id" not in message:
        return None, None
    return chat["id"], message["message_id"]


def session_hint(row: InboxRow) -> str | None:
    """Whose update this is (chat and sender), read without building the update: see `bot.processing`."""
    if row.kind != KIND_UPDATE:
        return None
    return _session(json.loads(row.payload))


def _session(update: dict[str, Any]) -> str | None:
    callback = update.get("callback_query")
    if isinstance(callback, dict):
        chat = ((callback.get("message") or {}).get("chat") or {}).get("id", "")
        return f"{chat}:{(callback.get('from') or {}).get('id', '')}"
    for field in ("message", "edited_message"):
        message = update.get(field)
        if isinstance(message, dict):
            return f"{(message.get('chat') or {}).get('id', '')}:{(message.get('from') or {}).get('id', '')}"
    return None
