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
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from typing import Any, Protocol

from bot.clock import Clock
from bot.delivery.looks import find_conversation, held_contents
from bot.delivery.rules import (
    FIRST_LOOK_SECONDS,
    MAX_AGE_SECONDS,
    SECOND_LOOK_SECONDS,
    Decision,
    Hold,
    Tell,
    decide_look,
    decide_send,
    failed,
    internal_error,
    unreadable,
)
from bot.omi import words
from bot.omi.client import OmiClient
from bot.omi.errors import OmiError
from bot.omi.models import NewMemories
from bot.store import ItemKind, ItemState, OmiWrite, Outbox, OutboxItem, Store

log = logging.getLogger(__name__)

#: Explicit memories in one POST at most (the staged Omi implementation silently drops the rest).
MAX_MEMORIES_PER_POST = 100


class Outcomes(Protocol):
    """Where delivery results go: back to the user through the adapter that brought the message."""

    async def delivered(self, items: Sequence[OutboxItem], *, discarded: bool = False) -> None: ...

    async def waiting(self, item: OutboxItem, reason: str, retry_at: float) -> None: ...

    async def failed(self, item: OutboxItem, reason: str) -> None: ...


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
        self._omi = omi
        self._clock = clock
        self._outcomes = outcomes
        self._concurrency = concurrency
        self._rng = rng or random.Random()
        self._on_result = on_result
        self._wake = asyncio.Event()
        self._progress = asyncio.Event()
        self._busy: dict[str, asyncio.Task[None]] = {}  # uid -> its one attempt in flight
        self._telling: dict[str, asyncio.Task[None]] = {}  # account -> its latest message about outcomes
        self._holds: dict[tuple[str, ...], float] = {}  # hold key (see rules.Hold) -> until (429)
        self._hold_lengths: dict[tuple[str, ...], float] = {}  # the last hold of a key without Retry-After
        self._told_waiting: set[tuple[str, str]] = set()  # (account, reason) told once per wait
        self._blocked_accounts: set[str] = set()
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
            self._count(item.kind, "failed", "unconfirmed")
            await self._tell(item.account, self._outcomes.failed(item, words.UNCONFIRMED_EXTRACT))
        self._blocked_accounts = await self._store.outbox.blocked_accounts()
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
        in_flight = list(self._busy.values()) + list(self._telling.values())
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

    def _held(self, uid: str, kind: str, now: float) -> bool:
        keys = (("kind", uid, kind), ("uid", uid), ("key",))
        return any(self._holds.get(key, 0.0) > now for key in keys)

    async def _dispatch(self) -> None:
        now = self._clock.now()
        free = self._concurrency - len(self._busy)
        if free <= 0:
            return
        best: dict[str, tuple[int, str]] = {}
        for uid, kind, item_id in await self._store.outbox.due_heads(now):
            if uid in self._busy or self._held(uid, kind, now):
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
            task = asyncio.create_task(self._deliver(items), name=f"deliver:{items[0].id}")
            self._busy[uid] = task
            task.add_done_callback(lambda _t, uid=uid: self._finished(uid))

    def _finished(self, uid: str) -> None:
        self._busy.pop(uid, None)
        self._progress.set()
        self.wake()

    async def _next_wakeup(self) -> float:
        now = self._clock.now()
        candidates = [until for until in self._holds.values() if until > now]
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

    # --- one attempt ----------------------------------------------------------------------------------

    async def _deliver(self, claimed: list[OutboxItem]) -> None:
        """One attempt for the items just claimed (one item, or one uid's explicit memories)."""
        items = claimed
        try:
            for item in [item for item in items if item.write is None]:
                log.warning("delivery: item %d: stored payload does not validate (%s)", item.id, item.payload_problem)
                await self._apply([item], unreadable())
            items = [item for item in items if item.write is not None]
            if not items:
                return
            head = items[0]
            if self._clock.now() - head.created_at > MAX_AGE_SECONDS:
                await self._apply(items, failed(words.TOO_OLD, "too_old"))
            elif head.state is ItemState.UNKNOWN and head.kind is ItemKind.CONVERSATION:
                await self._look_for_conversation(head)
            elif head.state is ItemState.UNKNOWN:
                await self._look_for_memories(items)
            else:
                await self._send(items)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("delivery: item %d: unexpected error; retrying later", items[0].id)
            await self._apply(items, internal_error(items[0].state, items[0].attempts, self._rng))

    async def _send(self, items: list[OutboxItem]) -> None:
        head = items[0]
        error: BaseException | None = None
        try:
            await self._post(items)
        except Exception as exc:  # every outcome, Omi's or ours, is decided in one place
            if not isinstance(exc, OmiError):
                log.exception("delivery: item %d: unexpected error; retrying later", head.id)
            error = exc
        await self._apply(items, decide_send(head.kind, head.uid, error, attempts=head.attempts, rng=self._rng))

    async def _post(self, items: list[OutboxItem]) -> None:
        head = items[0]
        if head.kind is ItemKind.CONVERSATION:
            await self._omi.create_conversation(head.uid, head.conversation)
        elif head.kind is ItemKind.MEMORIES:
            memories = [memory for item in items for memory in item.memories.memories]
            spec = head.memories.text_source_spec
            await self._omi.create_memories(head.uid, NewMemories(memories=memories, text_source_spec=spec))
        else:  # EXTRACT: source_id records provenance (Omi does not dedupe on it)
            await self._omi.create_memories(
                head.uid, head.memories.model_copy(update={"source_id": f"omi-bridge:{head.id}"})
            )

    async def _look_for_conversation(self, item: OutboxItem) -> None:
        """Unknown outcome: does Omi hold this conversation already? Match on the text we sent and started_at."""
        sent = item.conversation
        started = sent.started_at or datetime.fromtimestamp(item.created_at, UTC)
        first = datetime.fromtimestamp(item.first_attempt_at or item.created_at, UTC)
        error: BaseException | None = None
        found = None
        try:
            found = await find_conversation(self._omi, item.uid, sent.text, started, first)
        except Exception as exc:
            log.info("delivery: item %d: look before re-sending failed (%s)", item.id, type(exc).__name__)
            error = exc
        decision = decide_look(
            item.kind,
            error,
            found=found is not None,
            looks_done=item.looks_done,
            attempts=item.attempts,
            rng=self._rng,
        )
        now = self._clock.now()
        if error is None and found is None and decision.to is ItemState.UNKNOWN:
            second = (item.unknown_since or now) + SECOND_LOOK_SECONDS
            await self._apply([item], decision, looks_done=1, next_attempt_at=max(second, now))
        elif error is None and found is None:
            # Not there after 10 minutes: Omi did not write it. Send again.
            await self._apply([item], decision, looks_done=2)
        else:
            await self._apply([item], decision, discarded=bool(found is not None and found.discarded))

    async def _look_for_memories(self, items: list[OutboxItem]) -> None:
        """Unknown outcome of explicit memories: drop every content Omi already holds, re-send the rest."""
        head = items[0]
        wanted = [memory for item in items for memory in item.memories.memories]
        try:
            held = await held_contents(self._omi, head.uid, wanted)
        except Exception as exc:
            log.info("delivery: item %d: look before re-sending failed (%s)", head.id, type(exc).__name__)
            decision = decide_look(head.kind, exc, found=False, looks_done=0, attempts=head.attempts, rng=self._rng)
            await self._apply(items, decision)
            return
        done = [item for item in items if all(m.content in held for m in item.memories.memories)]
        if done:
            await self._apply(done, decide_look(head.kind, None, found=True, looks_done=0, attempts=0, rng=self._rng))
        for item in items:
            if item in done:
                continue
            missing = [m for m in item.memories.memories if m.content not in held]
            rewrite = item.memories.model_copy(update={"memories": missing})
            decision = decide_look(item.kind, None, found=False, looks_done=1, attempts=item.attempts, rng=self._rng)
            await self._apply([item], decision, rewrite=rewrite)

    # --- recording and telling --------------------------------------------------------------------------

    async def _apply(
        self,
        items: list[OutboxItem],
        decision: Decision,
        *,
        discarded: bool = False,
        rewrite: NewMemories | None = None,
        **extra: Any,
    ) -> None:
        """Record a decision for the attempt's items (guarded: only items still where their claim left them
        change), then hold, count and tell for those that did."""
        if self._stopped or not items:
            return
        head = items[0]
        now = self._clock.now()
        retry_at = now if decision.retry_in is None else now + decision.retry_in
        if decision.hold is not None:
            retry_at = self._hold(decision.hold, now)
        changes: dict[str, Any] = {"attempts_delta": 1 if decision.count_attempt else 0, **extra}
        if decision.to in (ItemState.DONE, ItemState.FAILED):
            changes["finished_at"] = now
        else:
            changes.setdefault("next_attempt_at", retry_at)
        if decision.reason:
            changes["last_error"] = decision.reason
        if decision.unknown:
            changes.update(unknown_since=now, looks_done=0)
        rewrites = {item.id: (item.kind, rewrite) for item in items} if rewrite is not None else None
        expect = head.state
        claims = [item.claim for item in items]
        changed_ids = set(
            await self._store.db.write(
                lambda conn: Outbox.transition(
                    conn, claims, expect=expect, to=decision.to, rewrites=rewrites, **changes
                )
            )
        )
        changed = [item for item in items if item.id in changed_ids]
        if len(changed) < len(items):
            log.info(
                "delivery: %d item(s) moved on during their attempt; its outcome is not recorded",
                len(items) - len(changed),
            )
        if not changed:
            return
        if decision.to is ItemState.DONE and decision.hold is None:
            for key in (("kind", head.uid, head.kind.value), ("uid", head.uid), ("key",)):
                self._hold_lengths.pop(key, None)
        if decision.to is ItemState.BLOCKED:
            self._blocked_accounts.add(head.account)
        for item in changed:
            if decision.result:
                self._count(item.kind, decision.result, decision.code)
        if decision.tell is Tell.DELIVERED:
            self._told_waiting = {key for key in self._told_waiting if key[0] != head.account}
            await self._tell(head.account, self._outcomes.delivered(changed, discarded=discarded))
        elif decision.tell is Tell.WAITING:
            await self._tell_waiting(changed[0], decision.reason, changes.get("next_attempt_at", retry_at))
        elif decision.tell is Tell.FAILED:
            for item in changed:
                await self._tell(item.account, self._outcomes.failed(item, decision.reason))

    def _hold(self, hold: Hold, now: float) -> float:
        """Hold `hold.key` (a 429): until Retry-After, else for double the last such hold (from `first`)."""
        if hold.seconds is not None:
            seconds = hold.seconds
        else:
            last = self._hold_lengths.get(hold.key)
            seconds = hold.first if last is None else min(hold.cap, last * 2)
            self._hold_lengths[hold.key] = seconds
        until = now + seconds
        self._holds[hold.key] = max(until, self._holds.get(hold.key, 0.0))
        return self._holds[hold.key]

    async def _tell_waiting(self, item: OutboxItem, reason: str, retry_at: float) -> None:
        key = (item.account, reason)
        if key in self._told_waiting:
            return
        self._told_waiting.add(key)
        await self._tell(item.account, self._outcomes.waiting(item, reason, retry_at))

    async def _tell(self, account: str, awaitable: Awaitable[None]) -> None:
        """Tell the user in the background: a slow chat platform must not hold a delivery slot. Messages to one
        account keep their order (each waits for the one before)."""
        previous = self._telling.get(account)

        async def tell() -> None:
            if previous is not None:
                await asyncio.gather(previous, return_exceptions=True)
            try:
                await awaitable
            except Exception:
                log.exception("delivery: telling the user failed (the item itself is settled)")

        task = asyncio.create_task(tell(), name=f"tell:{account}")
        self._telling[account] = task
        task.add_done_callback(
            lambda done: self._telling.pop(account, None) if self._telling.get(account) is done else None
        )

    def _count(self, kind: ItemKind, result: str, reason: str = "") -> None:
        if self._on_result is not None:
            self._on_result(kind, result, reason)


def split_memories(write: OmiWrite) -> list[OmiWrite]:
    """An explicit-memories write as items of at most `MAX_MEMORIES_PER_POST` memories each."""
    if not isinstance(write, NewMemories) or len(write.memories) <= MAX_MEMORIES_PER_POST:
        return [write]
    return [
        write.model_copy(update={"memories": write.memories[start : start + MAX_MEMORIES_PER_POST]})
        for start in range(0, len(write.memories), MAX_MEMORIES_PER_POST)
    ]


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


__all__ = ["FIRST_LOOK_SECONDS", "MAX_MEMORIES_PER_POST", "DeliveryWorker", "Outcomes", "split_memories"]
