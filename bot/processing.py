"""From accepted inbox rows to the router: in arrival order per chat user, different users in parallel, and
never at the expense of intake — acknowledging a platform comes first; processing may lag and catches up."""

from __future__ import annotations

import asyncio
import collections
import logging
import sys
import time
from collections.abc import Awaitable, Callable, Sequence

from bot.events import InboundMessage
from bot.store import InboxRow

log = logging.getLogger(__name__)

#: An adapter's translation of one stored payload; None = nothing usable (the row is then just marked done).
Parser = Callable[[InboxRow], Awaitable[InboundMessage | None]]
#: A cheap look at a stored payload: whose messages it belongs with, as `bot.events.session_key` builds it (None:
#: don't know). With it, parsing — which may wait on the network (a Slack thread, a Telegram document) — happens in
#: that user's queue and holds up only that user; and it must equal the parsed message's `session_key`, or a burst
#: could close before that user's lagging rows reach it (`behind`).
SessionHint = Callable[[InboxRow], str | None]
Handler = Callable[[InboundMessage, int], Awaitable[None]]
Discard = Callable[[int], Awaitable[None]]
#: What waits in a session's queue: a row not parsed yet, packed as a plain tuple of its fields (`_pack`), or a
#: parsed message with its row id. A plain tuple of strings and numbers is left alone by Python's cyclic collector
#: (it untracks such tuples), where a dataclass instance is traversed at every full collection: with tens of
#: thousands of rows waiting while intake is busy, those collections grew to 100 ms pauses of the whole process
#: (BENCHMARKS.md §4).
Packed = tuple[str, int, str, str, str | None, float, str | None]
Item = Packed | tuple[InboundMessage, int]
_PACKED = "row"


#: Beyond this many rows waiting, a packed row lets go of its payload (read back from the inbox when its turn comes):
#: a backlog of 80,000 rows held 80 MB of payloads that are in the database anyway.
KEEP_PAYLOADS = 2_000
PayloadLoader = Callable[[int], Awaitable[str | None]]
#: With `load_rows` (every waiting row is this instance's: one instance per database), beyond this many rows held
#: the rows that come wait in the database only, and are read back in order, `REFILL_ROWS` at a time, once fewer
#: than `REFILL_BELOW` are held — so memory stays bounded by the bound, not by the backlog (as a restart replays).
HOLD_ROWS = KEEP_PAYLOADS
REFILL_BELOW = HOLD_ROWS // 2
REFILL_ROWS = 500
#: Waiting rows from an id on, oldest first, at most n (`Inbox.waiting_from`).
RowsLoader = Callable[[int, int], Awaitable[list[InboxRow]]]


def _pack(row: InboxRow, keep_payload: bool = True) -> Packed:
    payload = row.payload if keep_payload else None
    # A session's rows share one copy of its key (each arrival brings its own: ~60 bytes a row in a long backlog).
    session = sys.intern(row.session) if row.session is not None else None
    return (_PACKED, row.id, row.platform, row.kind, payload, row.received_at, session)


async def _unpack(item: Item, load: PayloadLoader | None) -> tuple[InboxRow | None, bool]:
    """The row of a packed item (None for a parsed message), and False when its row is gone meanwhile."""
    if not isinstance(item[0], str):
        return None, True
    _, row_id, platform, kind, payload, received_at, session = item  # type: ignore[misc]
    if payload is None:
        payload = await load(row_id) if load is not None else None
        if payload is None:
            return None, False  # done or deleted meanwhile (/unlink): nothing to do
    return InboxRow(row_id, platform, kind, payload, received_at, session), True


#: Rows handled per turn of the event loop: a bound on how long processing holds the loop at a time.
ROWS_PER_TURN = 4
#: While intake is busy, processing gets this share of the time; the rest answers the platforms. Processing
#: then lags and catches up when intake calms down (bursts are measured on the receive clock, so lag is harmless).
BUSY_SHARE = 0.1
#: Processing time that may be used at once, and the most one row is charged (its network waits are not CPU).
BUDGET_SECONDS = 0.005
MAX_CHARGE_SECONDS = 0.005


