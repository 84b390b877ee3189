"""The bridge assembled: store, intake, processing, router, bursts, delivery — everything but the adapters."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import tzinfo
from typing import Any

from bot import texts
from bot.bursts import BurstCollector
from bot.clock import Clock
from bot.commands.context import CommandContext
from bot.commands.reads import SearchQueries
from bot.delivery import DeliveryWorker
from bot.events import InboundMessage, Platform
from bot.omi.client import OmiClient
from bot.outbound import Outbound, ReplySender
from bot.outcomes import ChatOutcomes
from bot.processing import Parser, Processor
from bot.router import Router
from bot.store import Accepted, Arrival, InboxRow, ItemKind, ItemState, NewItem, Store, mark_done

log = logging.getLogger(__name__)


class Bridge:
    """One running bridge. Adapters call `register_adapter`, then `accept` for every inbound payload."""

    def __init__(
        self,
        store: Store,
        omi: OmiClient,
        clock: Clock,
        *,
        batch_window: float = 2.0,
        concurrency: int = 32,
        sandbox_uid: str | None = None,
        on_delivery_result: Callable[[ItemKind, str], None] | None = None,
    ) -> None:
        self.store = store
        self.omi = omi
        self.clock = clock
        self.sandbox_uid = sandbox_uid
        self.outbound = Outbound()
        self.router = Router(self)
        self.bursts = BurstCollector(clock, batch_window, self.router.burst_closed)
        self.worker = DeliveryWorker(
            store, omi, clock, ChatOutcomes(self.outbound), concurrency=concurrency, on_result=on_delivery_result
        )
        self.search_queries = SearchQueries()
        self._parsers: dict[str, Parser] = {}
        self._timezones: dict[Platform, Callable[[InboundMessage], tzinfo | None]] = {}
        self.processor = Processor(self._parsers, self.router.handle, self._discard)
        self.queued_counter: Callable[[ItemKind, int], None] | None = None
        self.store.inbox.on_accepted(self.processor.submit)

    # --- adapters -----------------------------------------------------------------------------------

    def register_adapter(
        self,
        sender: ReplySender,
        parser: Parser,
        *,
        timezone: Callable[[InboundMessage], tzinfo | None] | None = None,
    ) -> None:
        self.outbound.register(sender)
        self._parsers[sender.platform.value] = parser
        if timezone is not None:
            self._timezones[sender.platform] = timezone

    async def accept(self, arrival: Arrival) -> Accepted:
        """Commit an inbound payload (group-committed with concurrent arrivals). Acknowledge only after this."""
        return await self.store.inbox.accept(arrival)

    def user_timezone(self, message: InboundMessage) -> tzinfo | None:
        lookup = self._timezones.get(message.platform)
        return lookup(message) if lookup is not None else None

    # --- life cycle ---------------------------------------------------------------------------------

    async def start(self) -> None:
        """Resume everything: deliveries left pending and accepted rows not yet processed."""
        await self.worker.start()
        self.processor.start()
        pending = await self.store.inbox.pending()
        if pending:
            log.info("bridge: replaying %d accepted message(s) not processed before the last stop", len(pending))
            self.processor.submit(pending)

    async def flush(self, timeout: float = 10.0) -> bool:
        """Process what was accepted, close open bursts and wait (≤ timeout) for deliveries: console EOF."""
        await self.processor.wait_idle()
        await self.bursts.close_all()
        return await self.worker.drain(timeout)

    async def stop(self, grace: float = 10.0) -> None:
        await self.processor.stop()
        await self.bursts.stop()
        await self.worker.stop(grace)

    # --- helpers for commands and the router --------------------------------------------------------------

    async def _discard(self, row_id: int) -> None:
        async with self.store.db.write() as conn:
            await mark_done(conn, [row_id])

    def metrics_queued(self, kind: ItemKind, count: int) -> None:
        if self.queued_counter is not None:
            self.queued_counter(kind, count)

    async def queue_write(
        self,
        ctx: CommandContext,
        *,
        kind: ItemKind,
        payload: dict[str, Any] | list[dict[str, Any]],
        summary: str,
    ) -> None:
        """Queue an Omi write for the caller's link (held while only claimed), committed with the command's row."""
        link = ctx.link or ctx.claim
        if link is None:
            ctx.reply(texts.not_linked(ctx.message.platform))
            return
        payloads = payload if isinstance(payload, list) else [payload]
        state = ItemState.PENDING if ctx.link is not None else ItemState.HELD
        items = [
            NewItem(
                account=ctx.account,
                uid=link.uid,
                kind=kind,
                payload=body,
                address=ctx.message.address(),
                summary=summary,
                state=state,
            )
            for body in payloads
        ]
        async with ctx.transaction() as conn:
            await self.store.outbox.add(conn, items, self.clock.now())
        self.metrics_queued(kind, len(items))
        self.worker.wake()
        if state is ItemState.HELD:
            ctx.reply(texts.held_until_verified(ctx.message.platform))


__all__ = ["Bridge", "InboxRow"]
