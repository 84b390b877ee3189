"""The delivery worker: takes outbox items to Omi by the rules of SPEC §7.

- A uid's items go one at a time, oldest due first; an item waiting on its own retry time does not hold back
  newer ones. Different uids go in parallel, up to `concurrency` requests.
- Explicit memories of one uid travel in one POST.
- 429 holds that (uid, kind) until `Retry-After` (else 1 s, doubling). 5xx and network errors before sending back
  off exponentially with jitter from 1 s to 10 min.
- Unknown outcome (504, timeout, connection lost after sending, crash mid-request): a conversation may exist, so
  look at 2 min and again at 10 min before re-sending. Memory writes are idempotent in Omi and are simply re-sent.
- 403 "App is not enabled" blocks (hourly retries, or the user's next message / `/status`) for 7 days; other
  4xx fail for good, as does anything 7 days old or failed 20 times.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Protocol

from bot.clock import Clock
from bot.omi.client import OmiClient
from bot.omi.errors import (
    ForbiddenReason,
    OmiError,
    OmiForbidden,
    OmiRateLimited,
    OmiServerError,
    OmiUnknownOutcome,
)
from bot.omi.models import Conversation, NewMemories
from bot.store import ItemKind, ItemState, Outbox, OutboxItem, Store

log = logging.getLogger(__name__)

MAX_AGE_SECONDS = 7 * 24 * 3600
MAX_ATTEMPTS = 20
BACKOFF_BASE_SECONDS = 1.0
BACKOFF_CAP_SECONDS = 600.0
FIRST_LOOK_SECONDS = 120.0
SECOND_LOOK_SECONDS = 600.0
BLOCKED_RETRY_SECONDS = 3600.0
#: Explicit-memory items combined into one POST at most.
MAX_BATCH_ITEMS = 100
#: How far around `started_at` the look-before-resend reads (created_at = started_at in Omi).
LOOK_WINDOW = timedelta(minutes=1)


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
        self._busy: dict[str, asyncio.Task[None]] = {}  # uid -> its one request in flight
        self._telling: dict[str, asyncio.Task[None]] = {}  # account -> its latest message about outcomes
        self._holds: dict[tuple[str, str], float] = {}  # (uid, kind) -> until (429)
        self._hold_backoff: dict[tuple[str, str], float] = {}
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
        conversations, others = await self._store.db.write(lambda conn: Outbox.recover_after_crash(conn, now))
        if conversations or others:
            log.warning(
                "delivery: %d conversation(s) were in flight at the last stop (looking before re-sending),"
                " %d other item(s) re-queued",
                conversations,
                others,
            )
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
        heads = await self._store.outbox.due_heads(now)
        best: dict[str, tuple[int, str]] = {}
        for uid, kind, item_id in heads:
            if uid in self._busy or self._holds.get((uid, kind), 0.0) > now:
                continue
            if uid not in best or item_id < best[uid][0]:
                best[uid] = (item_id, kind)
        batches: list[list[int]] = []
        for uid, (item_id, kind) in sorted(best.items(), key=lambda pair: pair[1][0])[:free]:
            ids = [item_id]
            if kind == ItemKind.MEMORIES.value:
                more = await self._store.outbox.due_memory_ids(uid, now, MAX_BATCH_ITEMS)
                ids = sorted({item_id, *more})[:MAX_BATCH_ITEMS]
            batches.append(ids)
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

    async def progress(self, timeout: float) -> None:
        """Wait (at most `timeout`) until some delivery finishes."""
        self._progress.clear()
        try:
            await asyncio.wait_for(self._progress.wait(), timeout)
        except TimeoutError:
            pass

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

    # --- one delivery ---------------------------------------------------------------------------------

    async def _deliver(self, claimed: list[OutboxItem]) -> None:
        """One attempt for the items just claimed (one item, or one uid's explicit memories)."""
        items = claimed
        try:
            now = self._clock.now()
            unreadable = [item for item in items if item.write is None]
            for item in unreadable:
                log.warning("delivery: item %d: stored payload does not validate (%s)", item.id, item.payload_problem)
                await self._fail([item], "the bridge could not read its stored copy", "invalid_payload")
            items = [item for item in items if item.write is not None]
            if not items:
                return
            head = items[0]
            if now - head.created_at > MAX_AGE_SECONDS:
                await self._fail(items, "it could not be delivered for 7 days", "too_old")
            elif head.state is ItemState.UNKNOWN:
                await self._look(head)
            else:
                await self._send(items)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("delivery: item %d: unexpected error; retrying later", items[0].id)
            await self._retry_later(items, "an internal error", count_attempt=True)

    async def _send(self, items: list[OutboxItem]) -> None:
        head = items[0]
        try:
            await self._post(items)
        except OmiRateLimited as exc:
            key = (head.uid, head.kind.value)
            delay = exc.retry_after
            if delay is None:
                delay = self._hold_backoff.get(key, 0.5) * 2
                self._hold_backoff[key] = delay
            until = self._clock.now() + max(delay, 0.0)
            self._holds[key] = until
            await self._requeue(items, until, "Omi's rate limit", count_attempt=False)
        except OmiUnknownOutcome as exc:
            if head.kind is ItemKind.CONVERSATION:
                now = self._clock.now()
                changed = await self._record(
                    items,
                    ItemState.UNKNOWN,
                    unknown_since=now,
                    looks_done=0,
                    next_attempt_at=now + FIRST_LOOK_SECONDS,
                    attempts_delta=1,
                    last_error=f"unknown outcome ({type(exc).__name__})",
                )
                if changed:
                    self._count(head.kind, "unknown")
            else:
                await self._retry_later(items, "Omi did not answer in time", count_attempt=True)
        except OmiServerError:
            await self._retry_later(items, "Omi is unavailable", count_attempt=True)
        except OmiForbidden as exc:
            if exc.reason is ForbiddenReason.NOT_ENABLED:
                await self._block(items)
            else:
                await self._fail(items, _plain_reason(exc), f"forbidden_{exc.reason.value}")
        except OmiError as exc:
            await self._fail(items, _plain_reason(exc), f"http_{exc.status or 'error'}")
        else:
            self._hold_backoff.pop((head.uid, head.kind.value), None)
            await self._succeed(items)

    async def _post(self, items: list[OutboxItem]) -> None:
        head = items[0]
        if head.kind is ItemKind.CONVERSATION:
            await self._omi.create_conversation(head.uid, head.conversation)
        elif head.kind is ItemKind.MEMORIES:
            memories = [memory for item in items for memory in item.memories.memories]
            spec = head.memories.text_source_spec
            await self._omi.create_memories(head.uid, NewMemories(memories=memories, text_source_spec=spec))
        else:  # EXTRACT: source_id records provenance
            await self._omi.create_memories(
                head.uid, head.memories.model_copy(update={"source_id": f"omi-bridge:{head.id}"})
            )

    async def _look(self, item: OutboxItem) -> None:
        """Unknown outcome: does Omi hold this conversation already? Match on the text we sent and started_at."""
        sent = item.conversation
        started = sent.started_at or datetime.fromtimestamp(item.created_at, UTC)
        try:
            found = await self._find_conversation(item.uid, sent.text, started)
        except OmiForbidden as exc:
            if exc.reason is ForbiddenReason.MISSING_CAPABILITY:
                await self._fail(
                    [item],
                    "Omi did not confirm it and this bridge cannot read conversations to check, so it may not be"
                    " saved; re-send it if it is missing in Omi",
                    "unconfirmed",
                )
            elif exc.reason is ForbiddenReason.NOT_ENABLED:
                await self._block([item])
            else:
                await self._fail([item], _plain_reason(exc))
            return
        except OmiError as exc:
            await self._retry_later([item], "Omi is unavailable", count_attempt=True, keep_state=ItemState.UNKNOWN)
            log.info("delivery: item %d: look before re-sending failed (%s)", item.id, type(exc).__name__)
            return
        if found is not None:
            await self._succeed([item], discarded=found.discarded)
            return
        looks = item.looks_done + 1
        now = self._clock.now()
        if looks == 1:
            second = (item.unknown_since or now) + SECOND_LOOK_SECONDS
            await self._record([item], ItemState.UNKNOWN, looks_done=1, next_attempt_at=max(second, now))
        else:
            # Not there after 10 minutes: Omi did not write it. Send again.
            await self._record([item], ItemState.PENDING, looks_done=2, next_attempt_at=now)

    async def _find_conversation(self, uid: str, text: str, started_at: datetime) -> Conversation | None:
        offset = 0
        while True:
            page = await self._omi.read_conversations(
                uid,
                limit=100,
                offset=offset,
                include_discarded=True,
                start_date=started_at - LOOK_WINDOW,
                end_date=started_at + LOOK_WINDOW,
            )
            for conversation in page:
                if conversation.external_text == text and _same_moment(conversation.started_at, started_at):
                    return conversation
            if not page:
                return None
            offset += len(page)

    # --- outcomes -------------------------------------------------------------------------------------

    async def _record(self, items: list[OutboxItem], to: ItemState, **changes: float | int | str) -> list[OutboxItem]:
        """The attempt's outcome for its claimed items, guarded: each changes only if it is still in the state it
        was claimed in, under the same attempt number. Returns the items that changed; for the others (moved on:
        a restart recovered them, or they were settled elsewhere) nothing is recorded and nobody is told."""
        if self._stopped or not items:
            return []
        expect = items[0].state
        claims = [item.claim for item in items]
        changed = set(
            await self._store.db.write(
                lambda conn: Outbox.transition(conn, claims, expect=expect, to=to, **changes)  # type: ignore[arg-type]
            )
        )
        if len(changed) < len(items):
            log.info(
                "delivery: %d item(s) moved on during their attempt; its outcome is not recorded",
                len(items) - len(changed),
            )
        return [item for item in items if item.id in changed]

    async def _succeed(self, items: list[OutboxItem], *, discarded: bool = False) -> None:
        items = await self._record(items, ItemState.DONE, finished_at=self._clock.now())
        if not items:
            return
        for item in items:
            self._told_waiting = {key for key in self._told_waiting if key[0] != item.account}
            self._count(item.kind, "delivered")
        await self._tell(items[0].account, self._outcomes.delivered(items, discarded=discarded))

    async def _requeue(self, items: list[OutboxItem], retry_at: float, reason: str, *, count_attempt: bool) -> None:
        items = await self._record(
            items,
            ItemState.PENDING,
            next_attempt_at=retry_at,
            attempts_delta=1 if count_attempt else 0,
            last_error=reason,
        )
        if items:
            await self._tell_waiting(items[0], reason, retry_at)

    async def _retry_later(
        self,
        items: list[OutboxItem],
        reason: str,
        *,
        count_attempt: bool,
        keep_state: ItemState = ItemState.PENDING,
    ) -> None:
        head = items[0]
        attempts = head.attempts + (1 if count_attempt else 0)
        if attempts >= MAX_ATTEMPTS:
            await self._fail(
                items,
                f"{reason}, and it failed {attempts} times",
                "too_many_attempts",
                attempts_delta=attempts - head.attempts,
            )
            return
        delay = min(BACKOFF_CAP_SECONDS, BACKOFF_BASE_SECONDS * 2 ** max(attempts - 1, 0))
        retry_at = self._clock.now() + delay * self._rng.uniform(0.5, 1.0)
        items = await self._record(
            items,
            keep_state,
            next_attempt_at=retry_at,
            attempts_delta=1 if count_attempt else 0,
            last_error=reason,
        )
        if items:
            await self._tell_waiting(items[0], reason, retry_at)

    async def _block(self, items: list[OutboxItem]) -> None:
        retry_at = self._clock.now() + BLOCKED_RETRY_SECONDS
        items = await self._record(
            items,
            ItemState.BLOCKED,
            next_attempt_at=retry_at,
            last_error="the Omi app is not enabled for this account",
        )
        if not items:
            return
        self._blocked_accounts.add(items[0].account)
        await self._tell_waiting(items[0], "the omi-bridge app is not enabled in your Omi app", retry_at)

    async def _fail(
        self, items: list[OutboxItem], reason: str, code: str = "rejected", *, attempts_delta: int = 0
    ) -> None:
        items = await self._record(
            items, ItemState.FAILED, last_error=reason, finished_at=self._clock.now(), attempts_delta=attempts_delta
        )
        for item in items:
            self._count(item.kind, "failed", code)
            await self._tell(item.account, self._outcomes.failed(item, reason))

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


def _same_moment(found: datetime | None, sent: datetime) -> bool:
    if found is None:
        return False
    if found.tzinfo is None:
        found = found.replace(tzinfo=UTC)
    if sent.tzinfo is None:
        sent = sent.replace(tzinfo=UTC)
    return abs((found - sent).total_seconds()) < 0.002


def _plain_reason(exc: OmiError) -> str:
    """What a user is told when Omi refuses for good."""
    if isinstance(exc, OmiForbidden):
        return {
            ForbiddenReason.BAD_KEY: "the bridge's Omi key was refused (the operator must fix OMI_API_KEY)",
            ForbiddenReason.MISSING_CAPABILITY: "the Omi app is not allowed to do this (missing capability)",
        }.get(exc.reason, f"Omi refused it ({exc})")
    if exc.status == 401:
        return "the bridge is not authorised with Omi (the operator must fix OMI_API_KEY)"
    if exc.status == 404:
        return "Omi does not know this app (the operator must check OMI_APP_ID)"
    if exc.status in (400, 422):
        return f"Omi rejected the content ({exc})"
    return f"Omi refused it ({exc})"
