"""An update python-telegram-bot refused, rebuilt from its raw JSON field by field: a missing or odd field costs only
itself, so the text, caption, author and forward origin still reach the converter.

Real servers send what the library's newest version does not accept (a hidden-user forward without
`sender_user_name`, a poll without keys newer Bot API versions require, …). Only the fields convert.py reads are
rebuilt, each with the type the library would give it; content kinds are read from the JSON itself (kinds.py)."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

from telegram import (
    CallbackQuery,
    Chat,
    Contact,
    Document,
    Location,
    Message,
    MessageEntity,
    MessageOrigin,
    MessageOriginChannel,
    MessageOriginChat,
    MessageOriginHiddenUser,
    MessageOriginUser,
    Update,
    User,
    Venue,
)
from telegram.constants import ChatType

from adapters.telegram.kinds import as_dict, as_text

#: The name shown for a forward whose origin names no one (SPEC §6: a hidden user is shown by the name given).
UNNAMED_ORIGIN = "Hidden user"
_CHAT_TYPES = frozenset(kind.value for kind in ChatType)


def as_id(value: object) -> int | None:
    """A Telegram id: an integer (JSON `true` is no id)."""
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def as_time(value: object) -> datetime | None:
    """A Unix time as aware UTC; None for anything else (or for a time no calendar holds)."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        try:
            return datetime.fromtimestamp(value, UTC)
        except (OverflowError, OSError, ValueError):
            return None
    return None


def message_address(message: dict[str, Any]) -> tuple[int, int] | None:
    """(chat id, sender id) as the converter reads them: the chat, else the sender's private chat (its id is
    the user's); the sender is `from`, else `sender_chat`, else the chat. None: nobody to answer."""
    sender = as_id(as_dict(message.get("from")).get("id"))
    if sender is None:
        sender = as_id(as_dict(message.get("sender_chat")).get("id"))
    chat = as_id(as_dict(message.get("chat")).get("id"))
    if chat is None:
        chat = as_id(as_dict(message.get("from")).get("id"))
    if chat is None:
        return None
    return chat, sender if sender is not None else chat


