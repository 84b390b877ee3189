"""A Bot API update → the neutral `InboundMessage` (or None when the bridge has nothing to do with it)."""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any

from telegram import (
    CallbackQuery,
    Chat,
    Document,
    Message,
    MessageOrigin,
    MessageOriginChannel,
    MessageOriginChat,
    MessageOriginHiddenUser,
    MessageOriginUser,
    Update,
    User,
)
from telegram.constants import ChatType
from telegram.constants import MessageEntityType as EntityType

from adapters.telegram import kinds
from adapters.telegram.lenient import legacy_origin
from adapters.telegram.markdown import entities_to_markdown
from bot.events import (
    Attachment,
    Audio,
    AudioKind,
    ChatKind,
    Command,
    Contact,
    ForwardOrigin,
    InboundMessage,
    Location,
    Platform,
    Unsupported,
)

TEXT_DOCUMENT_SUFFIXES = (".txt", ".md")
MAX_TEXT_DOCUMENT_BYTES = 1024 * 1024
#: File name extensions OpenAI's transcription API accepts (it tells the format by the name).
TRANSCRIBABLE_EXTENSIONS = frozenset({"flac", "m4a", "mp3", "mp4", "mpeg", "mpga", "oga", "ogg", "wav", "webm"})
#: An audio file's name by its MIME type, when its own name will not do; anything else is named `audio.mp3`.
AUDIO_NAMES = {
    "audio/mpeg": "audio.mp3", "audio/mp3": "audio.mp3", "audio/mp4": "audio.m4a", "audio/x-m4a": "audio.m4a",
    "audio/m4a": "audio.m4a", "audio/ogg": "audio.ogg", "audio/opus": "audio.ogg", "audio/wav": "audio.wav",
    "audio/x-wav": "audio.wav", "audio/wave": "audio.wav", "audio/flac": "audio.flac", "audio/x-flac": "audio.flac",
    "audio/webm": "audio.webm",
}  # fmt: skip
#: The message fields that hold something to transcribe, in the order they are looked for (like kinds.MEDIA).
AUDIO_KINDS: tuple[AudioKind, ...] = ("voice", "video_note", "audio")
#: What each kind is when Telegram names no MIME type (a video note never does: it is always an MP4).
DEFAULT_MIME: dict[AudioKind, str] = {"voice": "audio/ogg", "audio": "audio/mpeg", "video_note": "video/mp4"}


def update_to_inbound(
    update: Update,
    *,
    bot_username: str | None,
    received_at: datetime,
    document_text: str | None = None,
    raw: dict[str, Any] | None = None,
) -> InboundMessage | None:
    """`document_text`: the downloaded content of the message's text document (see `text_document`);
    `raw`: the update as Telegram sent it (serialising the objects back costs time), read for content kinds
    (kinds.py). The message does not keep it: a burst holds its messages until it closes."""
    if raw is None:
        raw = update.to_dict()
    if update.callback_query is not None:
        return _callback(update.callback_query, received_at)
    message = update.message or update.edited_message
    if message is None:
        return None  # channel posts and other kinds are not asked for
    chat_kind = _chat_kind(message.chat)
    if message.from_user is not None and message.from_user.is_bot is True:
        return None  # other bots are not our users
    if message.from_user is None and chat_kind != "private":
        return None  # a channel or an anonymous admin in a group: nobody who could link an account
    raw_message = kinds.as_dict(raw.get("message") if update.message is not None else raw.get("edited_message"))
    if chat_kind is None or _is_service(message, raw_message):
        return None
    edited = update.edited_message is not None
    command: Command | None = None
    # A forward of "/remember …" is someone else's words to save, not an order (it carries a bot_command entity).
    if _forward_origin(message, raw_message) is None and not edited:
        found = command_of(message)
        if found is not None:
            command, addressee = found
            if chat_kind == "group" and addressee is not None and addressee.lower() != (bot_username or "").lower():
                return None  # `/cmd@otherbot` (in a private chat every command is for this bot)
    if chat_kind == "group" and command is None:
        return None  # no passive capture in groups: only commands addressed to the bot
    inbound = _message(message, chat_kind, raw_message, command=command, edited=edited, document_text=document_text)
    if edited and not inbound.text.strip() and inbound.location is None:
        return None  # an edit into a kind without words (or one newer than this bridge): the original's words stay
    return inbound


def command_of(message: Message) -> tuple[Command, str | None] | None:
    """`/cmd args` or `/cmd@bot args` (bot_command entity at offset 0) → (Command, addressee or None)."""
    entities = message.entities
    if not message.text or not entities or entities[0].type != EntityType.BOT_COMMAND or entities[0].offset != 0:
        return None
    units = message.text.encode("utf-16-le")
    token = units[: 2 * entities[0].length].decode("utf-16-le", errors="replace")
    name, _, addressee = token[1:].partition("@")
    if not name:
        return None
    rendered = entities_to_markdown(message.text, entities)
    args = rendered[len(token) :].strip() if rendered.startswith(token) else message.text[len(token) :].strip()
    return Command(name.lower(), args), addressee or None


