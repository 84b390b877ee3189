"""What an outbox item carries: a typed Omi write, stored as its JSON and read back by its kind."""

from __future__ import annotations

from enum import StrEnum

from pydantic import ValidationError

from bot.omi.models import NewConversation, NewMemories


class ItemKind(StrEnum):
    CONVERSATION = "conversation"
    MEMORIES = "memories"  # explicit memories: combined per uid into one POST
    EXTRACT = "extract"  # text for Omi to extract memories from (source_id = the item's id)


#: An Omi write as stored: a conversation, or a memories POST (explicit memories, or text to extract from).
OmiWrite = NewConversation | NewMemories

_MODELS: dict[ItemKind, type[NewConversation] | type[NewMemories]] = {
    ItemKind.CONVERSATION: NewConversation,
    ItemKind.MEMORIES: NewMemories,
    ItemKind.EXTRACT: NewMemories,
}


class PayloadInvalid(ValueError):
    """A stored payload that is not (or no longer) a valid Omi write of its kind."""


def encode_write(kind: ItemKind, write: OmiWrite) -> str:
    model = _MODELS[kind]
    if not isinstance(write, model):
        raise TypeError(f"a {kind.value} item carries a {model.__name__}, not {type(write).__name__}")
    if isinstance(write, NewMemories):
        if kind is ItemKind.MEMORIES and (write.text is not None or not write.memories):
            raise ValueError("an explicit-memories item carries memories and no text")
        if kind is ItemKind.EXTRACT and (not write.text or write.memories):
            raise ValueError("an extract item carries text and no memories")
    return write.model_dump_json(exclude_none=True)


def decode_write(kind: ItemKind, raw: str) -> OmiWrite:
    """The stored JSON back as the write of its kind; `PayloadInvalid` (saying where, never the content) if not."""
    try:
        write = _MODELS[kind].model_validate_json(raw)
    except ValidationError as exc:
        where = "; ".join(
            f"{'.'.join(str(part) for part in error['loc']) or 'payload'}: {error['type']}"
            for error in exc.errors(include_url=False, include_input=False, include_context=False)
        )
        raise PayloadInvalid(where) from None
    if isinstance(write, NewMemories):
        if kind is ItemKind.MEMORIES and not write.memories:
            raise PayloadInvalid("memories: missing")
        if kind is ItemKind.EXTRACT and not write.text:
            raise PayloadInvalid("text: missing")
    return write
