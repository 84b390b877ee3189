"""The delivery worker: takes outbox items to Omi by the rules of SPEC §7.

- A uid's items go one at a time, oldest due first; an item waiting on its own retry time does not hold back
  newer ones. Different uids go in parallel, up to `concurrency` requests. Explicit memories of one uid travel in
  one POST (at most 100 memories).
- An attempt is made under the uid's lease (SPEC §13: one instance at a time delivers a uid, on the database's
  clock, renewed while the request runs, given back after). Items are claimed (a guarded update under a new
  attempt number) before an attempt, and the attempt's outcome is recorded only if the item is still where the
  claim left it and the lease is still the one it was made under (`bot.store.outbox`). Items left `sending` under
  a lease nobody holds any more are recovered: looked for before they are sent again.
- What an outcome means is decided in `bot.delivery.rules`; looks before re-sending are in `bot.delivery.looks`.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable, Sequence

from bot.clock import Clock
from bot.delivery.attempt import Attempts
from bot.delivery.notices import Notices, Outcomes
from bot.delivery.rules import MAX_MEMORIES_PER_POST
from bot.instance import instance_name
from bot.omi import words
from bot.omi.client import OmiClient
from bot.omi.models import NewMemories
from bot.store import ItemKind, ItemState, Outbox, OutboxItem, Store
from bot.store.database import Conn
from bot.store.holds import Holds
from bot.store.leases import Lease, Leases

log = logging.getLogger(__name__)

#: A uid's lease lasts at least twice the create timeout (150 s): renewed every third of that while it is held.
LEASE_SECONDS = 300.0
#: How often items left under a lease nobody holds are looked for (and how soon after start, once).
ORPHAN_SCAN_SECONDS = 30.0
#: How soon items queued by another process (an import, another instance) are noticed, in real seconds.
OUTSIDE_WRITES_SECONDS = 5.0


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
        instance: str | None = None,
        lease_seconds: float = LEASE_SECONDS,
        imports_only: bool = False,
    ) -> None:
        self._store = store
        self._clock = clock
        self.instance = instance or instance_name()
        # Leases are on the database's clock (real seconds); on the test-only time scale they shrink with it.
        self._lease_seconds = lease_seconds / clock.scale
        self._imports_only = imports_only
        self._orphan_scan_seconds = ORPHAN_SCAN_SECONDS / clock.scale
        self._last_orphan_scan = float("-inf")
        self._concurrency = concurrency
        self._on_result = on_result
        self._wake = asyncio.Event()
        self._progress = asyncio.Event()
        self._busy: dict[str, asyncio.Task[None]] = {}  # uid -> its one attempt in flight
        self._holds = Holds(store.db)
        self._notices = Notices(outcomes)
        self._blocked_accounts: set[str] = set()
        self._attempts = Attempts(
            store,
            omi,
            clock,
            rng=rng or random.Random(),
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
        if self._store.db.engine == "sqlite":
            # SQLite's worker lock makes this process the database's only worker: a previous run's leases are
            # stale, and its items left in flight are recovered now rather than when those leases would expire.
            await self._store.db.write(Leases.clear)
        await self.recover_orphans()
        self._blocked_accounts.update(await self._store.outbox.blocked_accounts())
        self._loop_task = asyncio.create_task(self._run(), name="delivery-worker")

    async def recover_orphans(self) -> None:
        """Items left `sending` under a lease nobody holds any more: look for them (done every 30 s, and at start)."""
        self._last_orphan_scan = time.monotonic()
        now, now_sql = self._clock.now(), self._store.db.now_sql
        looking, resent, unconfirmed = await self._store.db.write(
            lambda conn: Outbox.recover_orphans(conn, now_sql, now, words.UNCONFIRMED_EXTRACT)
        )
        if looking or resent or unconfirmed:
            log.warning(
                "delivery: %d item(s) were left in flight by a stopped instance: %d to look for before"
                " re-sending, %d re-queued, %d extraction(s) not repeated",
                looking + resent + len(unconfirmed),
                looking,
                resent,
                len(unconfirmed),
            )
            self.wake()  # called from outside the loop too: its next wake-up may have been computed before
        for item in unconfirmed:
            if self._on_result is not None:
                self._on_result(item.kind, "failed", "unconfirmed")
            self._notices.failed(item, words.UNCONFIRMED_EXTRACT)

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
        if time.monotonic() - self._last_orphan_scan >= self._orphan_scan_seconds:
            await self.recover_orphans()
        now = self._clock.now()
        free = self._concurrency - len(self._busy)
        if free <= 0:
            return
        best: dict[str, tuple[int, str]] = {}
        for uid, kind, item_id in await self._store.outbox.due_heads(now, self.instance, self._imports_only):
            if uid in self._busy:
                continue
            if uid not in best or item_id < best[uid][0]:
                best[uid] = (item_id, kind)
        batches: list[tuple[str, list[int]]] = []
        for uid, (item_id, kind) in sorted(best.items(), key=lambda pair: pair[1][0])[:free]:
            if kind == ItemKind.MEMORIES.value:
                batches.append((uid, _memory_batch(await self._store.outbox.due_memories(uid, now)) or [item_id]))
            else:
                batches.append((uid, [item_id]))
        if not batches or self._stopping:
            return
        # One short transaction: each uid's lease, then its items. What was read above may be stale by now (an
        # attempt may have finished meanwhile, another instance may have taken the uid): the claim takes only
        # items still due, under a new attempt number that every outcome write must name.
        claimed = await self._store.db.write(lambda conn: [self._claim(conn, uid, ids, now) for uid, ids in batches])
        for lease, items in claimed:
            if lease is None or not items:
                continue
            uid = items[0].uid
            task = asyncio.create_task(self._attempt(lease, items), name=f"deliver:{items[0].id}")
            self._busy[uid] = task
            task.add_done_callback(lambda _t, uid=uid: self._finished(uid))

    def _claim(self, conn: Conn, uid: str, ids: list[int], now: float) -> tuple[Lease | None, list[OutboxItem]]:
        """In the dispatch's transaction: the uid's lease, then the items under it (none due: the lease back)."""
        lease = Leases.take(conn, self._store.db.now_sql, f"uid:{uid}", self.instance, self._lease_seconds)
        if lease is None:
            return None, []
        items = Outbox.claim(conn, ids, now, lease)
        if not items:
            Leases.release(conn, lease)
        return lease, items

    async def _attempt(self, lease: Lease, items: list[OutboxItem]) -> None:
        """One attempt under the uid's lease: renewed while the request runs, given back after."""
        renewing = asyncio.create_task(self._renew(lease), name=f"lease:{lease.name}")
        try:
            await self._attempts.run(items, lease)
        finally:
            renewing.cancel()
            await asyncio.gather(renewing, return_exceptions=True)
            try:
                await self._store.db.write(lambda conn: Leases.release(conn, lease))
            except Exception:  # the database is away: the lease expires on its own
                log.info("delivery: could not give back %s; it expires on its own", lease.name)

    async def _renew(self, lease: Lease) -> None:
        # Real time, not the bridge's clock: the lease lives on the database's clock.
        now_sql, seconds = self._store.db.now_sql, self._lease_seconds
        while True:
            await asyncio.sleep(seconds / 3)
            try:
                still = await self._store.db.write(lambda conn: Leases.renew(conn, now_sql, lease, seconds))
            except Exception:
                log.warning("delivery: renewing %s failed; trying again", lease.name)
                continue
            if not still:
                log.warning("delivery: lost %s while its request runs; its outcome will not be recorded", lease.name)
                return

    def _finished(self, uid: str) -> None:
        self._busy.pop(uid, None)
        self._progress.set()
        self.wake()

    async def _next_wakeup(self) -> float:
        now = self._clock.now()
        hold_end = await self._holds.next_end(now)
        candidates = [hold_end] if hold_end is not None else []
        due = await self._store.outbox.next_due_at(now)
        if due is not None:
            candidates.append(due)
        return min(candidates) if candidates else now + 3600.0

    async def _sleep_or_wake(self, deadline: float) -> None:
        sleeper = asyncio.create_task(self._clock.sleep_until(deadline))
        waker = asyncio.create_task(self._wake.wait())
        try:
            # Also look again after a few real seconds: other processes queue items too (`omi-bridge import`,
            # other instances), and nothing of theirs can wake this one.
            await asyncio.wait({sleeper, waker}, timeout=OUTSIDE_WRITES_SECONDS, return_when=asyncio.FIRST_COMPLETED)
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