def text_document(message: Message | None) -> Document | None:
    """The message's document when it is text the bridge saves (`.txt`/`.md`, at most 1 MB)."""
    if message is None or message.document is None or message.animation is not None:
        return None
    document = message.document
    if not (document.file_name or "").lower().endswith(TEXT_DOCUMENT_SUFFIXES):
        return None
    if document.file_size is not None and document.file_size > MAX_TEXT_DOCUMENT_BYTES:
        return None
    return document


def attachment_of(message: Message) -> Attachment | None:
    """A document the bridge does not read when parsing (not a text document): named for the core, which decides
    (a `result.json` is an import, SPEC §10), and fetched later by its file_id."""
    document = message.document
    if document is None or message.animation is not None or text_document(message) is not None:
        return None
    return Attachment(name=document.file_name or "", size=document.file_size, ref=document.file_id)


def audio_of(raw_message: dict[str, Any]) -> Audio | None:
    """A voice message, audio file or video note to transcribe (SPEC §11), read from the message's JSON (like
    kinds.py: the library's objects warn on `duration`, and an update it refused has none)."""
    for kind in AUDIO_KINDS:
        media = kinds.as_dict(raw_message.get(kind))
        ref = media.get("file_id")
        if not isinstance(ref, str) or not ref:
            continue
        given = media.get("mime_type")
        mime = DEFAULT_MIME[kind] if kind == "video_note" or not isinstance(given, str) or not given else given
        return Audio(
            kind=kind,
            ref=ref,
            duration=_seconds(media.get("duration")),
            size=_size(media.get("file_size")),
            mime=mime,
            filename=audio_filename(kind, kinds.as_text(media.get("file_name")), mime),
        )
    return None


def audio_filename(kind: AudioKind, file_name: str, mime: str) -> str:
    """The name to send the transcription API, always ending in an extension it accepts: a voice message is OGG,
    a video note MP4; an audio file keeps its own name when that ends in one, else is named by its MIME type."""
    if kind == "voice":
        return "voice.ogg"
    if kind == "video_note":
        return "video_note.mp4"
    plain = file_name.replace("\\", "/").rpartition("/")[2].strip()
    stem, dot, extension = plain.rpartition(".")
    if dot and stem.strip() and extension.lower() in TRANSCRIBABLE_EXTENSIONS:
        return plain
    return AUDIO_NAMES.get(mime.partition(";")[0].strip().lower(), "audio.mp3")


def _seconds(value: object) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value) and value >= 0:
        return value
    return None


