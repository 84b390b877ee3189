"""The outbox: every Omi write, from acceptance until Omi confirms it (or it fails for good).

A state machine with guarded transitions (SPEC §7): every change names the state it expects and, for an attempt,
the attempt number it was claimed under; a change whose item has moved on changes nothing. `done` and `failed` are
final. Payloads are typed Omi writes, stored as their JSON and read back by kind.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from bot.events import Address
from bot.omi.models import NewConversation, NewMemories
from bot.store.database import Conn, Database
from bot.store.holds import HELD
from bot.store.leases import Lease
from bot.store.windows import IMPORTS_SPENT
from bot.store.writes import ItemKind, OmiWrite, PayloadInvalid, decode_write, encode_write


class ItemState(StrEnum):
    HELD = "held"  # from a claimed account: waits for verification (24 h)
    PENDING = "pending"  # to send at next_attempt_at
    SENDING = "sending"  # a request is (or was, before a crash) in flight
    UNKNOWN = "unknown"  # Omi may have written it: look before re-sending, at next_attempt_at
    BLOCKED = "blocked"  # the user has not enabled the app: retried hourly, on their next message, /status
    DONE = "done"  # Omi said 200; payload cleared
    FAILED = "failed"  # for good; kept 7 days
    STAGED = "staged"  # an import's item, written but not sendable until its import is flipped to queued


#: States the worker picks from when due.
DUE_STATES = (ItemState.PENDING, ItemState.UNKNOWN, ItemState.BLOCKED)
#: States that count as "waiting" for /status and the queue depth.
OPEN_STATES = (ItemState.HELD, ItemState.PENDING, ItemState.SENDING, ItemState.UNKNOWN, ItemState.BLOCKED)
#: Nothing leaves these.
FINAL_STATES = (ItemState.DONE, ItemState.FAILED)


def _in(states: Iterable[ItemState]) -> str:
    """SQL for `state IN (...)` from the constants (fixed strings, never user input)."""
    return "state IN (" + ", ".join(f"'{state.value}'" for state in states) + ")"


_DUE = _in(DUE_STATES)
#: Live first (SPEC §10): an import's item is due only while its uid has no live item ready.
_LIVE_READY = (
    "SELECT 1 FROM outbox AS live WHERE live.uid = outbox.uid AND live.import_id IS NULL"  # noqa: S608 - constants
    f" AND live.state IN ({', '.join(repr(state.value) for state in DUE_STATES)}) AND live.next_attempt_at <= ?"
)
_OPEN = _in(OPEN_STATES)
_FINAL = _in(FINAL_STATES)
_CLAIM = (
    "UPDATE outbox SET attempt = attempt + 1, first_attempt_at = COALESCE(first_attempt_at, ?),"  # noqa: S608
    f" state = CASE state WHEN '{ItemState.UNKNOWN.value}' THEN state ELSE '{ItemState.SENDING.value}' END,"
    " lease_owner = ?, lease_epoch = ?"
    f" WHERE id = ? AND {_DUE} AND next_attempt_at <= ?"
)
#: SQL: the lease named for the outbox row's uid is held by `?` under epoch `?` (an outcome's guard).
_UNDER_LEASE = "EXISTS (SELECT 1 FROM leases WHERE leases.name = 'uid:' || outbox.uid AND owner = ? AND epoch = ?)"


@dataclass(frozen=True, slots=True)
class OutboxItem:
    id: int
    account: str
    uid: str
    kind: ItemKind
    state: ItemState
    #: The Omi write; None once delivered (content leaves, SPEC §9) or when the stored copy does not validate.
    write: OmiWrite | None
    #: Why `write` is None for an open item (the stored copy is unreadable): where, never the content.
    payload_problem: str | None
    address: Address
    summary: str
    attempts: int
    created_at: float
    next_attempt_at: float
    unknown_since: float | None
    looks_done: int
    last_error: str | None
    #: Bumped by every claim and every recovery: an outcome is recorded only under the attempt it was claimed in.
    attempt: int = 0
    first_attempt_at: float | None = None
    import_id: int | None = None

    @property
    def claim(self) -> tuple[int, int]:
        return (self.id, self.attempt)

    @property
    def conversation(self) -> NewConversation:
        if not isinstance(self.write, NewConversation):
            raise PayloadInvalid(self.payload_problem or "not a conversation")
        return self.write

    @property
    def memories(self) -> NewMemories:
        if not isinstance(self.write, NewMemories):
            raise PayloadInvalid(self.payload_problem or "not a memories write")
        return self.write


@dataclass(frozen=True, slots=True)
class NewItem:
    account: str
    uid: str
    kind: ItemKind
    write: OmiWrite
    address: Address
    summary: str = ""
    state: ItemState = ItemState.PENDING
    import_id: int | None = None  # an import's item (SPEC §10): sent only when its uid has no live item ready


class Outbox:
    def __init__(self, db: Database) -> None:
        self._db = db

    # --- writes, inside the caller's transaction (`Database.write`) ---------------------------------------

    @staticmethod
    def add(conn: Conn, items: Sequence[NewItem], now: float) -> list[int]:
        ids = []
        for item in items:
            row = conn.execute(
                "INSERT INTO outbox (account, uid, kind, state, payload, address, summary, created_at,"
                " next_attempt_at, import_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
                (
                    item.account,
                    item.uid,
                    item.kind.value,
                    item.state.value,
                    encode_write(item.kind, item.write),
                    json.dumps(item.address.to_dict(), separators=(",", ":")),
                    item.summary,
                    now,
                    now,
                    item.import_id,
                ),
            ).fetchone()
            ids.append(int(row[0]))
        return ids

    @staticmethod
    def claim(conn: Conn, ids: Collection[int], now: float, lease: Lease | None = None) -> list[OutboxItem]:
        """Take due items for an attempt: each moves to `sending` (an unknown one stays `unknown`: the attempt is
        a look) under a new attempt number, recorded with the uid's lease it is made under. Items no longer due
        (moved on since they were read) are not taken."""
        owner, epoch = (lease.owner, lease.epoch) if lease is not None else (None, None)
        claimed = []
        for item_id in ids:
            changed = conn.execute(_CLAIM, (now, owner, epoch, item_id, now)).rowcount
            if changed:
                row = conn.execute("SELECT * FROM outbox WHERE id = ?", (item_id,)).fetchone()
                claimed.append(_item(row))
        return claimed

    @staticmethod
    def transition(
        conn: Conn,
        claims: Iterable[tuple[int, int]],
        *,
        expect: ItemState,
        to: ItemState,
        next_attempt_at: float | None = None,
        attempts_delta: int = 0,
        unknown_since: float | None = None,
        looks_done: int | None = None,
        last_error: str | None = None,
        finished_at: float | None = None,
        rewrites: Mapping[int, tuple[ItemKind, OmiWrite]] | None = None,
        lease: Lease | None = None,
    ) -> list[int]:
        """Record an attempt's outcome for the (id, attempt) pairs it claimed, only where the item is still in
        `expect` under that attempt — and, with `lease`, only while the uid's lease is still that one (owner and
        epoch); `rewrites` replaces some items' writes (e.g. with what Omi is still missing).
        Returns the ids that changed (the others moved on: record nothing for them)."""
        if expect in FINAL_STATES:
            raise ValueError(f"{expect.value} is final")
        sets = ["state = ?", "attempts = attempts + ?"]
        params: list[Any] = [to.value, attempts_delta]
        for column, value in (
            ("next_attempt_at", next_attempt_at),
            ("unknown_since", unknown_since),
            ("looks_done", looks_done),
            ("last_error", last_error),
            ("finished_at", finished_at),
        ):
            if value is not None:
                sets.append(f"{column} = ?")
                params.append(value)
        if to is ItemState.DONE:
            sets.append("payload = '', summary = ''")  # SPEC §9: content leaves once Omi has it
        sql = f"UPDATE outbox SET {', '.join(sets)} WHERE id = ? AND attempt = ? AND state = ?"  # noqa: S608
        guard: tuple[Any, ...] = ()
        if lease is not None:
            sql += f" AND {_UNDER_LEASE}"
            guard = (lease.owner, lease.epoch)
        changed = []
        for item_id, attempt in claims:
            if conn.execute(sql, (*params, item_id, attempt, expect.value, *guard)).rowcount:
                changed.append(item_id)
                if rewrites and item_id in rewrites:
                    kind, write = rewrites[item_id]
                    conn.execute("UPDATE outbox SET payload = ? WHERE id = ?", (encode_write(kind, write), item_id))
        return changed

    @staticmethod
    def release_held(conn: Conn, account: str, uid: str, now: float) -> int:
        return conn.execute(
            "UPDATE outbox SET state = ?, uid = ?, next_attempt_at = ? WHERE account = ? AND state = ?",
            (ItemState.PENDING.value, uid, now, account, ItemState.HELD.value),
        ).rowcount

    @staticmethod
    def expire_held(conn: Conn, before: float, now: float, reason: str) -> list[OutboxItem]:
        """Held items older than `before` fail (their link was never verified). Returns those that did."""
        rows = conn.execute(
            "SELECT * FROM outbox WHERE state = ? AND created_at < ? ORDER BY id", (ItemState.HELD.value, before)
        ).fetchall()
        conn.executemany(
            "UPDATE outbox SET state = ?, last_error = ?, finished_at = ? WHERE id = ? AND state = ?",
            [(ItemState.FAILED.value, reason, now, row["id"], ItemState.HELD.value) for row in rows],
        )
        return [_item(row) for row in rows]

    @staticmethod
    def unblock(conn: Conn, account: str, now: float) -> int:
        return conn.execute(
            "UPDATE outbox SET next_attempt_at = ? WHERE account = ? AND state = ?",
            (now, account, ItemState.BLOCKED.value),
        ).rowcount

    @staticmethod
    def recover_orphans(
        conn: Conn, now_sql: str, now: float, unconfirmed_reason: str
    ) -> tuple[int, int, list[OutboxItem]]:
        """Items left `sending` under a uid lease nobody holds any more (its instance stopped or died mid-request):
        Omi may hold a conversation or memories already, so look before re-sending; an extraction is never repeated
        (it fails, the user is told). Each recovered item gets a new attempt number, so an outcome of the attempt
        that was cut off can no longer be recorded. Returns (to look for, re-queued, extractions failed)."""
        orphan = (
            f"state = '{ItemState.SENDING.value}' AND NOT EXISTS (SELECT 1 FROM leases WHERE leases.name ="  # noqa: S608
            f" 'uid:' || outbox.uid AND leases.expires_at > {now_sql})"
        )
        extracts = conn.execute(
            f"SELECT * FROM outbox WHERE {orphan} AND kind = ? ORDER BY id",  # noqa: S608
            (ItemKind.EXTRACT.value,),
        ).fetchall()
        conn.executemany(
            "UPDATE outbox SET state = ?, attempt = attempt + 1, last_error = ?, finished_at = ? WHERE id = ?",
            [(ItemState.FAILED.value, unconfirmed_reason, now, row["id"]) for row in extracts],
        )
        looking = conn.execute(
            f"UPDATE outbox SET state = ?, attempt = attempt + 1, unknown_since = ?, looks_done = 0,"  # noqa: S608
            f" next_attempt_at = ? WHERE {orphan} AND kind IN (?, ?)",
            (ItemState.UNKNOWN.value, now, now + 120, ItemKind.CONVERSATION.value, ItemKind.MEMORIES.value),
        ).rowcount
        resent = conn.execute(
            f"UPDATE outbox SET state = ?, attempt = attempt + 1, next_attempt_at = ? WHERE {orphan}",  # noqa: S608
            (ItemState.PENDING.value, now),
        ).rowcount
        return looking, resent, [_item(row) for row in extracts]

    @staticmethod
    def purge(conn: Conn, before: float) -> None:
        """Finished items older than `before` (7 days) leave the database."""
        conn.execute(
            f"DELETE FROM outbox WHERE {_FINAL} AND COALESCE(finished_at, created_at) < ?",  # noqa: S608
            (before,),
        )

    # --- reads -------------------------------------------------------------------------------------------

    async def get(self, item_id: int) -> OutboxItem | None:
        row = await self._db.fetchone("SELECT * FROM outbox WHERE id = ?", (item_id,))
        return _item(row) if row else None

    async def due_heads(self, now: float, owner: str = "", imports_only: bool = False) -> list[tuple[str, str, int]]:
        """(uid, kind, oldest due id) for every uid and kind with something due, not held by a 429 and not being
        delivered by another instance (`owner` is this one). `imports_only`: imports' items alone (what
        `omi-bridge import` delivers while no `serve` runs: live items need a chat platform to confirm them)."""
        only = " AND outbox.import_id IS NOT NULL" if imports_only else ""
        rows = await self._db.fetchall(
            f"SELECT uid, kind, MIN(id) AS id FROM outbox WHERE {_DUE}{only}"  # noqa: S608 - constants
            f" AND next_attempt_at <= ? AND NOT {HELD}"
            " AND NOT EXISTS (SELECT 1 FROM leases WHERE leases.name = 'uid:' || outbox.uid"
            f" AND leases.expires_at > {self._db.now_sql} AND leases.owner <> ?)"
            f" AND (outbox.import_id IS NULL OR (NOT EXISTS ({_LIVE_READY}) AND NOT {IMPORTS_SPENT}))"
            " GROUP BY uid, kind",
            (now, now, owner, now, now),
        )
        return [(row["uid"], row["kind"], row["id"]) for row in rows]

    async def due_memories(self, uid: str, now: float, limit: int = 200) -> list[OutboxItem]:
        """Explicit-memory items of a uid that are due, oldest first: they travel in one POST."""
        rows = await self._db.fetchall(
            f"SELECT * FROM outbox WHERE uid = ? AND kind = ? AND {_DUE} AND next_attempt_at <= ?"  # noqa: S608
            " ORDER BY id LIMIT ?",
            (uid, ItemKind.MEMORIES.value, now, limit),
        )
        return [_item(row) for row in rows]

    async def next_due_at(self, after: float) -> float | None:
        row = await self._db.fetchone(
            f"SELECT MIN(next_attempt_at) AS t FROM outbox WHERE {_DUE} AND next_attempt_at > ?",  # noqa: S608
            (after,),
        )
        return row["t"] if row and row["t"] is not None else None

    async def blocked_accounts(self) -> set[str]:
        rows = await self._db.fetchall(
            "SELECT DISTINCT account FROM outbox WHERE state = ?", (ItemState.BLOCKED.value,)
        )
        return {row["account"] for row in rows}

    async def open_for_account(self, account: str) -> list[OutboxItem]:
        rows = await self._db.fetchall(
            f"SELECT * FROM outbox WHERE account = ? AND {_OPEN} ORDER BY id",  # noqa: S608 - constants
            (account,),
        )
        return [_item(row) for row in rows]

    async def last_finished(self, account: str) -> OutboxItem | None:
        row = await self._db.fetchone(
            f"SELECT * FROM outbox WHERE account = ? AND {_FINAL}"  # noqa: S608 - constants
            " ORDER BY finished_at DESC, id DESC LIMIT 1",
            (account,),
        )
        return _item(row) if row else None

    async def depth(self) -> int:
        row = await self._db.fetchone(f"SELECT COUNT(*) AS n FROM outbox WHERE {_OPEN}")  # noqa: S608
        return int(row["n"]) if row else 0

    async def oldest_open_created_at(self) -> float | None:
        row = await self._db.fetchone(f"SELECT MIN(created_at) AS t FROM outbox WHERE {_OPEN}")  # noqa: S608
        return row["t"] if row and row["t"] is not None else None


def _item(row: Any) -> OutboxItem:
    kind = ItemKind(row["kind"])
    state = ItemState(row["state"])
    write: OmiWrite | None = None
    problem: str | None = None
    if state is not ItemState.DONE:
        try:
            write = decode_write(kind, row["payload"])
        except PayloadInvalid as exc:
            problem = str(exc)
    return OutboxItem(
        id=row["id"],
        account=row["account"],
        uid=row["uid"],
        kind=kind,
        state=state,
        write=write,
        payload_problem=problem,
        address=Address.from_dict(json.loads(row["address"])),
        summary=row["summary"],
        attempts=row["attempts"],
        created_at=row["created_at"],
        next_attempt_at=row["next_attempt_at"],
        unknown_since=row["unknown_since"],
        looks_done=row["looks_done"],
        last_error=row["last_error"],
        attempt=row["attempt"],
        first_attempt_at=row["first_attempt_at"],
        import_id=row["import_id"],
    )
