"""From a stream of past messages to Omi conversations (SPEC §10): consecutive messages less than `gap` apart form
one conversation, split at message boundaries to stay within Omi's 50,000 characters; `Author: text` blocks;
`--since`/`--until` filter by date (UTC, `until` includes its whole day). Pure functions over iterators: memory
holds one conversation at a time, never the export."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta

from bot.importing.model import ImportedMessage

#: Omi's limit on a conversation's text (the live bridge splits at the same size, bot/compose.py).
MAX_CHARS = 50_000
DEFAULT_GAP_MINUTES = 30
SEPARATOR = "\n\n"


@dataclass
class ImportConversation:
    """One conversation to queue: its text and the ids of the messages in it (for the ledger)."""

    blocks: list[str] = field(default_factory=list)
    message_ids: list[str] = field(default_factory=list)
    authors: list[str] = field(default_factory=list)  # in order of first appearance
    started_at: datetime | None = None
    finished_at: datetime | None = None
    size: int = 0  # characters of `text`

    @property
    def text(self) -> str:
        return SEPARATOR.join(self.blocks)

    @property
    def count(self) -> int:
        return len(self.message_ids)

    def fits(self, block: str) -> bool:
        return not self.blocks or self.size + len(SEPARATOR) + len(block) <= MAX_CHARS

    def add(self, message: ImportedMessage, block: str) -> None:
        self.size += len(block) + (len(SEPARATOR) if self.blocks else 0)
        self.blocks.append(block)
        self.message_ids.append(message.message_id)
        if message.author not in self.authors:
            self.authors.append(message.author)
        if self.started_at is None:
            self.started_at = message.sent_at
        self.finished_at = message.sent_at

    def dry_run_line(self, words: int = 8) -> str:
        """`2024-03-05 14:02–14:40 UTC · 23 messages · Alice, Bob · first words…` (SPEC §10)."""
        assert self.started_at is not None and self.finished_at is not None
        start, end = self.started_at.astimezone(UTC), self.finished_at.astimezone(UTC)
        until = end.strftime("%H:%M") if end.date() == start.date() else end.strftime("%Y-%m-%d %H:%M")
        first = self.blocks[0].split(": ", 1)[-1].split()
        preview = " ".join(first[:words]) + ("…" if len(first) > words else "")
        noun = "message" if self.count == 1 else "messages"
        return f"{start:%Y-%m-%d %H:%M}–{until} UTC · {self.count} {noun} · {', '.join(self.authors)} · {preview}"


def block(message: ImportedMessage) -> str:
    return f"{message.author}: {message.text}"


def in_range(message: ImportedMessage, since: date | None, until: date | None) -> bool:
    """`since` from the start of its day, `until` to the end of its day (UTC)."""
    moment = message.sent_at.astimezone(UTC)
    if since is not None and moment < datetime.combine(since, time(0), UTC):
        return False
    return until is None or moment < datetime.combine(until + timedelta(days=1), time(0), UTC)


def conversations(
    messages: Iterable[ImportedMessage],
    *,
    gap_minutes: float = DEFAULT_GAP_MINUTES,
    since: date | None = None,
    until: date | None = None,
    skip: Iterable[str] | None = None,
) -> Iterator[ImportConversation]:
    """Messages in time order → conversations. `skip`: message ids already imported (the ledger), left out
    wherever they fall — an imported message is never queued again, whatever the gap."""
    skipped = set(skip) if skip is not None else set()
    gap = timedelta(minutes=gap_minutes)
    current = ImportConversation()
    for message in messages:
        if message.message_id in skipped or not in_range(message, since, until):
            continue
        text = block(message)
        starts_new = current.finished_at is not None and message.sent_at - current.finished_at >= gap
        if current.blocks and (starts_new or not current.fits(text)):
            yield current
            current = ImportConversation()
        for part in _parts(text):
            if current.blocks and not current.fits(part):
                yield current
                current = ImportConversation()
            current.add(message, part)
    if current.blocks:
        yield current


def _parts(text: str) -> list[str]:
    """A block over the limit alone (a pasted book): cut at whitespace into pieces that fit."""
    if len(text) <= MAX_CHARS:
        return [text]
    parts: list[str] = []
    while len(text) > MAX_CHARS:
        cut = text.rfind(" ", 0, MAX_CHARS)
        cut = cut if cut > MAX_CHARS // 2 else MAX_CHARS
        parts.append(text[:cut].rstrip())
        text = text[cut:].lstrip()
    if text:
        parts.append(text)
    return parts