def _size(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def origin_of(origin: MessageOrigin) -> ForwardOrigin:
    """SPEC §6 "Senders": a user → "First Last"; hidden user → the name given; chat/channel → "Title (Signature)"."""
    if isinstance(origin, MessageOriginUser):
        user = origin.sender_user
        return ForwardOrigin("user", person_name(user), date=origin.date, handle=user.username)
    if isinstance(origin, MessageOriginHiddenUser):
        return ForwardOrigin("hidden_user", origin.sender_user_name, date=origin.date)
    if isinstance(origin, MessageOriginChat):
        chat = origin.sender_chat
        return ForwardOrigin("chat", _signed(chat, origin.author_signature), date=origin.date, handle=chat.username)
    if isinstance(origin, MessageOriginChannel):
        chat = origin.chat
        return ForwardOrigin("channel", _signed(chat, origin.author_signature), date=origin.date, handle=chat.username)
    return ForwardOrigin("hidden_user", "Unknown", date=origin.date)


def _forward_origin(message: Message, raw_message: dict[str, Any]) -> ForwardOrigin | None:
    origin = message.forward_origin or legacy_origin(raw_message, message.date)
    return origin_of(origin) if origin is not None else None


def person_name(user: User) -> str:
    """The user's name as SPEC §6 writes senders ("First Last"), else the username; else "Unknown"."""
    return user.full_name or user.username or "Unknown"


def _signed(chat: Chat, signature: str | None) -> str:
    title = chat.title or chat.effective_name or "Unknown"
    return f"{title} ({signature})" if signature else title


def _chat_kind(chat: Chat) -> ChatKind | None:
    if chat.type == ChatType.PRIVATE:
        return "private"
    if chat.type in (ChatType.GROUP, ChatType.SUPERGROUP):
        return "group"
    if chat.type == ChatType.CHANNEL:
        return None  # channels: no passive capture
    # A type this bridge does not know (or an odd one): private chats are the ones with positive ids.
    return "private" if isinstance(chat.id, int) and chat.id > 0 else None


def _is_service(message: Message, raw_message: dict[str, Any]) -> bool:
    """Pins, joins, title changes, …: nothing a user sent to be saved (so nothing to answer either)."""
    return message.text is None and message.caption is None and kinds.is_service(raw_message)


def _message(
    message: Message,
    chat_kind: ChatKind,
    raw_message: dict[str, Any],
    *,
    command: Command | None = None,
    edited: bool = False,
    document_text: str | None = None,
    with_reply: bool = True,
) -> InboundMessage:
    sender_id, sender_name = _sender(message)
    document = text_document(message)
    reply_to = None
    if with_reply and message.reply_to_message is not None:
        raw_reply = kinds.as_dict(raw_message.get("reply_to_message"))
        reply_to = _message(message.reply_to_message, chat_kind, raw_reply, with_reply=False)
    user = message.from_user
    text = "" if command is not None else _text(message, raw_message, document_text)
    location = _location(message)
    return InboundMessage(
        platform=Platform.TELEGRAM,
        chat_id=str(message.chat.id),
        sender_id=sender_id,
        sender_name=sender_name,
        message_id=str(message.message_id),
        sequence=message.message_id,
        sent_at=message.date,
        text=text,
        chat_kind=chat_kind,
        forward_origin=_forward_origin(message, raw_message),
        media_group_id=message.media_group_id,
        reply_to=reply_to,
        location=location,
        contact=_contact(message),
        language=user.language_code if user is not None else None,
        command=command,
        unsupported=None
        if command is not None or text or location
        else _unsupported(message, raw_message, document_text),
        edited=edited,
        document_name=document.file_name if document is not None else None,
        attachment=attachment_of(message) if command is None and with_reply else None,
        audio=audio_of(raw_message) if command is None and with_reply else None,
    )


def _sender(message: Message) -> tuple[str, str]:
    if message.from_user is not None:
        return str(message.from_user.id), person_name(message.from_user)
    if message.sender_chat is not None:  # a channel or an anonymous group admin
        return str(message.sender_chat.id), message.sender_chat.effective_name or "Unknown"
    return str(message.chat.id), message.chat.effective_name or "Unknown"


def _text(message: Message, raw_message: dict[str, Any], document_text: str | None) -> str:
    if message.text is not None:
        return entities_to_markdown(message.text, message.entities)
    caption = entities_to_markdown(message.caption, message.caption_entities)
    if document_text is not None:
        return f"{caption.strip()}\n\n{document_text}" if caption.strip() else document_text
    # A checklist, a poll, a rich message, …: saved as the words it shows (kinds newer than the library included).
    return caption or kinds.visible_text(raw_message)


def _location(message: Message) -> Location | None:
    """A venue keeps its name and address (SPEC §6); a plain location is only a point."""
    if message.venue is not None:
        venue = message.venue
        point = venue.location
        return Location(point.latitude, point.longitude, title=venue.title or None, address=venue.address or None)
    if message.location is not None:
        return Location(message.location.latitude, message.location.longitude)
    return None


def _contact(message: Message) -> Contact | None:
    contact = message.contact
    if contact is None:
        return None
    name = " ".join(part for part in (contact.first_name, contact.last_name) if part)
    phone = contact.phone_number.strip()
    # Telegram sends shared numbers without the plus about half the time; Omi gets them in one form.
    return Contact(name=name, phone=phone if phone.startswith("+") else f"+{phone}")


def _unsupported(message: Message, raw_message: dict[str, Any], document_text: str | None) -> Unsupported | None:
    """What to name in the "can't be saved yet" reply for a message without words (a contact is a memory)."""
    if message.text is not None or message.contact is not None or document_text is not None:
        return None
    return kinds.unsupported_kind(raw_message)


def _callback(query: CallbackQuery, received_at: datetime) -> InboundMessage | None:
    """A tapped button: its data is always "<command> <args>" (the core's `Button.data`)."""
    name, _, args = (query.data or "").strip().partition(" ")
    if not name:
        return None
    user = query.from_user
    shown = query.message  # the bot's message with the button (may be inaccessible when old, still has chat)
    chat_kind = (_chat_kind(shown.chat) if shown is not None else None) or "private"
    return InboundMessage(
        platform=Platform.TELEGRAM,
        chat_id=str(shown.chat.id) if shown is not None else str(user.id),
        sender_id=str(user.id),
        sender_name=person_name(user),
        message_id=str(shown.message_id) if shown is not None else f"cb:{query.id}",
        sequence=shown.message_id if shown is not None else 0,
        sent_at=received_at,
        chat_kind=chat_kind,
        language=user.language_code,
        command=Command(name.lower(), args.strip()),
    )
