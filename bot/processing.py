"""From accepted inbox rows to the router: parsed in arrival order, handled in order per chat user,
different users in parallel."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence

from bot.events import InboundMessage
from bot.store import InboxRow

log = logging.getLogger(__name__)

#: An adapter's translation of one stored payload; None = nothing usable (the row is then just marked done).
Parser = Callable[[InboxRow], Awaitable[InboundMessage | None]]
#: A cheap look at a stored payload: whose messages it belongs with (None: don't know). With it, parsing — which
#: may wait on the network (a Slack thread, a Telegram document) — happens in that user's queue and holds up only
#: that user.
SessionHint = Callable[[InboxRow], str | None]
Handler = Callable[[InboundMessage, int], Awaitable[None]]
Discard = Callable[[int], Awaitable[None]]


class Processor:
    def __init__(
        self,
        parsers: dict[str, Parser],
        handle: Handler,
        discard: Discard,
        hints: dict[str, SessionHint] | None = None,
    ) -> None:
        self._parsers = parsers
        self._hints = hints if hints is not None else {}
        self._handle = handle
        self._discard = discard
        self._rows: asyncio.Queue[InboxRow] = asyncio.Queue()
        self._sessions: dict[str, asyncio.Queue[InboxRow | tuple[InboundMessage, int]]] = {}
        self._session_tasks: set[asyncio.Task[None]] = set()
        self._dispatcher: asyncio.Task[None] | None = None
        self._idle = asyncio.Event()
        self._idle.set()

    def start(self) -> None:
        self._dispatcher = asyncio.create_task(self._dispatch(), name="processor")

    def submit(self, rows: Sequence[InboxRow]) -> None:
        for row in rows:
            self._rows.put_nowait(row)
        if rows:
            self._idle.clear()

    @property
    def backlog(self) -> int:
        return self._rows.qsize() + sum(queue.qsize() for queue in self._sessions.values())

    async def wait_idle(self) -> None:
        """Until every submitted row has been handed to the router and handled."""
        while True:
            await self._idle.wait()
            if self._rows.empty() and not self._sessions:
                return
            self._idle.clear()

    async def stop(self) -> None:
        tasks = [t for t in (self._dispatcher, *self._session_tasks) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._sessions.clear()

    def _check_idle(self) -> None:
        if self._rows.empty() and not self._sessions:
            self._idle.set()

    async def _dispatch(self) -> None:
        while True:
            row = await self._rows.get()
            try:
                key = self._hint(row)
                if key is not None:
                    self._enqueue(key, row)
                else:
                    await self._parse_and_enqueue(row)
            except Exception:
                log.exception("processing: row %d could not be handled; it stays queued for the next start", row.id)
            finally:
                self._check_idle()

    def _hint(self, row: InboxRow) -> str | None:
        hint = self._hints.get(row.platform)
        if hint is None:
            return None
        try:
            key = hint(row)
        except Exception:
            return None  # the parser will say what is wrong with it
        return f"{row.platform}:{key}" if key else None

    async def _parse_and_enqueue(self, row: InboxRow) -> None:
        message = await self._parse(row)
        if message is None:
            await self._discard(row.id)
        else:
            self._enqueue(message.session_key, (message, row.id))

    async def _parse(self, row: InboxRow) -> InboundMessage | None:
        parser = self._parsers.get(row.platform)
        if parser is None:
            log.warning("processing: no adapter for %s rows (is it configured?); row %d kept", row.platform, row.id)
            raise LookupError(row.platform)
        try:
            return await parser(row)
        except Exception:
            log.exception("processing: %s row %d is not a usable payload; dropped", row.platform, row.id)
            return None

    def _enqueue(self, key: str, item: InboxRow | tuple[InboundMessage, int]) -> None:
        queue = self._sessions.get(key)
        if queue is None:
            queue = asyncio.Queue()
            self._sessions[key] = queue
            task = asyncio.create_task(self._run_session(key, queue), name=f"session:{key}")
            self._session_tasks.add(task)
            task.add_done_callback(self._session_tasks.discard)
        queue.put_nowait(item)

    async def _run_session(self, key: str, queue: asyncio.Queue[InboxRow | tuple[InboundMessage, int]]) -> None:
        try:
            while not queue.empty():
                item = queue.get_nowait()
                row_id = item.id if isinstance(item, InboxRow) else item[1]
                try:
                    if isinstance(item, InboxRow):
                        message = await self._parse(item)
                        if message is None:
                            await self._discard(item.id)
                            continue
                    else:
                        message = item[0]
                    await self._handle(message, row_id)
                except Exception:
                    log.exception("processing: handling row %d failed; it stays queued for the next start", row_id)
        finally:
            if self._sessions.get(key) is queue:
                del self._sessions[key]
            self._check_idle()
