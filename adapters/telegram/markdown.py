"""Telegram text with entities → the bridge's Markdown: `**bold**`, `_italic_`, backticks, `[label](url)`."""

from __future__ import annotations

import re
from collections.abc import Sequence

from telegram import MessageEntity
from telegram.constants import MessageEntityType as Type

#: Entities that wrap their text in markers; leading/trailing spaces go outside them ("**a **" is not bold).
_WRAPPERS = {Type.BOLD: "**", Type.ITALIC: "_", Type.STRIKETHROUGH: "~~"}
_QUOTES = (Type.BLOCKQUOTE, Type.EXPANDABLE_BLOCKQUOTE)


def entities_to_markdown(text: str | None, entities: Sequence[MessageEntity] | None) -> str:
    """Render `text` with its entities. Offsets are in UTF-16 code units (an emoji counts two), so the text is
    sliced as UTF-16. Entities nest but never overlap partly (Bot API); a stray one loses its formatting, never text."""
    if not text:
        return ""
    if not entities:
        return text
    units = text.encode("utf-16-le")
    ordered = sorted(entities, key=lambda entity: (entity.offset, -entity.length))
    return _Renderer(units).render(0, len(units) // 2, ordered)


class _Renderer:
    def __init__(self, units: bytes) -> None:
        self._units = units
        self._size = len(units) // 2

    def _piece(self, start: int, end: int) -> str:
        return self._units[2 * start : 2 * end].decode("utf-16-le", errors="replace")

    def render(self, start: int, end: int, entities: Sequence[MessageEntity]) -> str:
        out: list[str] = []
        position = start
        index = 0
        while index < len(entities):
            entity = entities[index]
            begin = max(entity.offset, position)
            finish = min(entity.offset + entity.length, end)
            nested = index + 1
            while nested < len(entities) and entities[nested].offset < finish:
                nested += 1
            inside = [e for e in entities[index + 1 : nested] if e.offset + e.length <= finish]
            index = nested
            if finish <= begin:
                continue
            out.append(self._piece(position, begin))
            if entity.type in (Type.CODE, Type.PRE):
                inner = self._piece(begin, finish)
            else:
                inner = self.render(begin, finish, inside)
            out.append(_wrap(entity, inner))
            position = finish
        out.append(self._piece(position, end))
        return "".join(out)


def _wrap(entity: MessageEntity, inner: str) -> str:
    if entity.type in _WRAPPERS:
        marker = _WRAPPERS[entity.type]
        core = inner.strip()
        if not core:
            return inner
        lead = inner[: len(inner) - len(inner.lstrip())]
        trail = inner[len(inner.rstrip()) :]
        return f"{lead}{marker}{core}{marker}{trail}"
    if entity.type == Type.TEXT_LINK and entity.url:
        label = inner.replace("[", "\\[").replace("]", "\\]") or entity.url
        return f"[{label}]({_link_target(entity.url)})"
    if entity.type == Type.CODE:
        return _inline_code(inner)
    if entity.type == Type.PRE:
        fence = "`" * max(3, _longest_backtick_run(inner) + 1)
        return f"{fence}{entity.language or ''}\n{inner.strip(chr(10))}\n{fence}"
    if entity.type in _QUOTES:
        return "\n".join(f"> {line}" if line else ">" for line in inner.split("\n"))
    # url, mention, hashtag, text_mention, underline, spoiler, ...: the text itself says it all.
    return inner


def _inline_code(inner: str) -> str:
    fence = "`" * (_longest_backtick_run(inner) + 1)
    pad = " " if inner.startswith("`") or inner.endswith("`") else ""
    return f"{fence}{pad}{inner}{pad}{fence}"


def _longest_backtick_run(text: str) -> int:
    return max((len(run) for run in re.findall(r"`+", text)), default=0)


def _link_target(url: str) -> str:
    # A space or parenthesis would end the Markdown link early.
    return url.replace(" ", "%20").replace("(", "%28").replace(")", "%29")
