"""The bridge assembled: store, intake, processing, router, bursts, delivery — everything but the adapters."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import tzinfo

from bot import texts
from bot.bursts import Burst, BurstCollector
from bot.clock import Clock
from bot.commands.services import CommandServices
from bot.delivery import DeliveryWorker
from bot.events import InboundMessage, Platform
from bot.files import AudioSource
from bot.importing.chat import ChatImports
from bot.importing.progress import ImportProgress
from bot.importing.sources import ExportSource
from bot.instance import CLOCK_OFFSET_WARN_SECONDS, clock_offset
from bot.leasing import HeldLease
from bot.linking import Linking
from bot.metrics import Metrics
from bot.omi.client import OmiClient
from bot.omi.errors import OmiError
from bot.omi.models import Memory
from bot.outbound import Outbound, ReplySender
from bot.outcomes import ChatOutcomes
from bot.previews.burst import Fetch
from bot.processing import Parser, Processor, SessionHint
from bot.pushes.worker import PushWorker
from bot.queueing import WriteQueue
from bot.router import BurstWriter, Router
from bot.sessions import SharedSessions
from bot.store import Accepted, Arrival, InboxRow, ItemState, Outbox, RowsTaken, Store, purge_shared
from bot.store.claims import Claims
from bot.store.database import Conn
from bot.store.pushes import Pushes
from bot.store.sessions import SessionRows
from bot.store.transcripts import Transcripts
from bot.transcribe import Transcriber
from bot.transcribe.jobs import TranscriptionJobs

log = logging.getLogger(__name__)


@dataclass
class AccountSummary:
    verified: bool
    claimed: bool
    waiting: int
    memories: list[Memory] = field(default_factory=list)
    problem: str | None = None  # why memories could not be read


RETENTION_SECONDS = 7 * 24 * 3600
HELD_SECONDS = 24 * 3600
HOUSEKEEPING_SECONDS = 3600
#: Long enough for a round of housekeeping; given back when it is done.
HOUSEKEEPING_LEASE_SECONDS = 600.0


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
        metrics: Metrics | None = None,
        link_previews: Fetch | None = None,
        transcriber: Transcriber | None = None,
    ) -> None:
        self.store = store
        self.omi = omi
        self.clock = clock
        self.metrics = metrics
        self.outbound = Outbound()
        self.outcomes = ChatOutcomes(self.outbound)
        self.worker = DeliveryWorker(
            store,
            omi,
            clock,
            self.outcomes,
            concurrency=concurrency,
            on_result=metrics.delivery_result if metrics is not None else None,
        )
        self._housekeeper: asyncio.Task[None] | None = None
        self.clock_offset: float | None = None  # this machine's clock minus the database's, last measured
        self.clock_off = False
        self.wall_clock: Callable[[], float] = time.time  # this machine's clock (not the injected one)
        self.linking = Linking(store, omi, clock, self.outbound, instance=self.worker.instance)
        self.writes = WriteQueue(
            store.db, clock, self.worker.wake, on_queued=metrics.queued if metrics is not None else None
        )
        # Imports in chat (SPEC §10): offers and choices here, the progress messages by one instance at a time.
        self.import_progress = ImportProgress(store.imports, store.db, clock, self.outbound.send, self.worker.instance)
        self.imports = ChatImports(
            store.imports,
            store.links,
            clock,
            wake_delivery=self.worker.wake,
            wake_progress=self.import_progress.wake,
        )
        self._parsers: dict[str, Parser] = {}
        self.audio_sources: dict[Platform, AudioSource] = {}
        self._timezones: dict[Platform, Callable[[InboundMessage], tzinfo | None]] = {}
        self._hints: dict[str, SessionHint] = {}
        self.commands = CommandServices(
            omi=omi,
            linking=self.linking,
            writes=self.writes,
            links=store.links,
            outbox=store.outbox,
            search_queries=store.search_queries,
            timezone=self.user_timezone,
            send=self.outbound.send_all,
            wake_delivery=self.worker.wake,
            sandbox_uid=sandbox_uid,
            imports=self.imports,
            pushes=store.pushes,
            clock_now=clock.now,
        )
        # Omi → chat (SPEC §12): webhook events read back and pushed to those who asked, once each.
        self.pushes = PushWorker(
            store.pushes,
            store.links,
            omi,
            clock,
            self.outbound.send,
            self.worker.instance,
            app_id=getattr(omi, "app_id", None),
        )
        # Several instances may share a PostgreSQL database: a session's rows go to its lease holder (SPEC §13).
        # SQLite has one process per database (the worker lock): every row is this one's.
        shared = store.db.engine == "postgresql"
        self.processor = Processor(
            self._parsers,
            self._handle,
            store.inbox.complete_one,
            self._hints,
            intake_busy=store.inbox.busy,
            load_payload=store.inbox.payload,
            # Every waiting row is this instance's: a long backlog waits in the database, not in memory.
            load_rows=store.inbox.waiting_from if not shared else None,
        )
        self.sessions: SharedSessions | None = None
        if shared:
            self.sessions = SharedSessions(SessionRows(store.db), self.worker.instance, self.processor.submit)
            store.inbox.share_sessions(self.sessions.owner, self.sessions.lease_seconds)
        # TRANSCRIBE_URL set: voice messages are transcribed, one durable job each (SPEC §11).
        self.transcription: TranscriptionJobs | None = None
        if transcriber is not None:
            self.transcription = TranscriptionJobs(
                store.transcripts, transcriber, clock, self.audio_sources, self.outbound.send, self.worker.instance
            )
        self._burst_writer = BurstWriter(store.links, self.writes, self.outbound, link_previews, self.transcription)
        self.bursts = BurstCollector(
            clock,
            batch_window,
            self._burst_closed,
            behind=self.processor.behind,
            progress=self.processor.progress,
            before_close=self.sessions.before_close if self.sessions is not None else None,
            waiting=self.transcription.outstanding if self.transcription is not None else None,
        )
        self.router = Router(
            links=store.links,
            inbox=store.inbox,
            outbound=self.outbound,
            bursts=self.bursts,
            services=self.commands,
            catch_up=self.catch_up,
            unblock=self.worker.unblock,
            imports=self.imports,
            transcription=self.transcription,
        )
        self.store.inbox.on_accepted(self.sessions.submit if self.sessions is not None else self.processor.submit)

    # --- adapters -----------------------------------------------------------------------------------

    def register_adapter(
        self,
        sender: ReplySender,
        parser: Parser,
        *,
        timezone: Callable[[InboundMessage], tzinfo | None] | None = None,
        session_hint: SessionHint | None = None,
        exports: ExportSource | None = None,
        audio: AudioSource | None = None,
    ) -> None:
        """`exports`: the platform can fetch a file a user sent and read it as a history export (SPEC §10);
        `audio`: it can fetch a voice message's or audio file's bytes for transcription (SPEC §11)."""
        self.outbound.register(sender)
        if audio is not None:
            self.audio_sources[sender.platform] = audio
        if exports is not None:
            self.imports.register(sender.platform, exports)
        self._parsers[sender.platform.value] = parser
        if session_hint is not None:
            self._hints[sender.platform.value] = session_hint
        if timezone is not None:
            self._timezones[sender.platform] = timezone

    async def accept(self, arrival: Arrival) -> Accepted:
        """Commit an inbound payload (group-committed with concurrent arrivals). Acknowledge only after this."""
        accepted = await self.store.inbox.accept(arrival)
        if self.metrics is not None:
            self.metrics.received(arrival.platform)
        return accepted

    def user_timezone(self, message: InboundMessage) -> tzinfo | None:
        lookup = self._timezones.get(message.platform)
        return lookup(message) if lookup is not None else None

    # --- life cycle ---------------------------------------------------------------------------------

    async def start(self) -> None:
        """Resume everything: deliveries left pending and accepted rows not yet processed."""
        await self.housekeeping()
        await self.worker.start()
        await self.linking.start()
        self.processor.start()
        if self.sessions is not None:
            await self.sessions.look()  # sessions nobody holds (a stopped instance's) are replayed here
            self.sessions.start()
        else:
            pending = await self.store.inbox.pending()
            if pending:
                log.info("bridge: replaying %d accepted message(s) not processed before the last stop", len(pending))
                self.processor.submit(pending)
        self._housekeeper = asyncio.create_task(self._housekeeping_loop(), name="housekeeping")
        self.import_progress.start()
        self.pushes.start()

    async def housekeeping(self) -> None:
        """SPEC §9 retention: dedupe ids and finished items 7 days; unverified claims' messages 24 hours. With
        several instances, one at a time does it (the "job:housekeeping" lease); the others skip the round."""
        lease = HeldLease(self.store.db, "job:housekeeping", self.worker.instance, HOUSEKEEPING_LEASE_SECONDS)
        if self.sessions is not None and not await lease.take():
            return
        try:
            await self._housekeep()
        finally:
            if lease.held:
                await lease.release()
        await self.check_clock()

    async def check_clock(self) -> float | None:
        """This machine's clock against the database's (leases use the database's): a WARN when more than 1 s
        off, once per change. The offset in seconds, or None when the database cannot be read."""
        try:
            offset = await clock_offset(self.store.db, self.wall_clock)
        except Exception:
            return None
        off = abs(offset) > CLOCK_OFFSET_WARN_SECONDS
        if off and not self.clock_off:
            log.warning(
                "clock: this machine's clock is %+.1f s off the database's; leases follow the database's, but "
                "timestamps this instance writes are off by as much (run NTP)",
                offset,
            )
        self.clock_off = off
        self.clock_offset = offset
        return offset

    async def _housekeep(self) -> None:
        now, now_sql = self.clock.now(), self.store.db.now_sql
        await self.store.inbox.purge()

        def purge(conn: Conn) -> None:
            Outbox.purge(conn, now - RETENTION_SECONDS)
            Claims.purge(conn, now)
            purge_shared(conn, now, now_sql)
            Transcripts.purge(conn, now - HELD_SECONDS)
            Pushes.purge(conn, now - RETENTION_SECONDS)

        await self.store.db.write(purge)
        expired = await self.store.db.write(
            lambda conn: Outbox.expire_held(conn, now - HELD_SECONDS, now, "not verified within 24 hours")
        )
        if expired:
            for item in expired:
                await self.outcomes.failed(item, "your link was not verified within 24 hours, so it was discarded")

    async def _housekeeping_loop(self) -> None:
        while True:
            await self.clock.sleep_until(self.clock.now() + HOUSEKEEPING_SECONDS)
            try:
                await self.housekeeping()
            except Exception:
                log.exception("bridge: housekeeping failed; trying again in an hour")

    async def flush(self, timeout: float = 10.0) -> bool:
        """Process what was accepted, close open bursts and wait (≤ timeout) for deliveries: console EOF."""
        await self.processor.wait_idle()
        await self.bursts.close_all()
        return await self.worker.drain(timeout)

    async def stop(self, grace: float = 10.0) -> None:
        if self._housekeeper is not None:
            self._housekeeper.cancel()
            await asyncio.gather(self._housekeeper, return_exceptions=True)
            self._housekeeper = None
        await self.import_progress.stop()
        await self.pushes.stop()
        await self.processor.stop()
        await self.linking.stop()
        if self.transcription is not None:
            await self.transcription.stop()
        await self.bursts.stop()
        if self.sessions is not None:
            await self.sessions.stop()
        await self.worker.stop(grace)
        await self.store.db.barrier()  # nothing of this bridge writes after `stop` returns

    async def account_summary(self, account: str, memories: int = 5) -> AccountSummary:
        """What an account's home screen shows (Slack's App Home): link state, waiting items, recent memories."""
        verified, claim = await self.store.links.get(account)
        waiting = len(await self.store.outbox.open_for_account(account))
        summary = AccountSummary(verified=verified is not None, claimed=claim is not None, waiting=waiting)
        if verified is not None and memories:
            try:
                summary.memories = await self.omi.read_memories(verified.uid, limit=memories)
            except OmiError as exc:
                summary.problem = texts.omi_read_failed(exc)
        return summary

    # --- helpers for commands and the router --------------------------------------------------------------

    async def catch_up(self, message: InboundMessage, timeout: float = 5.0) -> None:
        """Before a read: close the user's open burst and give their due writes (≤ timeout) to reach Omi,
        so `/recent` right after pasting shows what was pasted."""
        await self.bursts.close(message.session_key)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while (remaining := deadline - loop.time()) > 0:
            now = self.clock.now()
            items = await self.store.outbox.open_for_account(message.account)
            # An import's items (SPEC §10: hundreds, sent after live ones) are not what the read waits for.
            if not any(
                item.state in (ItemState.PENDING, ItemState.SENDING)
                and item.next_attempt_at <= now
                and item.import_id is None
                for item in items
            ):
                return
            await self.worker.progress(remaining)

    async def _burst_closed(self, burst: Burst) -> None:
        try:
            await self._burst_writer.burst_closed(burst)
        except RowsTaken:
            # Another instance took the session over (this one's lease lapsed) and stored the burst first.
            log.info("bursts: a burst of %s was stored by another instance; dropped here", burst.session_key)
            if self.sessions is not None:
                self.sessions.forget(burst.row_ids)

    async def _handle(self, message: InboundMessage, row_id: int) -> None:
        await self.router.handle(message, row_id)


__all__ = ["Bridge", "InboxRow"]
