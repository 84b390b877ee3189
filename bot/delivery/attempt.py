"""One delivery attempt for the items just claimed: send them (or look for them, when their outcome is unknown),
then record what `rules` decides — guarded, so an attempt whose items moved on records and tells nothing."""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from bot.clock import Clock
from bot.delivery.looks import find_conversation, held_contents
from bot.delivery.notices import Notices
from bot.delivery.rules import (
    MAX_AGE_SECONDS,
    SECOND_LOOK_SECONDS,
    Decision,
    Tell,
    decide_look,
    decide_send,
    failed,
    internal_error,
    unreadable,
)
from bot.omi import words
from bot.omi.client import OmiClient
from bot.omi.errors import OmiError, OmiRateLimited, RateLimitScope
from bot.omi.models import NewMemories
from bot.store import ItemKind, ItemState, Outbox, OutboxItem, Store, windows
from bot.store.database import Conn
from bot.store.holds import Holds, hold_keys
from bot.store.leases import Lease

log = logging.getLogger(__name__)


class Attempts:
    def __init__(
        self,
        store: Store,
        omi: OmiClient,
        clock: Clock,
        *,
        rng: random.Random,
        notices: Notices,
        on_blocked: Callable[[str], None],
        stopped: Callable[[], bool],
        on_result: Callable[[ItemKind, str, str], None] | None = None,
    ) -> None:
        self._store = store
        self._omi = omi
        self._clock = clock
        self._rng = rng
        self._notices = notices
        self._lease: Lease | None = None
        self._on_blocked = on_blocked
        self._stopped = stopped
        self._on_result = on_result

    async def run(self, claimed: list[OutboxItem], lease: Lease | None = None) -> None:
        """One attempt for the items just claimed (one item, or one uid's explicit memories), under `lease`."""
        self._lease = lease
        items = claimed
        try:
            for item in [item for item in items if item.write is None]:
                log.warning("delivery: item %d: stored payload does not validate (%s)", item.id, item.payload_problem)
                await self._apply([item], unreadable())
            items = [item for item in items if item.write is not None]
            if not items:
                return
            head = items[0]
            # 7 days from creation; an import's item, from its first attempt (it may wait weeks behind the limit).
            since = head.first_attempt_at if head.import_id is not None and head.first_attempt_at else head.created_at
            if self._clock.now() - since > MAX_AGE_SECONDS:
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
        decision = decide_send(head.kind, head.uid, error, attempts=head.attempts, rng=self._rng)
        window = None
        if isinstance(error, OmiRateLimited) and error.scope is RateLimitScope.QUOTA and error.limit is not None:
            window = (error.limit, self._clock.now() + (error.retry_after or 0.0))  # the uid's limit, shown
        await self._apply(items, decision, window=window)

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
        window: tuple[int, float] | None = None,
        **extra: Any,
    ) -> None:
        """Record a decision for the attempt's items (guarded: only items still where their claim left them
        change), then hold, count and tell for those that did."""
        if self._stopped() or not items:
            return
        head = items[0]
        now = self._clock.now()
        retry_in = decision.retry_in
        changes: dict[str, Any] = {"attempts_delta": 1 if decision.count_attempt else 0, **extra}
        if decision.to in (ItemState.DONE, ItemState.FAILED):
            changes["finished_at"] = now
        if decision.reason:
            changes["last_error"] = decision.reason
        if decision.unknown:
            changes.update(unknown_since=now, looks_done=0)
        rewrites = {item.id: (item.kind, rewrite) for item in items} if rewrite is not None else None
        expect, lease, hold = head.state, self._lease, decision.hold
        claims = [item.claim for item in items]

        def record(conn: Conn) -> tuple[list[int], float]:
            # The hold (a 429) is shared with every instance, and set with the outcome that follows from it.
            retry_at = now if retry_in is None else now + retry_in
            if hold is not None:
                retry_at = Holds.hold(conn, ":".join(hold.key), hold.seconds, first=hold.first, cap=hold.cap, now=now)
            if decision.to not in (ItemState.DONE, ItemState.FAILED):
                changes.setdefault("next_attempt_at", retry_at)
            ids = Outbox.transition(
                conn, claims, expect=expect, to=decision.to, rewrites=rewrites, lease=lease, **changes
            )
            if ids and decision.to is ItemState.DONE:
                Holds.delivered(conn, hold_keys(head.uid, head.kind.value))
                if head.import_id is not None:
                    windows.count_import(conn, head.uid, head.kind.value, now)
            if window is not None:
                windows.learn(conn, head.uid, head.kind.value, window[0], window[1])
            return ids, retry_at

        changed_ids_list, retry_at = await self._store.db.write(record)
        changed_ids = set(changed_ids_list)
        changed = [item for item in items if item.id in changed_ids]
        if len(changed) < len(items):
            log.info(
                "delivery: %d item(s) moved on during their attempt; its outcome is not recorded",
                len(items) - len(changed),
            )
        if not changed:
            return
        if decision.to is ItemState.BLOCKED:
            self._on_blocked(head.account)
        for item in changed:
            if decision.result:
                self._count(item.kind, decision.result, decision.code)
        if decision.tell is Tell.DELIVERED:
            self._notices.delivered(changed, discarded=discarded)
        elif decision.tell is Tell.WAITING:
            self._notices.waiting(changed[0], decision.reason, changes.get("next_attempt_at", retry_at))
        elif decision.tell is Tell.FAILED:
            for item in changed:
                self._notices.failed(item, decision.reason)

    def _count(self, kind: ItemKind, result: str, reason: str = "") -> None:
        if self._on_result is not None:
            self._on_result(kind, result, reason)
