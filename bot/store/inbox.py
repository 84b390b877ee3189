"""Intake: accepting a platform payload is a commit, and concurrent arrivals share one (group commit)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from bot.clock import Clock
from bot.store.database import Conn, Database

log = logging.getLogger(__name__)

DEDUPE_TTL_SECONDS = 7 * 24 * 3600


@dataclass(frozen=True, slots=True)
class Arrival:
    """A platform payload to accept. Any of `dedupe_keys` seen in the last 7 days makes it a duplicate."""

    platform: str
    kind: str
    payload: str
    dedupe_keys: tuple[str, ...] = ()
    #: Whose it is, when the adapter already knows (see `bot.processing.SessionHint`); not stored.
    session: str | None = None


@dataclass(frozen=True, slots=True)
class InboxRow:
    id: int
    platform: str
    kind: str
    payload: str
    received_at: float
    session: str | None = None  # from the Arrival; None for rows read back from the database


@dataclass(frozen=True, slots=True)
class Accepted:
    row: InboxRow | None  # None: a duplicate, already accepted before

    @property
    def duplicate(self) -> bool:
        return self.row is None


AcceptedListener = Callable[[Sequence[InboxRow]], None]


class Inbox:
    """`accept()` returns only after the arrival is committed (or found to be a duplicate). Concurrent arrivals
    share commits: `Database.write` groups them."""

    def __init__(self, db: Database, clock: Clock) -> None:
        self._db = db
        self._clock = clock
        self._listeners: list[AcceptedListener] = []
        self._in_flight = 0
        self._last_arrival = float("-inf")

    def on_accepted(self, listener: AcceptedListener) -> None:
        """Called with each accepted row before `accept()` returns."""
        self._listeners.append(listener)

    def busy(self, within: float = 0.05) -> bool:
        """Is anything being accepted, or did something arrive in the last `within` seconds?"""
        return self._in_flight > 0 or asyncio.get_running_loop().time() - self._last_arrival < within

    async def accept(self, arrival: Arrival) -> Accepted:
        self._last_arrival = asyncio.get_running_loop().time()
        now = self._clock.now()
        self._in_flight += 1
        try:
            row_id = await self._db.write(lambda conn: _insert(conn, arrival, now))
        finally:
            self._in_flight -= 1
        if row_id is None:
            return Accepted(None)
        row = InboxRow(row_id, arrival.platform, arrival.kind, arrival.payload, now, arrival.session)
        # Listeners first: by the time `accept()` returns, processing has the row.
        for listener in self._listeners:
            try:
                listener([row])
            except Exception:
                log.exception("intake: listener failed (the row stays queued for the next start)")
        return Accepted(row)

    # --- processing side ----------------------------------------------------------------------------

    async def pending(self) -> list[InboxRow]:
        """Everything accepted but not yet done, oldest first: replayed at start."""
        rows = await self._db.fetchall(
            "SELECT id, platform, kind, payload, received_at FROM inbox WHERE state = 'new' ORDER BY id"
        )
        return [InboxRow(r["id"], r["platform"], r["kind"], r["payload"] or "", r["received_at"]) for r in rows]

    async def complete(self, row_ids: Sequence[int]) -> None:
        """Mark rows done in a transaction of their own: for rows that caused nothing to store (a reply only)."""
        if row_ids:
            await self._db.write(lambda conn: mark_done(conn, row_ids))

    async def complete_one(self, row_id: int) -> None:
        """`complete` for one row (what processing does with a row that holds nothing usable)."""
        await self.complete((row_id,))

    async def pending_count(self) -> int:
        row = await self._db.fetchone("SELECT COUNT(*) AS n FROM inbox WHERE state = 'new'")
        return int(row["n"]) if row else 0

    async def purge(self) -> None:
        """Drop expired dedupe keys and finished rows (their payloads are already gone)."""
        now = self._clock.now()

        def purge(conn: Conn) -> None:
            conn.execute("DELETE FROM dedupe WHERE expires_at < ?", (now,))
            conn.execute("DELETE FROM inbox WHERE state = 'done'")

        await self._db.write(purge)


def mark_done(conn: Conn, row_ids: Sequence[int]) -> None:
    """Inside the caller's transaction, with the effects of these rows: replay then skips them."""
    if row_ids:
        conn.executemany(
            "UPDATE inbox SET state = 'done', payload = NULL WHERE id = ?", [(row_id,) for row_id in row_ids]
        )


def _insert(conn: Conn, arrival: Arrival, now: float) -> int | None:
    """The row id, or None when any of the arrival's dedupe keys was seen before (a duplicate)."""
    keys = set(arrival.dedupe_keys)
    if keys:
        values = ",".join("(?, ?)" for _ in keys)
        params: list[object] = []
        for key in keys:
            params += [key, now + DEDUPE_TTL_SECONDS]
        sql = f"INSERT INTO dedupe (key, expires_at) VALUES {values} ON CONFLICT (key) DO NOTHING RETURNING key"  # noqa: S608
        if len(conn.execute(sql, params).fetchall()) < len(keys):
            return None
    return conn.execute(
        "INSERT INTO inbox (platform, kind, payload, received_at) VALUES (?, ?, ?, ?) RETURNING id",
        (arrival.platform, arrival.kind, arrival.payload, now),
    ).fetchone()[0]
