"""Processing's queue under a backlog (BENCHMARKS.md §4): rows waiting in a session's queue are plain tuples, and
beyond `KEEP_PAYLOADS` waiting rows they let go of their payload, read back from the inbox at their turn — every
row is still handled once, in order, with its own payload; a row gone meanwhile is skipped."""

from __future__ import annotations

import asyncio
import gc
from datetime import UTC, datetime

from bot.events import InboundMessage, Platform
from bot.processing import HOLD_ROWS, KEEP_PAYLOADS, Processor, _pack
from bot.store import InboxRow

ROWS = KEEP_PAYLOADS + 500


def rows(count: int) -> list[InboxRow]:
    return [InboxRow(n, "test", "line", f"payload {n}", float(n), session=f"s{n % 7}") for n in range(1, count + 1)]


async def test_a_big_backlog_is_handled_in_order_with_payloads_read_back():
    stored = {row.id: row.payload for row in rows(ROWS)}
    loads: list[int] = []
    handled: list[tuple[str, str]] = []

    async def parse(row: InboxRow) -> InboundMessage:
        return InboundMessage(Platform.CONSOLE, row.session or "", "u", "U", str(row.id), row.id,
                              datetime.now(UTC), text=row.payload)  # fmt: skip

    async def handle(message: InboundMessage, row_id: int) -> None:
        handled.append((message.chat_id, message.text))

    async def load(row_id: int) -> str | None:
        loads.append(row_id)
        return stored.get(row_id)

    async def discard(row_id: int) -> None:
        pass

    del stored[ROWS]  # the last row was deleted meanwhile (/unlink): skipped, not handled
    processor = Processor({"test": parse}, handle, discard, {"test": lambda row: row.session}, load_payload=load)
    processor.start()
    try:
        processor.submit(rows(ROWS))
        await asyncio.wait_for(processor.wait_idle(), 30)
    finally:
        await processor.stop()
    assert loads and len(handled) == ROWS - 1
    for session in {f"s{n % 7}" for n in range(1, ROWS)}:
        texts = [text for chat, text in handled if chat == session]
        assert texts == sorted(texts, key=lambda text: int(text.split()[1]))  # in order per session
    assert {text for _, text in handled} == {f"payload {n}" for n in range(1, ROWS)}


async def test_beyond_the_bound_rows_wait_in_the_database_and_are_read_back_in_order():
    """With `load_rows` (one instance per database), rows beyond HOLD_ROWS are not held: they are read back in
    order as the queues drain — also those accepted while a read back is under way — each handled once, and bursts
    are told that rows are still behind meanwhile."""
    total = 4 * HOLD_ROWS
    inbox = {row.id: row for row in rows(total + 300)}  # what the database holds, waiting
    handled: list[tuple[str, int]] = []
    held: list[int] = []
    reads = 0

    async def parse(row: InboxRow) -> InboundMessage:
        return InboundMessage(Platform.CONSOLE, row.session or "", "u", "U", str(row.id), row.id,
                              datetime.now(UTC), text=row.payload)  # fmt: skip

    async def handle(message: InboundMessage, row_id: int) -> None:
        handled.append((message.chat_id, row_id))
        held.append(processor._held)
        del inbox[row_id]  # done

    async def load_rows(first: int, limit: int) -> list[InboxRow]:
        nonlocal reads
        reads += 1
        found = sorted((row for row in inbox.values() if row.id >= first), key=lambda row: row.id)[:limit]
        await asyncio.sleep(0)
        if reads == 2:  # rows accepted while this read is under way: left in the database too
            processor.submit([inbox[n] for n in range(total + 1, total + 301)])
        return found

    async def discard(row_id: int) -> None:
        pass

    hint = {"test": lambda row: row.session}
    processor = Processor({"test": parse}, handle, discard, hint, load_payload=None, load_rows=load_rows)
    processor.start()
    try:
        processor.submit([inbox[n] for n in range(1, total + 1)])
        assert processor.backlog == total and processor._held == HOLD_ROWS
        assert processor.behind("s1", float(total)) and not processor.behind("s1", 0.5)
        await asyncio.wait_for(processor.wait_idle(), 30)
    finally:
        await processor.stop()
    assert sorted(row_id for _, row_id in handled) == list(range(1, total + 301))  # each once
    for session in {f"s{n % 7}" for n in range(7)}:
        ids = [row_id for chat, row_id in handled if chat == session]
        assert ids == sorted(ids)  # in order per session
    assert max(held) <= HOLD_ROWS and reads > 2 and not inbox


def test_a_waiting_row_is_nothing_the_collector_traverses():
    packed = _pack(InboxRow(1, "telegram", "update", '{"update_id": 1}', 1.0, "telegram:1:1"))
    gc.collect()
    assert not gc.is_tracked(packed)
