"""Queuing Omi writes: the outbox items and the inbox rows that brought them (marked done) commit together, then
delivery is woken. Every producer — closed bursts, /remember, /extract, /save, shared contacts — queues here."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar

from bot.clock import Clock
from bot.delivery import split_memories
from bot.events import Address
from bot.store import ItemKind, ItemState, NewItem, OmiWrite, Outbox, mark_done
from bot.store.database import Conn, Database

T = TypeVar("T")


def new_items(
    *,
    account: str,
    uid: str,
    kind: ItemKind,
    writes: Sequence[OmiWrite],
    address: Address,
    summary: str,
    held: bool,
) -> list[NewItem]:
    """Outbox items for one account's writes: held while its link is only claimed, explicit memories split into
    POST-sized items (at most 100 memories each)."""
    if kind is ItemKind.MEMORIES:
        writes = [part for write in writes for part in split_memories(write)]
    state = ItemState.HELD if held else ItemState.PENDING
    return [NewItem(account, uid, kind, write, address, summary, state) for write in writes]


class WriteQueue:
    def __init__(
        self,
        db: Database,
        clock: Clock,
        wake: Callable[[], None],
        on_queued: Callable[[ItemKind, int], None] | None = None,
    ) -> None:
        self._db = db
        self._clock = clock
        self._wake = wake
        self._on_queued = on_queued

    async def commit(self, work: Callable[[Conn], T], rows: Sequence[int]) -> T:
        """`work` and marking `rows` done in one transaction: a replay after a crash neither loses nor repeats
        what the rows caused. Rows already done (another instance handled them) undo it all: `RowsTaken`."""

        def with_rows(conn: Conn) -> T:
            result = work(conn)
            mark_done(conn, rows, still_new=True)
            return result

        return await self._db.write(with_rows)

    async def queue(
        self, items: Sequence[NewItem], rows: Sequence[int] = (), *, also: Callable[[Conn], None] | None = None
    ) -> list[int]:
        """Queue `items` with `rows` marked done (and `also` done, in the same transaction); delivery is woken once
        they are committed."""
        now = self._clock.now()

        def work(conn: Conn) -> list[int]:
            if also is not None:
                also(conn)
            return Outbox.add(conn, items, now)

        ids = await self.commit(work, rows)
        if items:
            if self._on_queued is not None:
                for kind in {item.kind for item in items}:
                    self._on_queued(kind, sum(1 for item in items if item.kind is kind))
            self._wake()
        return ids
