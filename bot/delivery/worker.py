"""The delivery worker: takes outbox items to Omi by the rules of SPEC §7.

- A uid's items go one at a time, oldest due first; an item waiting on its own retry time does not hold back
  newer ones. Different uids go in parallel, up to `concurrency` requests. Explicit memories of one uid travel in
  one POST (at most 100 memories).
- Items are claimed (a guarded update under a new attempt number) before an attempt, and the attempt's outcome is
  recorded only if the item is still where the claim left it (`bot.store.outbox`).
- What an outcome means is decided in `bot.delivery.rules`; looks before re-sending are in `bot.delivery.looks`.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable, Sequence

from bot.clock import Clock
from bot.delivery.attempt import Attempts
from bot.delivery.holds import Holds
from bot.delivery.notices import Notices, Outcomes
from bot.delivery.rules import MAX_MEMORIES_PER_POST
from bot.omi import words
from bot.omi.client import OmiClient
from bot.omi.models import NewMemories
from bot.store import ItemKind, ItemState, Outbox, OutboxItem, Store

log = logging.getLogger(__name__)


class DeliveryWorker:
    def __init__(
        self,
        store: Store,
        omi: OmiClient,
        clock: Clock,
        outcomes: Outcomes,
        *,
        concurrency: int = 32,
        rng: random.Random | None = None,
        on_result: Callable[[ItemKind, str, str], None] | None = None,
    ) -> None:
        self._store = store
        self._clock = clock
        self._concurrency = concurrency
        self._on_result = on_result
        self._wake = asyncio.Event()
        self._progress = asyncio.Event()
        self._busy: dict[str, asyncio.Task[None]] = {}  # uid -> its one attempt in flight
        self._holds = Holds()
        self._notices = Notices(outcomes)
        self._blocked_accounts: set[str] = set()
        self._attempts = Attempts(
            store,
            omi,
            clock,
            rng=rng or random.Random(),
            holds=self._holds,
            notices=self._notices,
            on_blocked=self._blocked_accounts.add,
            stopped=lambda: self._stopped,
            on_result=on_result,
        )
        self._loop_task: asyncio.Task[None] | None = None
        self._stopping = False
        self._stopped = False
        #: Set while nothing is in flight and the worker sleeps until `sleeping_until` (tests, console drain).
        self.idle = asyncio.Event()
        self.sleeping_until: float | None = None

    # --- control ------------------------------------------------------------------------------------

    async def start(self) -> None:
        now = self._clock.now()
        looking, resent, unconfirmed = await self._store.db.write(
            lambda conn: Outbox.recover_after_crash(conn, now, words.UNCONFIRMED_EXTRACT)
        )
        if looking or resent or unconfirmed:
            log.warning(
                "delivery: %d item(s) were in flight at the last stop: %d to look for before re-sending,"
                " %d re-queued, %d extraction(s) not repeated",
                looking + resent + len(unconfirmed),
                looking,
                resent,
                len(unconfirmed),
            )
        for item in unconfirmed:
            if self._on_result is not None:
                self._on_result(item.kind, "failed", "unconfirmed")
            self._notices.failed(item, words.UNCONFIRMED_EXTRACT)
        self._blocked_accounts.update(await self._store.outbox.blocked_accounts())
        self._loop_task = asyncio.create_task(self._run(), name="delivery-worker")

    def wake(self) -> None:
        """New items were queued (or something changed): look again now."""
        self.idle.clear()
        self._wake.set()

    async def unblock(self, account: str) -> None:
        """The user is back (a message, `/status`): retry their blocked items now."""
        if account not in self._blocked_accounts:
            return
        self._blocked_accounts.discard(account)
        now = self._clock.now()
        await self._store.db.write(lambda conn: Outbox.unblock(conn, account, now))
        self.wake()

    async def stop(self, grace: float = 10.0) -> None:
        """Stop taking items; give attempts in flight `grace` seconds, then cancel them (their items stay
        `sending` and are recovered at the next start). Every attempt has ended when this returns, and none of
        this worker's writes lands afterwards."""
        self._stopping = True
        if self._loop_task is not None:
            self._loop_task.cancel()
            await asyncio.gather(self._loop_task, return_exceptions=True)
        in_flight = list(self._busy.values()) + self._notices.in_flight()
        if in_flight:
            _, pending = await asyncio.wait(in_flight, timeout=grace) if grace > 0 else (set(), set(in_flight))
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.gather(*pending, return_exceptions=True)
        self._stopped = True
        # A write already handed to the database thread when its task was cancelled still lands: wait for it.
        await self._store.db.barrier()

    async def drain(self, timeout: float) -> bool:
        """Wait until nothing is due now or in flight (the console's EOF). True if drained in time."""
        try:
            async with asyncio.timeout(timeout):
                self.wake()
                await self.idle.wait()
                return True
        except TimeoutError:
            return False

    async def progress(self, timeout: float) -> None:
        """Wait (at most `timeout`) until some delivery finishes."""
        self._progress.clear()
        try:
            await asyncio.wait_for(self._progress.wait(), timeout)
        except TimeoutError:
            pass

    # --- scheduling ---------------------------------------------------------------------------------

    async def _run(self) -> None:
        while not self._stopping:
            self._wake.clear()
            try:
                await self._dispatch()
                deadline = await self._next_wakeup()
            except Exception:
                log.exception("delivery: scheduling failed; retrying in 1 s")
                deadline = self._clock.now() + 1.0
            self.sleeping_until = deadline
            if not self._busy and not self._wake.is_set():
                self.idle.set()  # nothing in flight and nothing due before `deadline`
            await self._sleep_or_wake(deadline)

    async def _dispatch(self) -> None:
        now = self._clock.now()
        free = self._concurrency - len(self._busy)
        if free <= 0:
            return
        best: dict[str, tuple[int, str]] = {}
        for uid, kind, item_id in await self._store.outbox.due_heads(now):
            if uid in self._busy or self._holds.held(uid, kind, now):
                continue
            if uid not in best or item_id < best[uid][0]:
                best[uid] = (item_id, kind)
        batches: list[list[int]] = []
        for uid, (item_id, kind) in sorted(best.items(), key=lambda pair: pair[1][0])[:free]:
            if kind == ItemKind.MEMORIES.value:
                batches.append(_memory_batch(await self._store.outbox.due_memories(uid, now)) or [item_id])
            else:
                batches.append([item_id])
        if not batches or self._stopping:
            return
        # What was read above may be stale by now (an attempt may have finished meanwhile): the claim takes only
        # items still due, under a new attempt number that every outcome write must name.
        claimed = await self._store.db.write(lambda conn: [Outbox.claim(conn, ids, now) for ids in batches])
        for items in claimed:
            if not items:
                continue
            uid = items[0].uid
            task = asyncio.create_task(self._attempts.run(items), name=f"deliver:{items[0].id}")
            self._busy[uid] = task
            task.add_done_callback(lambda _t, uid=uid: self._finished(uid))

    def _finished(self, uid: str) -> None:
        self._busy.pop(uid, None)
        self._progress.set()
        self.wake()

    async def _next_wakeup(self) -> float:
        now = self._clock.now()
        hold_end = self._holds.next_end(now)
        candidates = [hold_end] if hold_end is not None else []
        due = await self._store.outbox.next_due_at(now)
        if due is not None:
            candidates.append(due)
        return min(candidates) if candidates else now + 3600.0

    async def _sleep_or_wake(self, deadline: float) -> None:
        sleeper = asyncio.create_task(self._clock.sleep_until(deadline))
        waker = asyncio.create_task(self._wake.wait())
        try:
            await asyncio.wait({sleeper, waker}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            sleeper.cancel()
            waker.cancel()


def _memory_batch(due: Sequence[OutboxItem]) -> list[int]:
    """The ids of one POST's worth of a uid's due explicit memories: the oldest item's kind of attempt (a send, or
    a look for an unknown outcome), oldest first, at most `MAX_MEMORIES_PER_POST` memories."""
    if not due:
        return []
    looking = due[0].state is ItemState.UNKNOWN
    batch: list[int] = []
    total = 0
    for item in due:
        if (item.state is ItemState.UNKNOWN) != looking:
            continue
        size = len(item.memories.memories) if isinstance(item.write, NewMemories) else 1
        if batch and total + size > MAX_MEMORIES_PER_POST:
            break
        batch.append(item.id)
        total += size
    return batch


__all__ = ["DeliveryWorker", "Outcomes"]