def _optional_text(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _user(raw: object) -> User | None:
    user = as_dict(raw)
    user_id = as_id(user.get("id"))
    if user_id is None:
        return None
    return User(
        id=user_id,
        first_name=as_text(user.get("first_name")),
        is_bot=user.get("is_bot") is True,
        last_name=_optional_text(user.get("last_name")),
        username=_optional_text(user.get("username")),
        language_code=_optional_text(user.get("language_code")),
    )


def _chat(raw: object, *, fallback_id: int | None = None) -> Chat | None:
    chat = as_dict(raw)
    chat_id = as_id(chat.get("id"))
    if chat_id is None:
        if fallback_id is None:
            return None
        # No readable chat: a message with a sender is answered in that sender's private chat.
        return Chat(id=fallback_id, type=ChatType.PRIVATE)
    kind = chat.get("type")
    if not isinstance(kind, str) or kind not in _CHAT_TYPES:  # a dict or list here is unhashable, too
        kind = ChatType.PRIVATE if chat_id > 0 else ChatType.SUPERGROUP  # private chats have positive ids
    return Chat(
        id=chat_id,
        type=kind,
        title=_optional_text(chat.get("title")),
        username=_optional_text(chat.get("username")),
        first_name=_optional_text(chat.get("first_name")),
        last_name=_optional_text(chat.get("last_name")),
    )


def _entities(raw: object) -> tuple[MessageEntity, ...]:
    """The well-formed ones only: an odd entity loses its formatting, never the text."""
    if not isinstance(raw, list):
        return ()
    entities = []
    for item in raw:
        entity = as_dict(item)
        offset, length, kind = entity.get("offset"), entity.get("length"), entity.get("type")
        if as_id(offset) is None or as_id(length) is None or not isinstance(kind, str):
            continue
        entities.append(
            MessageEntity(
                type=kind,
                offset=offset,  # type: ignore[arg-type]
                length=length,  # type: ignore[arg-type]
                url=_optional_text(entity.get("url")),
                language=_optional_text(entity.get("language")),
            )
        )
    return tuple(entities)


def _origin(raw: object, fallback_date: datetime) -> MessageOrigin | None:
    if not isinstance(raw, dict):
        return None
    date = as_time(raw.get("date")) or fallback_date
    kind = raw.get("type")
    signature = _optional_text(raw.get("author_signature"))
    user = _user(raw.get("sender_user"))
    if kind == "user" and user is not None:
        return MessageOriginUser(date=date, sender_user=user)
    chat = _chat(raw.get("sender_chat"))
    if kind == "chat" and chat is not None:
        return MessageOriginChat(date=date, sender_chat=chat, author_signature=signature)
    channel = _chat(raw.get("chat"))
    if kind == "channel" and channel is not None:
        message_id = as_id(raw.get("message_id")) or 0
        return MessageOriginChannel(date=date, chat=channel, message_id=message_id, author_signature=signature)
    # A hidden user (with or without the name the library insists on), or an origin of a newer or odd shape:
    # whatever name it carries.
    name = (
        as_text(raw.get("sender_user_name")).strip()
        or ((user.full_name or "") if user is not None else "")
        or next((c.effective_name or "" for c in (chat, channel) if c is not None), "")
        or UNNAMED_ORIGIN
    )
    return MessageOriginHiddenUser(date=date, sender_user_name=name)


def legacy_origin(message: dict[str, Any], fallback_date: datetime) -> MessageOrigin | None:
    """A forward as Bot API servers before 7.0 describe it (`forward_from`, `forward_from_chat`,
    `forward_sender_name`, `forward_date`), which python-telegram-bot 22 ignores: the same origin as
    `forward_origin` would give."""
    if not any(key in message for key in ("forward_from", "forward_from_chat", "forward_sender_name")):
        return None
    origin: dict[str, Any] = {"date": message.get("forward_date"), "author_signature": message.get("forward_signature")}
    chat = as_dict(message.get("forward_from_chat"))
    if "forward_from" in message:
        origin |= {"type": "user", "sender_user": message["forward_from"]}
    elif chat.get("type") == "channel":
        origin |= {"type": "channel", "chat": chat, "message_id": message.get("forward_from_message_id")}
    elif chat:
        origin |= {"type": "chat", "sender_chat": chat}
    else:
        origin |= {"type": "hidden_user", "sender_user_name": message.get("forward_sender_name")}
    return _origin(origin, fallback_date)


def is_coordinate(value: object, limit: float) -> bool:
    """A latitude (limit 90) or longitude (limit 180) in degrees."""
    return (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and math.isfinite(value)
        and -limit <= value <= limit
    )


def _location(raw: object) -> Location | None:
    location = as_dict(raw)
    latitude, longitude = location.get("latitude"), location.get("longitude")
    if not (is_coordinate(latitude, 90) and is_coordinate(longitude, 180)):
        return None
    return Location(longitude=float(longitude), latitude=float(latitude))  # type: ignore[arg-type]


def _venue(raw: object) -> Venue | None:
    venue = as_dict(raw)
    location = _location(venue.get("location"))
    if location is None:
        return None
    return Venue(location=location, title=as_text(venue.get("title")), address=as_text(venue.get("address")))


def _contact(raw: object) -> Contact | None:
    contact = as_dict(raw)
    phone = contact.get("phone_number")
    if not isinstance(phone, str | int) or isinstance(phone, bool):
        return None
    return Contact(
        phone_number=str(phone),
        first_name=as_text(contact.get("first_name")),
        last_name=_optional_text(contact.get("last_name")),
    )


def _document(raw: object) -> Document | None:
    document = as_dict(raw)
    file_id = document.get("file_id")
    if not isinstance(file_id, str) or not file_id:
        return None
    size = as_id(document.get("file_size"))
    return Document(
        file_id=file_id,
        file_unique_id=as_text(document.get("file_unique_id")),
        file_name=_optional_text(document.get("file_name")),
        mime_type=_optional_text(document.get("mime_type")),
        file_size=size,
    )


def lenient_message(raw: object, received_at: datetime, *, with_reply: bool = True) -> Message | None:
    """A message from its JSON, or None when it names no chat and no sender (there is nobody to answer)."""
    message = as_dict(raw)
    user = _user(message.get("from"))
    chat = _chat(message.get("chat"), fallback_id=user.id if user is not None else None)
    if chat is None:
        return None
    date = as_time(message.get("date")) or received_at
    text = _optional_text(message.get("text"))
    caption = _optional_text(message.get("caption"))
    reply = lenient_message(message.get("reply_to_message"), date, with_reply=False) if with_reply else None
    return Message(
        # A message without its id still gets read; it cannot be reacted to (the reply then comes in words).
        message_id=as_id(message.get("message_id")) or 0,
        date=date,
        chat=chat,
        from_user=user,
        sender_chat=_chat(message.get("sender_chat")),
        text=text,
        entities=_entities(message.get("entities")) if text is not None else None,
        caption=caption,
        caption_entities=_entities(message.get("caption_entities")) if caption is not None else None,
        forward_origin=_origin(message.get("forward_origin"), date),
        media_group_id=_optional_text(message.get("media_group_id")),
        reply_to_message=reply,
        location=_location(message.get("location")),
        venue=_venue(message.get("venue")),
        contact=_contact(message.get("contact")),
        document=_document(message.get("document")),
        edit_date=as_time(message.get("edit_date")),
    )


def _callback(raw: object, received_at: datetime) -> CallbackQuery | None:
    query = as_dict(raw)
    user = _user(query.get("from"))
    query_id = query.get("id")
    if user is None or not isinstance(query_id, str | int) or isinstance(query_id, bool):
        return None
    shown = as_dict(query.get("message"))
    # The bot's own message with the button: without its chat it says nothing about where to answer.
    readable = as_id(as_dict(shown.get("chat")).get("id")) is not None
    message = lenient_message(shown, received_at, with_reply=False) if readable else None
    return CallbackQuery(
        id=str(query_id),
        from_user=user,
        chat_instance=as_text(query.get("chat_instance")),
        message=message,
        data=_optional_text(query.get("data")),
    )


def lenient_update(data: dict[str, Any], received_at: datetime) -> Update:
    """The update with every part that could be read; parts that could not are left out."""
    return Update(
        update_id=as_id(data.get("update_id")) or 0,
        message=lenient_message(data.get("message"), received_at) if "message" in data else None,
        edited_message=lenient_message(data.get("edited_message"), received_at) if "edited_message" in data else None,
        callback_query=_callback(data.get("callback_query"), received_at) if "callback_query" in data else None,
    )
