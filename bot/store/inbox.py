"""Intake: accepting a platform payload is a commit, and concurrent arrivals share one (group commit)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from bot.clock import Clock
from bot.store.database import Batched, Conn, Database
from bot.store.leases import Leases

log = logging.getLogger(__name__)

DEDUPE_TTL_SECONDS = 7 * 24 * 3600


@dataclass(frozen=True, slots=True)
class Arrival:
    """A platform payload to accept. Any of `dedupe_keys` seen in the last 7 days makes it a duplicate."""

    platform: str
    kind: str
    payload: str
    dedupe_keys: tuple[str, ...] = ()
    #: Whose it is, when the adapter already knows (see `bot.processing.SessionHint`): stored with the row, and
    #: with several instances the key of the session lease its handler holds (`bot.sessions`).
    session: str | None = None


@dataclass(frozen=True, slots=True)
class InboxRow:
    id: int
    platform: str
    kind: str
    payload: str
    received_at: float
    session: str | None = None  # from the Arrival (stored with the row); None when not known before parsing


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
        self._sessions: SessionLeasing | None = None

    def share_sessions(self, owner: str, seconds: float) -> None:
        """Several instances on one database (SPEC §13): each accept also takes (or extends) the lease of the row's
        session in the same transaction; listeners hear only of rows whose session this instance holds — the
        others are the holder's, which finds them in the database (`bot.sessions`)."""
        self._sessions = SessionLeasing(owner, seconds)

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
            # Arrivals sharing a commit are inserted together: one statement per table for all of them.
            inserted = await self._db.write(
                Batched(insert_arrivals, _Insert(arrival, now, self._sessions, self._db.now_sql, self._db.insert_rows))
            )
        finally:
            self._in_flight -= 1
        if inserted is None:
            return Accepted(None)
        row_id, ours = inserted
        row = InboxRow(row_id, arrival.platform, arrival.kind, arrival.payload, now, arrival.session)
        if not ours:
            return Accepted(row)  # its session's holder (another instance) handles it
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
        rows = await self._db.fetchall(f"SELECT {ROW_COLUMNS} FROM inbox WHERE state = 'new' ORDER BY id")  # noqa: S608
        return [inbox_row(r) for r in rows]

    async def waiting_from(self, first_id: int, limit: int) -> list[InboxRow]:
        """Waiting rows from `first_id` on, oldest first, at most `limit`: processing reads back what it left here."""
        rows = await self._db.fetchall(
            f"SELECT {ROW_COLUMNS} FROM inbox WHERE state = 'new' AND id >= ? ORDER BY id LIMIT ?",  # noqa: S608
            (first_id, limit),
        )
        return [inbox_row(r) for r in rows]

    async def payload(self, row_id: int) -> str | None:
        """A waiting row's payload (None when it is done or gone): processing reads it back when it let go of it."""
        row = await self._db.fetchone("SELECT payload FROM inbox WHERE id = ? AND state = 'new'", (row_id,))
        return row["payload"] if row is not None else None

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


class RowsTaken(Exception):
    """Rows meant to be marked done are done already: another instance handled them (after this one lost their
    session's lease). The caller's transaction must not commit: what it would store is stored already."""


def mark_done(conn: Conn, row_ids: Sequence[int], *, still_new: bool = False) -> None:
    """Inside the caller's transaction, with the effects of these rows: replay then skips them. `still_new`: raise
    `RowsTaken` (undoing the transaction) unless every row was still waiting — so that of two instances handling
    the same rows, only the first to commit stores anything."""
    ids = sorted(set(row_ids))
    for start in range(0, len(ids), 500):
        chunk = ids[start : start + 500]
        marks = ",".join("?" for _ in chunk)
        done = conn.execute(
            f"UPDATE inbox SET state = 'done', payload = NULL WHERE id IN ({marks}) AND state = 'new'",  # noqa: S608
            chunk,
        ).rowcount
        if still_new and done != len(chunk):
            raise RowsTaken(f"{len(chunk) - done} of {len(chunk)} row(s) were handled elsewhere")


def session_lease(session: str | None, row_id: int) -> str:
    """The lease name of a row's session: the adapter's session key, or the row alone when it had none."""
    return f"session:{session or f'row:{row_id}'}"


#: The SQL twin of `session_lease` over the inbox's columns.
SESSION_LEASE_SQL = "('session:' || COALESCE(inbox.session, 'row:' || inbox.id))"
ROW_COLUMNS = "inbox.id, inbox.platform, inbox.kind, inbox.payload, inbox.received_at, inbox.session"


