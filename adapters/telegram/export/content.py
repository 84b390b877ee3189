"""What one exported message says: its `text` pieces as the bridge's Markdown (SPEC §6, rendered by the live
bridge's own `entities_to_markdown`) and its medium as a placeholder (`[photo]`, `[voice message 0:12]`, …, SPEC §10).

Telegram Desktop writes `text` as a string, or as a list of strings and `{type, text, …}` pieces; the pieces never
nest or overlap (export_data_types.cpp `ParseText` drops an entity inside another), so each piece becomes one Bot
API entity over its own stretch of the text and the live renderer does the rest: links survive as `[label](url)`,
bold/italic/strikethrough/code/pre/blockquote get their markers, and every other type (link, mention, mention_name,
hashtag, cashtag, bot_command, email, phone, bank_card, underline, spoiler, custom_emoji, plain, and any type
added later) is its text as it stands, as the live bridge renders them."""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any

from telegram import MessageEntity
from telegram.constants import MessageEntityType as Type

from adapters.telegram.kinds import rich_text
from adapters.telegram.markdown import entities_to_markdown

#: Piece types with a rendering of their own (markdown.py); all others are plain text.
_ENTITY_TYPES = {
    "bold": Type.BOLD,
    "italic": Type.ITALIC,
    "strikethrough": Type.STRIKETHROUGH,
    "code": Type.CODE,
    "pre": Type.PRE,
    "text_link": Type.TEXT_LINK,
    "blockquote": Type.BLOCKQUOTE,
}
#: What an export without files writes where the file's path would be (export_output_json.cpp `pushPath`).
_SKIPPED_FILE = re.compile(r"\s*\((?:File|Photo)\b[^()]*\)\s*$")
#: A caption that starts with a block (a fence, a quote) goes on its own line after the placeholder.
_BLOCK_START = ("```", ">")


