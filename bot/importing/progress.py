"""The progress messages of in-chat imports (SPEC §10): one message per import, edited in place as delivery goes —
edits at least 10 s apart, never the same text twice — ending "Imported 87/87" (and the failures, if any).

Decisions:
- **Everything it needs is in the database** (migration 10: which message, what it shows, since when, whether
  that is its last word), so the job survives restarts and runs the same on any instance.
- **One instance at a time** edits: every `LOOK_SECONDS`, while any import has a progress message with more to
  say, each instance tries the "job:import-progress" lease and only its holder does the round (a dead holder's
  lease expires and another takes over). What a message shows is recorded *before* it is edited, compare-and-set
  on what it showed: of two rounds that overlap anyway, one edits.
- **Idle when there is nothing to show**: a look at start (what a restart left showing), then every
  `ELSEWHERE_SECONDS` real seconds (imports another instance started, a dead holder's to take over) or hourly on
  the clock (offers to expire) — and `LOOK_SECONDS` after an import starts or is cancelled on this instance
  (`wake`). An idle look only reads: no lease is taken while there is nothing to show.
- An edit Telegram refuses is not tried again (the adapter logs it; /status shows the same numbers).
- The same round drops offers left unchosen for `OFFER_SECONDS`."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import replace

from bot import texts
from bot.clock import Clock
from bot.events import Reply
from bot.leasing import HeldLease
from bot.store.database import Database
from bot.store.imports import ImportRecord, Imports, ImportState

log = logging.getLogger(__name__)

#: SPEC §10: a progress message is edited at most every 10 s.
LOOK_SECONDS = 10.0
LEASE_NAME = "job:import-progress"
#: Renewed every round; a dead holder's rounds are taken over this long after its last.
LEASE_SECONDS = 30.0
#: With nothing to show, how often an instance looks anyway: on the clock, and in real seconds (nothing of another
#: instance's can wake this one; like the delivery worker's look for outside writes).
IDLE_SECONDS = 3600.0
ELSEWHERE_SECONDS = 60.0
#: An offer nobody chose is dropped after a day (its staged items go).
OFFER_SECONDS = 24 * 3600.0


class ImportProgress:
    def __init__(
        self,
        imports: Imports,
        db: Database,
        clock: Clock,
        send: Callable[[Reply], Awaitable[None]],
        instance: str,
    ) -> None:
        self._imports = imports
        self._clock = clock
        self._send = send
        # Leases are on the database's clock (real seconds); on the test-only time scale they shrink with it.
        self._lease = HeldLease(db, LEASE_NAME, instance, LEASE_SECONDS / clock.scale)
        self._task: asyncio.Task[None] | None = None
        self._woken = asyncio.Event()
        #: Set after every round of the loop, which began at `last_look` (tests wait on them after moving the
        #: manual clock).
        self.looked = asyncio.Event()
        self.last_look = float("-inf")

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="import-progress")

    def wake(self) -> None:
        """An import started (or was cancelled) here: look every `LOOK_SECONDS` from now."""
        self._woken.set()

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        try:
            await self._lease.release()
        except Exception as exc:  # the database is gone: the lease expires by itself
            log.info("imports: could not give the progress lease back (%s)", exc)

    async def _run(self) -> None:
        next_at = self._clock.now()  # at once: what a restart left showing
        busy = True
        while True:
            if await self._sleep(next_at, None if busy else ELSEWHERE_SECONDS):
                next_at, busy = min(next_at, self._clock.now() + LOOK_SECONDS), True
                continue
            started = self._clock.now()
            busy = True
            try:
                busy = await self.round() is not None
            except Exception:
                log.exception("imports: a progress round failed; trying again in %.0f s", LOOK_SECONDS)
            self.last_look = started
            self.looked.set()
            # From the round's start: a slow round does not stretch the rhythm.
            next_at = started + (LOOK_SECONDS if busy else IDLE_SECONDS)

    async def _sleep(self, deadline: float, real_seconds: float | None) -> bool:
        """Until `deadline` (or `real_seconds` have passed); True when woken before."""
        if self._woken.is_set():
            self._woken.clear()
            return True
        sleeping = asyncio.ensure_future(self._clock.sleep_until(deadline))
        woken = asyncio.ensure_future(self._woken.wait())
        try:
            await asyncio.wait((sleeping, woken), timeout=real_seconds, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiting in (sleeping, woken):
                waiting.cancel()
        if self._woken.is_set():
            self._woken.clear()
            return True
        return False

    async def round(self) -> bool | None:
        """One look at every import with a progress message (and at offers to expire): True when this instance did
        it, False when another holds the job, None when there was nothing to do (no lease taken)."""
        now = self._clock.now()
        expired = await self._imports.offers(before=now - OFFER_SECONDS)
        showing = await self._imports.showing()
        if not expired and not showing:
            return None
        if not await self._lease.take():
            return False
        for record in expired:
            await self._imports.decline(record.id, record.account, now)
        for record in showing:
            await self._show(record, now)
        return True

    async def _show(self, record: ImportRecord, now: float) -> None:
        if record.address is None or record.progress_message_id is None:
            return
        text, final = await self._text(record)
        if text == record.progress_text:
            if final:  # nothing new to show, ever: stop looking at it
                await self._imports.shown(record.id, before=text, text=text, now=record.progress_at or now, final=True)
            return
        if record.progress_at is not None and now - record.progress_at < LOOK_SECONDS:
            return
        if not await self._imports.shown(record.id, before=record.progress_text, text=text, now=now, final=final):
            return  # another round showed something first
        address = replace(record.address, message_id=record.progress_message_id)
        await self._send(Reply(address, text=text, edit=True))

    async def _text(self, record: ImportRecord) -> tuple[str, bool]:
        """What the message should show now, and whether that is its last word."""
        if record.state is ImportState.CANCELLED:
            return texts.import_stopped(record.chat_name), True
        progress = await self._imports.progress(record.id)
        if progress.finished or not await self._imports.open_items(record.id):
            failures = await self._imports.failures(record.id)
            return texts.import_finished(record.chat_name, progress.delivered, progress.total, failures), True
        return texts.import_progress(record.chat_name, progress.delivered, progress.total, progress.failed), False
