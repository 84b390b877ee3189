"""Turn one closed burst of chat messages into Omi conversation payloads (SPEC §6 "Bursts")."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo

from bot import texts
from bot.events import InboundMessage, Location
from bot.omi.models import Geolocation, NewConversation

MAX_PART_CHARS = 50_000

_BLOCK_SEPARATOR = "\n\n"
_MAX_SUMMARY_NAMES = 3
# English on purpose: "%b" follows the process locale, and the bot's wording is English everywhere else.
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


@dataclass(frozen=True, slots=True)
class _Burst:
    """What compose and summary share: messages in order, those with content, forwards, and the time span."""

    ordered: list[InboundMessage]
    content: list[InboundMessage]
    forwards: list[InboundMessage]
    started_at: datetime
    finished_at: datetime


def _has_content(message: InboundMessage) -> bool:
    return bool(message.text.strip()) or message.location is not None or _is_voice(message)


def _is_voice(message: InboundMessage) -> bool:
    """A voice message with its outcome (SPEC §11): what was heard, or why nothing was."""
    return message.transcript is not None or message.untranscribed is not None


def _words(message: InboundMessage) -> str:
    """A message's text; a venue without text is its name and address (SPEC §6); a voice message's transcript (or
    its placeholder), its caption under it (SPEC §11)."""
    text = message.text.strip()
    if _is_voice(message):
        heard = (
            message.transcript.strip()
            if message.transcript is not None
            else texts.voice_placeholder(message.audio, message.untranscribed or "")
        )
        return f"{heard}\n{text}" if text else heard
    if not text and message.location is not None and (message.location.title or message.location.address):
        return _location_text(message.location)
    return text


def _location_text(location: Location) -> str:
    """`Location: Title, Address (lat, lon)`; a plain location is `Location: lat, lon`."""
    place = ", ".join(part.strip() for part in (location.title, location.address) if part and part.strip())
    point = f"{location.latitude}, {location.longitude}"
    return f"Location: {place} ({point})" if place else f"Location: {point}"


def _utc(moment: datetime) -> datetime:
    # Adapters promise aware UTC, but a naive datetime would shift by the host's offset in astimezone().
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def _analyse(messages: Sequence[InboundMessage]) -> _Burst | None:
    ordered = sorted(messages, key=lambda message: message.sequence)
    content = [message for message in ordered if _has_content(message)]
    if not content:
        return None
    # A forward carrying nothing (a caption-less photo) neither makes this a "message" burst nor sets times.
    forwards = [message for message in content if message.forward_origin is not None]
    times = [_utc(message.original_time) for message in (forwards or content)]
    return _Burst(ordered=ordered, content=content, forwards=forwards, started_at=min(times), finished_at=max(times))


def _origin_name(message: InboundMessage) -> str:
    assert message.forward_origin is not None
    return message.forward_origin.name.strip() or "Unknown"


def _voice_block(name: str, message: InboundMessage) -> str:
    """`Author (voice 0:42): text`; one not transcribed is `Author: [voice message 0:42, not transcribed: …]`."""
    if message.transcript is None:
        return f"{name}: {_words(message)}"
    return f"{name} ({texts.voice_label(message.audio)}): {_words(message)}"


def _sender(message: InboundMessage) -> str:
    return message.sender_name.strip() or "Me"


def _blocks(burst: _Burst) -> list[str]:
    if burst.forwards:
        blocks = [
            _voice_block(_origin_name(message), message)
            if _is_voice(message)
            else f"{_origin_name(message)}: {_words(message)}"
            for message in burst.forwards
            if _words(message)
        ]
        blocks += [
            _voice_block(_sender(message), message) if _is_voice(message) else f"Note: {_words(message)}"
            for message in burst.content
            if message.forward_origin is None and _words(message)
        ]
    else:
        blocks = [
            _voice_block(_sender(message), message) if message.transcript is not None else _words(message)
            for message in burst.content
            if _words(message)
        ]
    return blocks


def _text_source(burst: _Burst) -> str:
    """A burst of only voice is `audio_transcript` (Omi then extracts action items, as from its own recordings)."""
    if all(_is_voice(message) for message in burst.content):
        return "audio_transcript"
    return "message" if burst.forwards else "other_text"


def _cut_oversized(block: str, budget: int) -> tuple[str, str]:
    """Split a too-long block at its last line break within budget, else its last whitespace, else hard."""
    window = block[: budget + 1]  # a separator sitting exactly at `budget` still leaves a head of `budget` chars
    cut = window.rfind("\n")
    if cut <= 0:
        cut = next((index for index in range(len(window) - 1, 0, -1) if window[index].isspace()), 0)
    if cut <= 0:
        return block[:budget], block[budget:].strip()
    return block[:cut].strip(), block[cut:].strip()


def _split(blocks: list[str], budget: int) -> list[str]:
    parts: list[str] = []
    current = ""
    for block in blocks:
        candidate = f"{current}{_BLOCK_SEPARATOR}{block}" if current else block
        if len(candidate) <= budget:
            current = candidate
            continue
        if current:
            parts.append(current)
        while len(block) > budget:
            head, block = _cut_oversized(block, budget)
            parts.append(head)
        current = block
    if current:
        parts.append(current)
    return parts


def _numbered(blocks: list[str]) -> list[str]:
    text = _BLOCK_SEPARATOR.join(blocks)
    if len(text) <= MAX_PART_CHARS:
        return [text]
    digits = 1
    while True:
        # Budget for the widest label of this digit count, so every "(i/n) " fits whatever i is.
        widest = 10**digits - 1
        parts = _split(blocks, MAX_PART_CHARS - len(f"({widest}/{widest}) "))
        if len(str(len(parts))) <= digits:
            break
        digits += 1
    total = len(parts)
    return [f"({index}/{total}) {part}" for index, part in enumerate(parts, start=1)]


def compose_burst(messages: Sequence[InboundMessage]) -> list[NewConversation]:
    """One burst → one conversation, or numbered parts when its text exceeds `MAX_PART_CHARS`; [] if empty."""
    burst = _analyse(messages)
    if burst is None:
        return []
    locations = [message.location for message in burst.content if message.location is not None]
    geolocation = None
    if locations:
        last = locations[-1]
        geolocation = Geolocation(latitude=last.latitude, longitude=last.longitude, address=last.address)
    blocks = _blocks(burst)
    if not blocks and locations:
        blocks = [_location_text(locations[-1])]
    if not blocks:
        return []
    language = next((message.language for message in burst.ordered if message.language), None)
    platform = burst.content[0].platform
    return [
        NewConversation(
            text=text,
            text_source=_text_source(burst),
            text_source_spec=platform.value,
            started_at=burst.started_at,
            finished_at=burst.finished_at,
            language=language,
            geolocation=geolocation,
        )
        for text in _numbered(blocks)
    ]


def _names(burst: _Burst) -> list[str]:
    source = [_origin_name(message) for message in burst.forwards] or [
        message.sender_name.strip() for message in burst.content
    ]
    return list(dict.fromkeys(name for name in source if name))


def burst_summary(messages: Sequence[InboundMessage], *, tz: tzinfo = UTC) -> str:
    """The short confirmation wording: "3 messages from Alice, Bob · 12 Mar"."""
    burst = _analyse(messages)
    if burst is None:
        return "0 messages"
    count = len(burst.content)
    summary = f"{count} message" if count == 1 else f"{count} messages"
    names = _names(burst)
    if len(names) > _MAX_SUMMARY_NAMES:
        others = len(names) - _MAX_SUMMARY_NAMES
        listed = ", ".join(names[:_MAX_SUMMARY_NAMES])
        summary += f" from {listed} and {others} {'other' if others == 1 else 'others'}"
    elif names:
        summary += f" from {', '.join(names)}"
    day = burst.started_at.astimezone(tz)
    # Built by hand because "%-d" is a glibc extension that fails on Windows and musl.
    return f"{summary} · {day.day} {_MONTHS[day.month - 1]}"