def clean(value: str) -> str:
    """The string as UTF-8 can carry it: a lone surrogate (a broken `\\ud83d` escape) becomes U+FFFD."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return value.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")
    return value


def _units(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def _piece_text(value: object) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, int | Decimal | float) and not isinstance(value, bool):
        return str(value)
    return rich_text(value)  # a list or an object where a string belongs: whatever words it holds


def text_to_markdown(value: object) -> str:
    """`text` (a string, or a list of strings and pieces) as Markdown. Anything odd in it (a piece without
    `text`, a number, null, an unknown type) costs at most its own formatting, never the rest."""
    if isinstance(value, str):
        return clean(value)
    if not isinstance(value, list):
        return clean(_piece_text(value)) if isinstance(value, dict) else ""
    parts: list[str] = []
    entities: list[MessageEntity] = []
    offset = 0
    for piece in value:
        kind: object = None
        if isinstance(piece, dict):
            text = clean(_piece_text(piece.get("text")))
            kind = piece.get("type")
        else:
            text = clean(_piece_text(piece)) if piece is not None else ""
        if not text:
            continue
        length = _units(text)
        entity = _entity(kind, piece, offset, length) if isinstance(piece, dict) else None
        if entity is not None:
            entities.append(entity)
        parts.append(text)
        offset += length
    return entities_to_markdown("".join(parts), entities)


def _entity(kind: object, piece: dict[str, Any], offset: int, length: int) -> MessageEntity | None:
    entity_type = _ENTITY_TYPES.get(kind) if isinstance(kind, str) else None
    if entity_type is None:
        return None
    if entity_type == Type.TEXT_LINK:
        href = piece.get("href")
        if not isinstance(href, str) or not href.strip():
            return None  # a link without a target is its label
        return MessageEntity(entity_type, offset, length, url=clean(href.strip()))
    if entity_type == Type.PRE:
        language = piece.get("language")
        language = clean(language.strip()) if isinstance(language, str) and language.strip() else None
        return MessageEntity(entity_type, offset, length, language=language)
    return MessageEntity(entity_type, offset, length)


def _text(value: object) -> str:
    return clean(value.strip()) if isinstance(value, str) else ""


def _duration(value: object) -> str:
    """`0:12`, `12:05`, `1:02:03`; "" when the export gives none."""
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal) or not 0 < value < 10**7:
        return ""
    seconds = int(value)
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    return f"{hours}:{minutes:02}:{seconds:02}" if hours else f"{minutes}:{seconds:02}"


def _file_name(message: dict[str, Any]) -> str:
    """The document's own name (`file_name`, newer exports), else the name of the exported file — unless the
    export left the file out and wrote "(File not included. …)" instead of a path."""
    name = _text(message.get("file_name"))
    if name:
        return name
    path = _SKIPPED_FILE.sub("", _text(message.get("file")))
    return path.replace("\\", "/").rsplit("/", 1)[-1].strip()


def _labelled(label: str, detail: str) -> str:
    return f"[{label} {detail}]" if detail else f"[{label}]"


def _document(message: dict[str, Any], media_type: str) -> str:
    if media_type == "sticker":
        return _labelled("sticker", _text(message.get("sticker_emoji")))
    if media_type == "voice_message":
        return _labelled("voice message", _duration(message.get("duration_seconds")))
    if media_type == "video_message":
        return _labelled("video message", _duration(message.get("duration_seconds")))
    if media_type == "video_file":
        return "[video]"
    if media_type == "animation":
        return "[animation]"
    if media_type == "audio_file":
        song = " – ".join(part for part in (_text(message.get("performer")), _text(message.get("title"))) if part)
        return _labelled("audio", song or _file_name(message))
    if media_type:  # a kind this reader does not know yet: named as the export names it
        return _labelled(media_type.replace("_", " "), _file_name(message))
    return _labelled("file", _file_name(message))


def _contact(contact: dict[str, Any]) -> str:
    name = " ".join(part for part in (_text(contact.get("first_name")), _text(contact.get("last_name"))) if part)
    phone = _text(contact.get("phone_number"))
    return _labelled("contact", ", ".join(part for part in (name, phone) if part))


def _poll(poll: dict[str, Any]) -> str:
    lines = [_labelled("poll", text_to_markdown(poll.get("question")).strip())]
    answers = poll.get("answers")
    for answer in answers if isinstance(answers, list) else []:
        text = text_to_markdown(answer.get("text")).strip() if isinstance(answer, dict) else ""
        if text:
            lines.append(f"- {text}")
    return "\n".join(lines)


def placeholder(message: dict[str, Any]) -> str:
    """The message's medium as SPEC §10 shows it, or "" when it has none."""
    if "photo" in message:
        return "[photo]"
    media_type = _text(message.get("media_type"))
    if media_type or "file" in message or "file_name" in message:
        return _document(message, media_type)
    if isinstance(message.get("contact_information"), dict):
        return _contact(message["contact_information"])
    if "location_information" in message or "place_name" in message:
        place = ", ".join(part for part in (_text(message.get("place_name")), _text(message.get("address"))) if part)
        if not place and "live_location_period_seconds" in message:
            return "[live location]"
        return _labelled("location", place)
    if isinstance(message.get("poll"), dict):
        return _poll(message["poll"])
    if "game_title" in message:
        return _labelled("game", _text(message.get("game_title")))
    if isinstance(message.get("invoice_information"), dict):
        return _labelled("invoice", _text(message["invoice_information"].get("title")))
    if "giveaway_information" in message:
        return "[giveaway]"
    if "giveaway_results" in message:
        return "[giveaway results]"
    if "paid_stars_amount" in message:
        return "[paid media]"
    return ""


def message_text(message: dict[str, Any]) -> str:
    """Placeholder, then the caption (the message's `text`); `text_entities` (the same pieces, all as objects,
    in newer exports) is read only when `text` is missing."""
    value = message.get("text") if "text" in message else message.get("text_entities")
    caption = text_to_markdown(value).strip()
    medium = placeholder(message)
    if not medium or not caption:
        return medium or caption
    return f"{medium}{chr(10) if caption.startswith(_BLOCK_START) else ' '}{caption}"
