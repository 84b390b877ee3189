"""The outbox: every Omi write, from acceptance until Omi confirms it (or it fails for good)."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from bot.events import Address
from bot.store.database import Database


class ItemKind(StrEnum):
    CONVERSATION = "conversation"
    MEMORIES = "memories"  # explicit memories: combined per uid into one POST
    EXTRACT = "extract"  # text for Omi to extract memories from (source_id = the item's id)


class ItemState(StrEnum):
    HELD = "held"  # from a claimed account: waits for verification (24 h)
    PENDING = "pending"  # to send at next_attempt_at
    SENDING = "sending"  # a request is (or was, before a crash) in flight
    UNKNOWN = "unknown"  # Omi may have written it: look before re-sending, at next_attempt_at
    BLOCKED = "blocked"  # the user has not enabled the app: retried hourly, on their next message, /status
    DONE = "done"  # Omi said 200; payload cleared
    FAILED = "failed"  # for good; kept 7 days


#: States the worker picks from when due.
DUE_STATES = (ItemState.PENDING, ItemState.UNKNOWN, ItemState.BLOCKED)
#: States that count as "waiting" for /status and the queue depth.
OPEN_STATES = (ItemState.HELD, ItemState.PENDING, ItemState.SENDING, ItemState.UNKNOWN, ItemState.BLOCKED)


@dataclass(frozen=True, slots=True)
class OutboxItem:
    id: int
    account: str
    uid: str
    kind: ItemKind
    state: ItemState
    payload: dict[str, Any]
    address: Address
    summary: str
    attempts: int
    created_at: float
    next_attempt_at: float
    unknown_since: float | None
    looks_done: int
    last_error: str | None


@dataclass(frozen=True, slots=True)
class NewItem:
    account: str
    uid: str
    kind: ItemKind
    payload: dict[str, Any]
    address: Address
    summary: str = ""
    state: ItemState = ItemState.PENDING


class Outbox:
    def __init__(self, db: Database) -> None:
        self._db = db

    # --- writes, inside the caller's transaction (`Database.write`) ---------------------------------------

    @staticmethod
    def add(conn: sqlite3.Connection, items: Sequence[NewItem], now: float) -> list[int]:
        ids = []
        for item in items:
            cursor = conn.execute(
                "INSERT INTO outbox (account, uid, kind, state, payload, address, summary, created_at,"
                " next_attempt_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    item.account,
                    item.uid,
                    item.kind.value,
                    item.state.value,
                    json.dumps(item.payload, ensure_ascii=False, separators=(",", ":")),
                    json.dumps(item.address.to_dict(), separators=(",", ":")),
                    item.summary,
                    now,
                    now,
                ),
            )
            ids.append(int(cursor.lastrowid or 0))
        return ids

    @staticmethod
    def update(
        conn: sqlite3.Connection,
        ids: Collection[int],
        *,
        state: ItemState,
        next_attempt_at: float | None = None,
        attempts_delta: int = 0,
        unknown_since: float | None = None,
        looks_done: int | None = None,
        last_error: str | None = None,
        finished_at: float | None = None,
    ) -> None:
        sets = ["state = ?", "attempts = attempts + ?"]
        params: list[Any] = [state.value, attempts_delta]
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
        if state is ItemState.DONE:
            sets.append("payload = '{}', summary = ''")  # SPEC §9: content leaves once Omi has it
        sql = f"UPDATE outbox SET {', '.join(sets)} WHERE id = ?"  # noqa: S608 - fixed column names
        conn.executemany(sql, [(*params, item_id) for item_id in ids])

    async def set_state(self, ids: Collection[int], **changes: Any) -> None:
        """`update` in a transaction of its own."""
        await self._db.write(lambda conn: self.update(conn, ids, **changes))

    @staticmethod
    def release_held(conn: sqlite3.Connection, account: str, uid: str, now: float) -> int:
        return conn.execute(
            "UPDATE outbox SET state = 'pending', uid = ?, next_attempt_at = ? WHERE account = ? AND state = 'held'",
            (uid, now, account),
        ).rowcount

    @staticmethod
    def unblock(conn: sqlite3.Connection, account: str, now: float) -> int:
        return conn.execute(
            "UPDATE outbox SET next_attempt_at = ? WHERE account = ? AND state = 'blocked'", (now, account)
        ).rowcount

    @staticmethod
    def recover_after_crash(conn: sqlite3.Connection, now: float) -> tuple[int, int]:
        """Items in flight when the process died: a conversation may exist in Omi, so look before re-sending;
        memory writes are idempotent in Omi (same content overwrites, extraction dedupes on source_id)."""
        conversations = conn.execute(
            "UPDATE outbox SET state = 'unknown', unknown_since = COALESCE(unknown_since, ?), looks_done = 0,"
            " next_attempt_at = COALESCE(unknown_since, ?) + 120 WHERE state = 'sending' AND kind = 'conversation'",
            (now, now),
        ).rowcount
        others = conn.execute(
            "UPDATE outbox SET state = 'pending', next_attempt_at = ? WHERE state = 'sending'", (now,)
        ).rowcount
        return conversations, others

    @staticmethod
    def purge(conn: sqlite3.Connection, before: float) -> None:
        """Finished items older than `before` (7 days) leave the database."""
        conn.execute(
            "DELETE FROM outbox WHERE state IN ('done', 'failed') AND COALESCE(finished_at, created_at) < ?",
            (before,),
        )

    # --- reads -------------------------------------------------------------------------------------------

    async def get(self, item_id: int) -> OutboxItem | None:
        row = await self._db.fetchone("SELECT * FROM outbox WHERE id = ?", (item_id,))
        return _item(row) if row else None

    async def due_heads(self, now: float) -> list[tuple[str, str, int]]:
        """(uid, kind, oldest due id) for every uid and kind with something due."""
        rows = await self._db.fetchall(
            "SELECT uid, kind, MIN(id) AS id FROM outbox WHERE state IN ('pending', 'unknown', 'blocked')"
            " AND next_attempt_at <= ? GROUP BY uid, kind",
            (now,),
        )
        return [(row["uid"], row["kind"], row["id"]) for row in rows]

    async def due_memories(self, uid: str, now: float) -> list[OutboxItem]:
        """Every explicit-memory item of a uid ready to go: they travel in one POST."""
        rows = await self._db.fetchall(
            "SELECT * FROM outbox WHERE uid = ? AND kind = 'memories' AND state = 'pending' AND next_attempt_at <= ?"
            " ORDER BY id LIMIT 200",
            (uid, now),
        )
        return [_item(row) for row in rows]

    async def next_due_at(self, after: float) -> float | None:
        row = await self._db.fetchone(
            "SELECT MIN(next_attempt_at) AS t FROM outbox WHERE state IN ('pending', 'unknown', 'blocked')"
            " AND next_attempt_at > ?",
            (after,),
        )
        return row["t"] if row and row["t"] is not None else None

    async def open_for_account(self, account: str) -> list[OutboxItem]:
        rows = await self._db.fetchall(
            "SELECT * FROM outbox WHERE account = ? AND state IN ('held', 'pending', 'sending', 'unknown', 'blocked')"
            " ORDER BY id",
            (account,),
        )
        return [_item(row) for row in rows]

    async def last_finished(self, account: str) -> OutboxItem | None:
        row = await self._db.fetchone(
            "SELECT * FROM outbox WHERE account = ? AND state IN ('done', 'failed')"
            " ORDER BY finished_at DESC, id DESC LIMIT 1",
            (account,),
        )
        return _item(row) if row else None

    async def depth(self) -> int:
        row = await self._db.fetchone(
            "SELECT COUNT(*) AS n FROM outbox WHERE state IN ('held', 'pending', 'sending', 'unknown', 'blocked')"
        )
        return int(row["n"]) if row else 0

    async def oldest_open_created_at(self) -> float | None:
        row = await self._db.fetchone(
            "SELECT MIN(created_at) AS t FROM outbox"
            " WHERE state IN ('held', 'pending', 'sending', 'unknown', 'blocked')"
        )
        return row["t"] if row and row["t"] is not None else None

    async def expired_held(self, before: float) -> list[OutboxItem]:
        rows = await self._db.fetchall(
            "SELECT * FROM outbox WHERE state = 'held' AND created_at < ? ORDER BY id", (before,)
        )
        return [_item(row) for row in rows]


def _item(row: sqlite3.Row) -> OutboxItem:
    return OutboxItem(
        id=row["id"],
        account=row["account"],
        uid=row["uid"],
        kind=ItemKind(row["kind"]),
        state=ItemState(row["state"]),
        payload=json.loads(row["payload"]),
        address=Address.from_dict(json.loads(row["address"])),
        summary=row["summary"],
        attempts=row["attempts"],
        created_at=row["created_at"],
        next_attempt_at=row["next_attempt_at"],
        unknown_since=row["unknown_since"],
        looks_done=row["looks_done"],
        last_error=row["last_error"],
    )
