"""Queueing an import (SPEC §10): messages → conversations → outbox items staged in batches, the ledger beside them,
flipped to queued in one small transaction. Anything that stops it before the flip (bad input found late in the
file, Ctrl-C, a database error) deletes what it staged: an import is queued whole or not at all. In chat the flip
waits for the user (`offer_import`): staged whole, the import is offered, and their Import button flips it."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from itertools import islice
from typing import TypeVar

from bot.clock import Clock
from bot.events import Address
from bot.importing.grouping import DEFAULT_GAP_MINUTES, ImportConversation, conversations
from bot.importing.model import ImportedMessage
from bot.omi.models import NewConversation
from bot.store import ItemKind, NewItem
from bot.store.imports import BATCH_ROWS, Imports

#: What Omi is told the text is (SPEC §10): `telegram_import`, `slack_import`.
SPEC_SUFFIX = "_import"

T = TypeVar("T")
#: How the next batch of conversations is read from the messages: here (the command line), or in a thread (`serve`,
#: where parsing a 20 MB export must not hold up the event loop: `asyncio.to_thread`).
Pull = Callable[[Callable[[], T]], Awaitable[T]]


async def _here(work: Callable[[], T]) -> T:
    return work()


@dataclass(frozen=True, slots=True)
class ImportTarget:
    account: str  # the verified link: `telegram:12345`
    uid: str
    address: Address  # where replies about it go (in-chat imports: the progress message)


@dataclass(frozen=True, slots=True)
class Queued:
    import_id: int | None  # None: nothing to import (the record is not kept)
    conversations: int
    messages: int  # read and kept after the filters, this time
    already: int  # messages left out because an earlier import brought them in
    first: datetime | None = None  # the earliest and latest of the messages kept
    last: datetime | None = None


class _Counting:
    """Counts what flows through: messages seen, and those the ledger leaves out."""

    def __init__(self, messages: Iterable[ImportedMessage], skip: set[str]) -> None:
        self._messages = messages
        self._skip = skip
        self.seen = 0
        self.already = 0
        self.first: datetime | None = None
        self.last: datetime | None = None

    def __iter__(self) -> Iterator[ImportedMessage]:
        for message in self._messages:
            if message.message_id in self._skip:
                self.already += 1
                continue
            self.seen += 1
            if self.first is None or message.sent_at < self.first:
                self.first = message.sent_at
            if self.last is None or message.sent_at > self.last:
                self.last = message.sent_at
            yield message

    def queued(self, import_id: int | None, conversations: int) -> Queued:
        return Queued(import_id, conversations, self.seen, self.already, self.first, self.last)


def item_for(target: ImportTarget, source: str, conversation: ImportConversation) -> NewItem:
    write = NewConversation(
        text=conversation.text,
        text_source="message",
        text_source_spec=f"{source}{SPEC_SUFFIX}",
        started_at=conversation.started_at,
        finished_at=conversation.finished_at,
    )
    summary = f"imported · {conversation.dry_run_line(words=5)}"
    return NewItem(target.account, target.uid, ItemKind.CONVERSATION, write, target.address, summary)


async def queue_import(
    imports: Imports,
    clock: Clock,
    target: ImportTarget,
    *,
    source: str,
    chat: str,
    chat_name: str,
    messages: Iterable[ImportedMessage],
    gap_minutes: float = DEFAULT_GAP_MINUTES,
    since: date | None = None,
    until: date | None = None,
    on_staged: Callable[[int], None] | None = None,
) -> Queued:
    """Stage and flip one import. `messages` may raise at any point (a truncated file): nothing stays queued."""
    import_id, staged, counting = await _stage(
        imports, clock, target, source=source, chat=chat, chat_name=chat_name, messages=messages,
        gap_minutes=gap_minutes, since=since, until=until, on_staged=on_staged, pull=_here,
    )  # fmt: skip
    return await _settle(
        imports, clock, import_id, staged, counting,
        lambda: imports.queue(import_id, messages=counting.seen, skipped=counting.already, now=clock.now()),
    )  # fmt: skip


async def offer_import(
    imports: Imports,
    clock: Clock,
    target: ImportTarget,
    *,
    source: str,
    chat: str,
    chat_name: str,
    messages: Iterable[ImportedMessage],
    rows: Sequence[int] = (),
    gap_minutes: float = DEFAULT_GAP_MINUTES,
) -> Queued:
    """Stage one import whole and offer it (in chat: the user's Import flips it, `Imports.accept`). The messages are
    read in a thread, a batch at a time. `rows` are marked done with the offer (`RowsTaken`: another instance
    handled them, and nothing stays staged). Nothing new to import: `import_id` None, nothing kept."""
    import_id, staged, counting = await _stage(
        imports, clock, target, source=source, chat=chat, chat_name=chat_name, messages=messages,
        gap_minutes=gap_minutes, since=None, until=None, on_staged=None, pull=asyncio.to_thread,
    )  # fmt: skip
    return await _settle(
        imports, clock, import_id, staged, counting,
        lambda: imports.offer(import_id, messages=counting.seen, skipped=counting.already, now=clock.now(), rows=rows),
    )  # fmt: skip


async def _settle(
    imports: Imports,
    clock: Clock,
    import_id: int,
    staged: int,
    counting: _Counting,
    flip: Callable[[], Awaitable[int | None]],
) -> Queued:
    """The staged import flipped (queued, or offered), or forgotten when it staged nothing; `flip` answering None:
    it was cancelled while staged (/unlink). Anything failing here refuses it: nothing stays staged."""
    try:
        if not staged:
            await imports.refuse(import_id, clock.now(), forget=True)
            return counting.queued(None, 0)
        total = await flip()
    except BaseException:
        await imports.refuse(import_id, clock.now())
        raise
    return counting.queued(None, 0) if total is None else counting.queued(import_id, total)


async def _stage(
    imports: Imports,
    clock: Clock,
    target: ImportTarget,
    *,
    source: str,
    chat: str,
    chat_name: str,
    messages: Iterable[ImportedMessage],
    gap_minutes: float,
    since: date | None,
    until: date | None,
    on_staged: Callable[[int], None] | None,
    pull: Pull[list[ImportConversation]],
) -> tuple[int, int, _Counting]:
    """A new import record, and every conversation staged in batches of ≤ `BATCH_ROWS` (ledger rows beside). Any
    failure on the way refuses it (what it staged deleted) and is raised."""
    skip = await imports.imported_ids(target.uid, source, chat)
    import_id = await imports.begin(
        account=target.account,
        uid=target.uid,
        source=source,
        chat=chat,
        chat_name=chat_name,
        now=clock.now(),
        address=target.address,
    )
    counting = _Counting(messages, skip)
    staged = 0
    try:
        record = await imports.get(import_id)
        assert record is not None
        found = conversations(counting, gap_minutes=gap_minutes, since=since, until=until)
        while batch := await pull(lambda: list(islice(found, BATCH_ROWS))):
            items = [item_for(target, source, conversation) for conversation in batch]
            await imports.stage(record, items, [conversation.message_ids for conversation in batch], clock.now())
            staged += len(batch)
            if on_staged is not None and len(batch) == BATCH_ROWS:
                on_staged(staged)
    except BaseException:
        await imports.refuse(import_id, clock.now())
        raise
    return import_id, staged, counting