class _Turns:
    """Gives processing its turns: at most `ROWS_PER_TURN` rows per turn of the event loop, and while intake is
    busy only `BUSY_SHARE` of the time (a token bucket of processing seconds). Waiting rows hold no CPU."""

    def __init__(self, busy: Callable[[], bool] | None = None) -> None:
        self._busy = busy
        self._waiters: collections.deque[asyncio.Future[None]] = collections.deque()
        self._scheduled = False
        self._budget = BUDGET_SECONDS
        self._refilled = 0.0

    async def turn(self) -> None:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(future)
        self._schedule()
        await future

    def spent(self, seconds: float) -> None:
        self._budget -= min(seconds, MAX_CHARGE_SECONDS)

    def _schedule(self, delay: float = 0.0) -> None:
        if not self._scheduled:
            self._scheduled = True
            loop = asyncio.get_running_loop()
            if delay > 0:
                loop.call_later(delay, self._release)
            else:
                loop.call_soon(self._release)

    def _release(self) -> None:
        self._scheduled = False
        now = asyncio.get_running_loop().time()
        if self._busy is not None and self._busy():
            self._budget = min(BUDGET_SECONDS, self._budget + (now - self._refilled) * BUSY_SHARE)
        else:
            self._budget = BUDGET_SECONDS
        self._refilled = now
        if self._budget <= 0 and self._waiters:
            self._schedule(delay=max(0.001, -self._budget / BUSY_SHARE))
            return
        released = 0
        while self._waiters and released < ROWS_PER_TURN:
            future = self._waiters.popleft()
            if not future.done():
                future.set_result(None)
                released += 1
        if self._waiters:
            self._schedule()


