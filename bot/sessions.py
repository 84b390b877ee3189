"""Sessions across instances (SPEC §13): a session's messages collect in the database, and the instance holding the
session's lease handles them — so a burst that arrived over three instances is still one conversation.

How a row finds its handler: the instance that accepts it takes (or extends) the session's lease in the same
transaction (`Inbox.share_sessions`); if it got the lease it handles the row at once, otherwise the holder finds the
row at its next look (every `LOOK_SECONDS`) and before it closes the session's burst. A holder renews its leases
while rows wait and gives idle ones back; when it dies, its leases expire and another instance takes the sessions
over (`take_orphans`), replaying their waiting rows and closing their bursts. Two instances never both store what a
row caused: marking rows done checks they were still waiting (`RowsTaken`), so the later commit is undone."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable, Sequence

from bot.store.inbox import InboxRow
from bot.store.sessions import SessionRows

log = logging.getLogger(__name__)

#: A session lease lasts this long unless renewed: how late a dead holder's bursts close, at most (plus a look).
SESSION_LEASE_SECONDS = 6.0
RENEW_SECONDS = 2.0
#: How often the holder looks for its sessions' rows accepted elsewhere, and for sessions nobody holds.
LOOK_SECONDS = 0.25
#: A row handed to processing is not handed again while it waits; after this long the memory of it may go.
FORGET_AFTER_SECONDS = 120.0


class SharedSessions:
    def __init__(
        self,
        rows: SessionRows,
        owner: str,
        submit: Callable[[Sequence[InboxRow]], None],
        *,
        lease_seconds: float = SESSION_LEASE_SECONDS,
        look_seconds: float = LOOK_SECONDS,
    ) -> None:
        self._rows = rows
        self.owner = owner
        self._submit = submit
        self.lease_seconds = lease_seconds
        self._look_seconds = look_seconds
        self._submitted: dict[int, float] = {}  # row id -> when handed to processing (monotonic)
        self._task: asyncio.Task[None] | None = None
        self._renewed = float("-inf")
        self._failing = False

    def submit(self, rows: Sequence[InboxRow]) -> None:
        """Hand rows to processing, each once (the inbox's listener for rows accepted here, and the looks)."""
        now = time.monotonic()
        fresh = [row for row in rows if row.id not in self._submitted]
        for row in fresh:
            self._submitted[row.id] = now
        if fresh:
            self._submit(fresh)

    def forget(self, row_ids: Iterable[int]) -> None:
        """These rows' handling was undone (another instance got there first): those still waiting and still
        ours are handed again at the next look."""
        for row_id in row_ids:
            self._submitted.pop(row_id, None)

    async def before_close(self, session: str, deadline: float) -> bool:
        """Before a burst closes: rows of its session received by `deadline` on other instances join it. True when
        some were found (the burst then waits for them to be processed)."""
        rows = [row for row in await self._rows.waiting(session, deadline) if row.id not in self._submitted]
        self.submit(rows)
        return bool(rows)

    async def look(self) -> None:
        """One round: renew our leases (now and then), take sessions nobody holds, hand over our sessions' rows."""
        now = time.monotonic()
        if now - self._renewed >= RENEW_SECONDS:
            await self._rows.renew(self.owner, self.lease_seconds)
            await self.release_idle()
            self._renewed = now
        taken = await self._rows.take_orphans(self.owner, self.lease_seconds)
        if taken:
            log.info("sessions: took over %d session(s) with waiting messages (their instance stopped or died)", taken)
        ours = await self._rows.ours(self.owner)
        self.submit(ours)
        waiting = {row.id for row in ours}
        for row_id, since in list(self._submitted.items()):
            if row_id not in waiting and now - since > FORGET_AFTER_SECONDS:
                del self._submitted[row_id]

    async def release_idle(self) -> None:
        """Give back our session leases that have nothing waiting (also done every `RENEW_SECONDS`)."""
        await self._rows.release_idle(self.owner)

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="sessions")

    async def stop(self) -> None:
        """Stop looking and give every session lease back: another instance takes the waiting rows over at once."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        try:
            await self._rows.release_all(self.owner)
        except Exception as exc:  # the database is gone: the leases expire by themselves
            log.warning(
                "sessions: could not give session leases back (%s); they expire in %.0f s", exc, self.lease_seconds
            )

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._look_seconds)  # real time: other instances' rows arrive on real time
            try:
                await self.look()
                self._failing = False
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if not self._failing:
                    log.warning("sessions: looking for waiting messages failed (%s); trying again", type(exc).__name__)
                self._failing = True