def inbox_row(r: Any) -> InboxRow:
    return InboxRow(r["id"], r["platform"], r["kind"], r["payload"] or "", r["received_at"], r["session"])


@dataclass(frozen=True, slots=True)
class SessionLeasing:
    owner: str
    seconds: float


@dataclass(frozen=True, slots=True)
class _Insert:
    arrival: Arrival
    now: float
    sessions: SessionLeasing | None
    now_sql: str
    insert_rows: Callable[[Conn, str, Sequence[Any], int], list[int]]  # the engine's (`Database.insert_rows`)


#: Rows per multi-row INSERT: well inside both engines' limits on parameters per statement.
_CHUNK = 200


class _KeysSeen(Exception):
    """A batch holds a key seen before: it is made again arrival by arrival, each finding out which of its own."""


def insert_arrivals(conn: Conn, inserts: list[_Insert]) -> list[tuple[int, bool] | None]:
    """In the database thread, for arrivals in the order they came: each one's (row id, whether this instance
    holds its session), or None when any of its dedupe keys was seen before (a duplicate) — also of an earlier
    arrival in the same call, which is then the one accepted. A key is recorded even when its arrival turns out a
    duplicate through another key.

    Several arrivals (a batch, see `Batched`) take a statement per table for all of them, and no statement that
    returns a row per arrival: each row returned is a step of the statement, and each step a wait for the GIL while
    the event loop runs. When any key was seen before, the batch is undone and made again arrival by arrival."""
    if len(inserts) == 1:
        return [_insert_one(conn, inserts[0])]
    expiry: dict[str, float] = {}
    for insert in inserts:
        for key in insert.arrival.dedupe_keys:
            expiry.setdefault(key, insert.now + DEDUPE_TTL_SECONDS)
    keys = list(expiry.items())
    for start in range(0, len(keys), _CHUNK):
        chunk = keys[start : start + _CHUNK]
        values = ",".join("(?, ?)" for _ in chunk)
        sql = f"INSERT INTO dedupe (key, expires_at) VALUES {values} ON CONFLICT (key) DO NOTHING"  # noqa: S608
        # Every key inserted: none was seen before (the keys are distinct). Fewer: some were (or another instance
        # recorded one just now), and which is found arrival by arrival once this is undone.
        if conn.execute(sql, [value for pair in chunk for value in pair]).rowcount != len(chunk):
            raise _KeysSeen
    claimed: set[str] = set()
    new: list[_Insert] = []
    for insert in inserts:
        own = insert.arrival.dedupe_keys
        if not claimed.intersection(own):
            new.append(insert)
        claimed.update(own)  # a later arrival with one of these keys is this one's duplicate
    ids: dict[int, int] = {}  # id(insert) → its row id
    for start in range(0, len(new), _CHUNK):
        chunk = new[start : start + _CHUNK]
        values = ",".join("(?, ?, ?, ?, ?)" for _ in chunk)
        params: list[object] = []
        for insert in chunk:
            a = insert.arrival
            params += [a.platform, a.kind, a.payload, insert.now, a.session]
        sql = f"INSERT INTO inbox (platform, kind, payload, received_at, session) VALUES {values}"  # noqa: S608
        row_ids = chunk[0].insert_rows(conn, sql, params, len(chunk))
        ids.update((id(insert), row_id) for insert, row_id in zip(chunk, row_ids, strict=True))
    return [_leased(conn, insert, ids.get(id(insert))) for insert in inserts]


def _insert_one(conn: Conn, insert: _Insert) -> tuple[int, bool] | None:
    row_id = _insert(conn, insert.arrival, insert.now)
    return _leased(conn, insert, row_id)


def _leased(conn: Conn, insert: _Insert, row_id: int | None) -> tuple[int, bool] | None:
    """(row id, whether this instance holds the row's session): with several instances the session's lease is
    taken (or extended) in the same transaction."""
    if row_id is None or insert.sessions is None:
        return None if row_id is None else (row_id, True)
    name = session_lease(insert.arrival.session, row_id)
    return row_id, Leases.take(conn, insert.now_sql, name, insert.sessions.owner, insert.sessions.seconds) is not None


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
        "INSERT INTO inbox (platform, kind, payload, received_at, session) VALUES (?, ?, ?, ?, ?) RETURNING id",
        (arrival.platform, arrival.kind, arrival.payload, now, arrival.session),
    ).fetchone()[0]