class Processor:
    def __init__(
        self,
        parsers: dict[str, Parser],
        handle: Handler,
        discard: Discard,
        hints: dict[str, SessionHint] | None = None,
        intake_busy: Callable[[], bool] | None = None,
        load_payload: PayloadLoader | None = None,
        load_rows: RowsLoader | None = None,
    ) -> None:
        self._parsers = parsers
        self._load_rows = load_rows
        # Rows left in the database (`HOLD_ROWS`): the first one's id (None: none), a bound on its receive time
        # (for `behind`), how many, and how many were ever left there (a read back tells what came meanwhile).
        self._spill_from: int | None = None
        self._spill_at = float("inf")
        self._spill_waiting = 0
        self._spilled = 0
        self._load_payload = load_payload
        self._hints = hints if hints is not None else {}
        self._handle = handle
        self._discard = discard
        self._rows: collections.deque[InboxRow] = collections.deque()
        self._row_ready = asyncio.Event()
        self._sessions: dict[str, collections.deque[Item]] = {}
        self._queued = 0  # items in all session queues
        self._current: dict[str, float] = {}  # session -> received_at of the item being handled
        self._session_tasks: set[asyncio.Task[None]] = set()
        self._dispatcher: asyncio.Task[None] | None = None
        self._turns = _Turns(intake_busy)
        self._idle = asyncio.Event()
        self._idle.set()
        self._progress = asyncio.Event()

    def start(self) -> None:
        self._dispatcher = asyncio.create_task(self._dispatch(), name="processor")

    def submit(self, rows: Sequence[InboxRow]) -> None:
        if not rows:
            return
        if self._load_rows is not None:
            room = 0 if self._spill_from is not None else max(0, HOLD_ROWS - self._held)
            rows, left = rows[:room], rows[room:]
            if left:  # in the database already: read back at their turn
                if self._spill_from is None:
                    self._spill_from, self._spill_at = left[0].id, left[0].received_at
                self._spill_waiting += len(left)
                self._spilled += len(left)
        self._rows.extend(rows)
        self._idle.clear()
        self._row_ready.set()

    @property
    def backlog(self) -> int:
        return self._held + self._spill_waiting

    @property
    def _held(self) -> int:
        return len(self._rows) + self._queued

    async def wait_idle(self) -> None:
        """Until every submitted row has been handed to the router and handled."""
        while True:
            await self._idle.wait()
            if not self._rows and not self._sessions and self._spill_from is None:
                return
            self._idle.clear()

    def behind(self, session_key: str, moment: float) -> bool:
        """Could rows received up to `moment` still be waiting to reach this session? A burst waits for them
        before it closes: processing may lag, but bursts are measured on the receive clock."""
        if self._rows and self._rows[0].received_at <= moment:
            return True
        if self._spill_from is not None and self._spill_at <= moment:
            return True
        if self._current.get(session_key, float("inf")) <= moment:
            return True
        queue = self._sessions.get(session_key)
        return bool(queue) and _received_at(queue[0]) <= moment

    async def progress(self) -> None:
        """Wait until some row has been handled."""
        self._progress.clear()
        await self._progress.wait()

    async def stop(self) -> None:
        tasks = [t for t in (self._dispatcher, *self._session_tasks) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._sessions.clear()
        self._queued = 0
        self._rows.clear()
        self._spill_from, self._spill_waiting = None, 0  # left in the database: replayed at the next start

    def _check_idle(self) -> None:
        if not self._rows and not self._sessions and self._spill_from is None:
            self._idle.set()

    async def _dispatch(self) -> None:
        while True:
            if not self._rows:
                if self._spill_from is not None and self._held < REFILL_BELOW:
                    await self._refill()
                    continue
                self._row_ready.clear()
                await self._row_ready.wait()
                continue
            row = self._rows[0]
            try:
                key = self._hint(row)
                if key is not None:
                    keep = self._load_payload is None or self._held < KEEP_PAYLOADS
                    self._enqueue(key, _pack(row, keep))
                else:
                    await self._turns.turn()
                    await self._parse_and_enqueue(row)
            except Exception:
                log.exception("processing: row %d could not be handled; it stays queued for the next start", row.id)
            finally:
                self._rows.popleft()
                self._check_idle()

    async def _refill(self) -> None:
        """Read back the next rows left in the database. The rows accepted meanwhile were left there too (their ids
        come after): only a read that finds fewer than it asked for, with nothing left there meanwhile, ends it."""
        assert self._load_rows is not None and self._spill_from is not None
        spilled = self._spilled
        try:
            rows = await self._load_rows(self._spill_from, REFILL_ROWS)
        except Exception:
            log.exception("processing: could not read waiting rows back; trying again in a second")
            await asyncio.sleep(1.0)
            return
        if rows:
            self._spill_from, self._spill_at = rows[-1].id + 1, rows[-1].received_at  # later rows came later
            self._spill_waiting = max(0, self._spill_waiting - len(rows))
            self._rows.extend(rows)
        if len(rows) < REFILL_ROWS and self._spilled == spilled:
            self._spill_from, self._spill_waiting = None, 0
            self._check_idle()

    def _hint(self, row: InboxRow) -> str | None:
        hint = self._hints.get(row.platform)
        if hint is None:
            return None
        try:
            key = row.session or hint(row)
        except Exception:
            return None  # the parser will say what is wrong with it
        return key or None

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
            message = await parser(row)
        except Exception as exc:
            # One line, no traceback: a payload's shape is the sender's doing, and anyone holding the webhook
            # secret (or a buggy Bot API server) could otherwise flood the log with tracebacks.
            log.warning(
                "processing: %s row %d is not a usable payload (%s); dropped", row.platform, row.id, type(exc).__name__
            )
            return None
        if message is not None:
            message.received_at = row.received_at
        return message

    def _enqueue(self, key: str, item: Item) -> None:
        queue = self._sessions.get(key)
        if queue is None:
            queue = collections.deque()
            self._sessions[key] = queue
            task = asyncio.create_task(self._run_session(key, queue), name=f"session:{key}")
            self._session_tasks.add(task)
            task.add_done_callback(self._session_tasks.discard)
        queue.append(item)
        self._queued += 1

    async def _run_session(self, key: str, queue: collections.deque[Item]) -> None:
        try:
            while queue:
                item = queue[0]
                self._current[key] = _received_at(item)
                queue.popleft()
                self._queued -= 1
                row_id: int = item[1]  # type: ignore[assignment]
                started = None
                try:
                    await self._turns.turn()
                    row, there = await _unpack(item, self._load_payload)
                    if not there:
                        continue
                    started = time.perf_counter()
                    if row is not None:
                        message = await self._parse(row)
                        if message is None:
                            await self._discard(row.id)
                            continue
                    else:
                        message = item[0]  # type: ignore[assignment]
                    await self._handle(message, row_id)
                except Exception:
                    log.exception("processing: handling row %d failed; it stays queued for the next start", row_id)
                finally:
                    if started is not None:
                        self._turns.spent(time.perf_counter() - started)
                    self._current.pop(key, None)
                    self._progress.set()
                    if self._spill_from is not None and self._held < REFILL_BELOW:
                        self._row_ready.set()  # the dispatcher reads the next rows back
        finally:
            if self._sessions.get(key) is queue:
                del self._sessions[key]
            self._check_idle()


def _received_at(item: Item) -> float:
    return item[5] if isinstance(item[0], str) else item[0].received_at  # type: ignore[union-attr,return-value]
