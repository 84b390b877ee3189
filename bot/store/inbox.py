"""Intake: accepting a platform payload is a commit, and concurrent arrivals share one (group commit)."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from bot.clock import Clock
from bot.store.database import Database, DatabaseUnavailable

log = logging.getLogger(__name__)

DEDUPE_TTL_SECONDS = 7 * 24 * 3600
#: Arrivals per commit at most; SQLite allows 32,766 bound parameters per statement.
MAX_BATCH = 500


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


AcceptedListener = Callable[[Sequence[InboxRow]], Awaitable[None] | None]


class Inbox:
    """`accept()` returns only after the arrival is committed (or found to be a duplicate)."""

    def __init__(self, db: Database, clock: Clock) -> None:
        self._db = db
        self._clock = clock
        self._waiting: list[tuple[Arrival, asyncio.Future[Accepted]]] = []
        self._wakeup = asyncio.Event()
        self._writer: asyncio.Task[None] | None = None
        self._listeners: list[AcceptedListener] = []
        self._last_arrival = float("-inf")

    def on_accepted(self, listener: AcceptedListener) -> None:
        """Called after each commit with the rows it accepted, in order."""
        self._listeners.append(listener)

    def busy(self, within: float = 0.05) -> bool:
        """Has anything arrived in the last `within` seconds (or is waiting to be committed)?"""
        return bool(self._waiting) or asyncio.get_running_loop().time() - self._last_arrival < within

    async def accept(self, arrival: Arrival) -> Accepted:
        self._last_arrival = asyncio.get_running_loop().time()
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write_loop(), name="inbox-group-commit")
        future: asyncio.Future[Accepted] = asyncio.get_running_loop().create_future()
        self._waiting.append((arrival, future))
        self._wakeup.set()
        return await future

    async def close(self) -> None:
        if self._writer is not None:
            self._writer.cancel()
            try:
                await self._writer
            except asyncio.CancelledError:
                pass
            self._writer = None
        for _, future in self._waiting:
            if not future.done():
                future.set_exception(DatabaseUnavailable("shutting down"))
        self._waiting.clear()

    async def _write_loop(self) -> None:
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            while self._waiting:
                batch, self._waiting = self._waiting[:MAX_BATCH], self._waiting[MAX_BATCH:]
                try:
                    results = await self._commit([arrival for arrival, _ in batch])
                except Exception as exc:
                    log.error("intake: commit failed: %s", exc)
                    error = exc if isinstance(exc, DatabaseUnavailable) else DatabaseUnavailable(str(exc))
                    for _, future in batch:
                        if not future.done():
                            future.set_exception(error)
                    continue
                # Listeners first: by the time `accept()` returns, processing has the row.
                rows = [result.row for result in results if result.row is not None]
                if rows:
                    await self._notify(rows)
                for (_, future), result in zip(batch, results, strict=True):
                    if not future.done():
                        future.set_result(result)

    async def _notify(self, rows: list[InboxRow]) -> None:
        for listener in self._listeners:
            try:
                outcome = listener(rows)
                if asyncio.iscoroutine(outcome):
                    await outcome
            except Exception:
                log.exception("intake: listener failed (rows stay queued for the next start)")

    async def _commit(self, arrivals: list[Arrival]) -> list[Accepted]:
        now = self._clock.now()
        # Within one batch the first arrival carrying a key wins; the database decides across batches.
        claimed: set[str] = set()
        candidates: list[int] = []
        for index, arrival in enumerate(arrivals):
            if any(key in claimed for key in arrival.dedupe_keys):
                continue
            claimed.update(arrival.dedupe_keys)
            candidates.append(index)
        keys = sorted(claimed)

        def commit(conn: sqlite3.Connection) -> tuple[list[int], list[int]]:
            fresh_keys = _insert_keys(conn, keys, now + DEDUPE_TTL_SECONDS)
            fresh = [i for i in candidates if all(key in fresh_keys for key in arrivals[i].dedupe_keys)]
            return fresh, _insert_rows(conn, [arrivals[i] for i in fresh], now)

        fresh, ids = await self._db.write(commit)
        results = [Accepted(None)] * len(arrivals)
        for index, row_id in zip(fresh, ids, strict=True):
            arrival = arrivals[index]
            results[index] = Accepted(
                InboxRow(row_id, arrival.platform, arrival.kind, arrival.payload, now, arrival.session)
            )
        return results

    # --- processing side ----------------------------------------------------------------------------

    async def pending(self) -> list[InboxRow]:
        """Everything accepted but not yet done, oldest first: replayed at start."""
        rows = await self._db.fetchall(
            "SELECT id, platform, kind, payload, received_at FROM inbox WHERE state = 'new' ORDER BY id"
        )
        return [InboxRow(r["id"], r["platform"], r["kind"], r["payload"] or "", r["received_at"]) for r in rows]

    async def pending_count(self) -> int:
        row = await self._db.fetchone("SELECT COUNT(*) AS n FROM inbox WHERE state = 'new'")
        return int(row["n"]) if row else 0

    async def purge(self) -> None:
        """Drop expired dedupe keys and finished rows (their payloads are already gone)."""
        now = self._clock.now()

        def purge(conn: sqlite3.Connection) -> None:
            conn.execute("DELETE FROM dedupe WHERE expires_at < ?", (now,))
            conn.execute("DELETE FROM inbox WHERE state = 'done'")

        await self._db.write(purge)


def mark_done(conn: sqlite3.Connection, row_ids: Sequence[int]) -> None:
    """Inside the caller's transaction, with the effects of these rows: replay then skips them."""
    if row_ids:
        conn.executemany(
            "UPDATE inbox SET state = 'done', payload = NULL WHERE id = ?", [(row_id,) for row_id in row_ids]
        )


def _insert_keys(conn: sqlite3.Connection, keys: list[str], expires_at: float) -> set[str]:
    if not keys:
        return set()
    values = ",".join("(?, ?)" for _ in keys)
    params: list[object] = []
    for key in keys:
        params += [key, expires_at]
    sql = f"INSERT INTO dedupe (key, expires_at) VALUES {values} ON CONFLICT (key) DO NOTHING RETURNING key"  # noqa: S608
    return {row[0] for row in conn.execute(sql, params).fetchall()}


def _insert_rows(conn: sqlite3.Connection, arrivals: list[Arrival], now: float) -> list[int]:
    if not arrivals:
        return []
    values = ",".join("(?, ?, ?, ?)" for _ in arrivals)
    params: list[object] = []
    for arrival in arrivals:
        params += [arrival.platform, arrival.kind, arrival.payload, now]
    sql = f"INSERT INTO inbox (platform, kind, payload, received_at) VALUES {values} RETURNING id"  # noqa: S608
    # Rowids are handed out in VALUES order under the write lock; RETURNING's order is not promised.
    return sorted(row[0] for row in conn.execute(sql, params).fetchall())
