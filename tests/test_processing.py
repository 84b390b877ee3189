"""Processing's queue under a backlog (BENCHMARKS.md §4): rows waiting in a session's queue are plain tuples, and
beyond `KEEP_PAYLOADS` waiting rows they let go of their payload, read back from the inbox at their turn — every
row is still handled once, in order, with its own payload; a row gone meanwhile is skipped."""

from __future__ import annotations

import asyncio
import gc
from datetime import UTC, datetime

from bot.events import InboundMessage, Platform
from bot.processing import KEEP_PAYLOADS, Processor, _pack
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


def test_a_waiting_row_is_nothing_the_collector_traverses():
    packed = _pack(InboxRow(1, "telegram", "update", '{"update_id": 1}', 1.0, "telegram:1:1"))
    gc.collect()
    assert not gc.is_tracked(packed)
