"""Queueing an import (SPEC §10): messages → conversations → outbox items staged in batches, the ledger beside them,
flipped to queued in one small transaction. Anything that stops it before the flip (bad input found late in the
file, Ctrl-C, a database error) deletes what it staged: an import is queued whole or not at all."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import date

from bot.clock import Clock
from bot.events import Address
from bot.importing.grouping import DEFAULT_GAP_MINUTES, ImportConversation, conversations
from bot.importing.model import ImportedMessage
from bot.omi.models import NewConversation
from bot.store import ItemKind, NewItem
from bot.store.imports import BATCH_ROWS, Imports

#: What Omi is told the text is (SPEC §10): `telegram_import`, `slack_import`.
SPEC_SUFFIX = "_import"


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


class _Counting:
    """Counts what flows through: messages seen, and those the ledger leaves out."""

    def __init__(self, messages: Iterable[ImportedMessage], skip: set[str]) -> None:
        self._messages = messages
        self._skip = skip
        self.seen = 0
        self.already = 0

    def __iter__(self) -> Iterator[ImportedMessage]:
        for message in self._messages:
            if message.message_id in self._skip:
                self.already += 1
                continue
            self.seen += 1
            yield message


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
        batch: list[NewItem] = []
        ids: list[list[str]] = []
        record = await imports.get(import_id)
        assert record is not None
        for conversation in conversations(counting, gap_minutes=gap_minutes, since=since, until=until):
            batch.append(item_for(target, source, conversation))
            ids.append(conversation.message_ids)
            if len(batch) == BATCH_ROWS:
                await imports.stage(record, batch, ids, clock.now())
                staged += len(batch)
                batch, ids = [], []
                if on_staged is not None:
                    on_staged(staged)
        if batch:
            await imports.stage(record, batch, ids, clock.now())
            staged += len(batch)
        if not staged:
            await imports.refuse(import_id, clock.now(), forget=True)
            return Queued(None, 0, counting.seen, counting.already)
        total = await imports.queue(import_id, messages=counting.seen, skipped=counting.already, now=clock.now())
    except BaseException:
        await imports.refuse(import_id, clock.now())
        raise
    return Queued(import_id, total, counting.seen, counting.already)
