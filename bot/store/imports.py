"""Imports of history (SPEC §10): the import record, the ledger of imported message ids, and the outbox items an
import stages. Items are written in batches as `staged` (never sent), and the import is flipped to queued in one
small transaction; a refused or failed import deletes what it staged — so nothing partial is ever sent."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from bot.events import Address
from bot.store.database import Conn, Database
from bot.store.outbox import ItemState, NewItem, Outbox

#: At most this many outbox rows per staging transaction (SPEC §10).
BATCH_ROWS = 500


class ImportState(StrEnum):
    STAGING = "staging"  # items being written (not sendable)
    QUEUED = "queued"  # flipped: delivery takes its items
    CANCELLED = "cancelled"  # /unlink or Cancel: its waiting items deleted
    REFUSED = "refused"  # failed while staging: what it staged is deleted


@dataclass(frozen=True, slots=True)
class ImportRecord:
    id: int
    account: str
    uid: str
    source: str
    chat: str
    chat_name: str
    state: ImportState
    messages: int
    total: int  # conversations queued
    skipped: int  # messages already imported before
    created_at: float
    address: Address | None


@dataclass(frozen=True, slots=True)
class Progress:
    """How far an import's items are: delivered, failed for good, still waiting (of `total`)."""

    total: int
    delivered: int
    failed: int

    @property
    def waiting(self) -> int:
        return self.total - self.delivered - self.failed

    @property
    def finished(self) -> bool:
        return self.waiting <= 0


class Imports:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def begin(
        self,
        *,
        account: str,
        uid: str,
        source: str,
        chat: str,
        chat_name: str,
        now: float,
        address: Address | None = None,
    ) -> int:
        """A new import record, staging."""
        encoded = json.dumps(address.to_dict(), separators=(",", ":")) if address is not None else None
        row_id = await self._db.write(
            lambda conn: conn.execute(
                "INSERT INTO imports (account, uid, source, chat, chat_name, state, address, created_at, updated_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
                (account, uid, source, chat, chat_name, ImportState.STAGING.value, encoded, now, now),
            ).fetchone()[0]
        )
        return int(row_id)

    async def imported_ids(self, uid: str, source: str, chat: str) -> set[str]:
        """Message ids of this chat already brought in for `uid` (by any import still on record)."""
        rows = await self._db.fetchall(
            "SELECT message_id FROM import_ledger WHERE uid = ? AND source = ? AND chat = ?", (uid, source, chat)
        )
        return {row["message_id"] for row in rows}

    async def stage(
        self, record: ImportRecord, items: Sequence[NewItem], message_ids: Iterable[Sequence[str]], now: float
    ) -> None:
        """One batch (≤ `BATCH_ROWS` items): the items as `staged`, and the ledger rows of their messages."""
        assert len(items) <= BATCH_ROWS
        staged = [
            NewItem(i.account, i.uid, i.kind, i.write, i.address, i.summary, ItemState.STAGED, record.id) for i in items
        ]
        ledger = [
            (record.uid, record.source, record.chat, message_id, record.id)
            for ids in message_ids
            for message_id in dict.fromkeys(ids)
        ]

        def write(conn: Conn) -> None:
            Outbox.add(conn, staged, now)
            if ledger:
                conn.executemany(
                    "INSERT INTO import_ledger (uid, source, chat, message_id, import_id) VALUES (?, ?, ?, ?, ?)"
                    " ON CONFLICT (uid, source, chat, message_id) DO NOTHING",
                    ledger,
                )

        await self._db.write(write)

    async def queue(self, import_id: int, *, messages: int, skipped: int, now: float) -> int:
        """Flip a staging import to queued: its items become sendable, all at once. Returns how many."""

        def flip(conn: Conn) -> int:
            total = conn.execute(
                "UPDATE outbox SET state = ?, next_attempt_at = ? WHERE import_id = ? AND state = ?",
                (ItemState.PENDING.value, now, import_id, ItemState.STAGED.value),
            ).rowcount
            conn.execute(
                "UPDATE imports SET state = ?, total = ?, messages = ?, skipped = ?, updated_at = ? WHERE id = ?",
                (ImportState.QUEUED.value, total, messages, skipped, now, import_id),
            )
            return total

        return await self._db.write(flip)

    async def refuse(self, import_id: int, now: float, *, forget: bool = False) -> None:
        """A staging import that cannot go ahead (bad input, Ctrl-C while staging): what it staged goes. `forget`:
        the record too (it had nothing to import)."""

        def drop(conn: Conn) -> None:
            conn.execute("DELETE FROM outbox WHERE import_id = ? AND state = ?", (import_id, ItemState.STAGED.value))
            conn.execute("DELETE FROM import_ledger WHERE import_id = ?", (import_id,))
            if forget:
                conn.execute("DELETE FROM imports WHERE id = ?", (import_id,))
                return
            conn.execute(
                "UPDATE imports SET state = ?, updated_at = ? WHERE id = ?", (ImportState.REFUSED.value, now, import_id)
            )

        await self._db.write(drop)

    @staticmethod
    def cancel_for_account(conn: Conn, account: str, now: float) -> int:
        """Inside the caller's transaction (`/unlink`): the account's imports are cancelled and their waiting items
        deleted. Returns how many items went. The ledger stays: what was delivered stays imported."""
        open_states = (ItemState.STAGED, ItemState.PENDING, ItemState.UNKNOWN, ItemState.BLOCKED, ItemState.HELD)
        marks = ", ".join("?" for _ in open_states)
        deleted = conn.execute(
            f"DELETE FROM outbox WHERE state IN ({marks}) AND import_id IN"  # noqa: S608
            " (SELECT id FROM imports WHERE account = ? AND state IN (?, ?))",
            (*(s.value for s in open_states), account, ImportState.STAGING.value, ImportState.QUEUED.value),
        ).rowcount
        conn.execute(
            "UPDATE imports SET state = ?, updated_at = ? WHERE account = ? AND state IN (?, ?)",
            (ImportState.CANCELLED.value, now, account, ImportState.STAGING.value, ImportState.QUEUED.value),
        )
        return deleted

    async def get(self, import_id: int) -> ImportRecord | None:
        row = await self._db.fetchone("SELECT * FROM imports WHERE id = ?", (import_id,))
        return _record(row) if row is not None else None

    async def listed(self, account: str | None = None) -> list[ImportRecord]:
        """Imports on record, newest first (`account`: one account's)."""
        where, params = ("WHERE account = ?", (account,)) if account is not None else ("", ())
        rows = await self._db.fetchall(f"SELECT * FROM imports {where} ORDER BY id DESC", params)  # noqa: S608
        return [_record(row) for row in rows]

    async def progress(self, import_id: int) -> Progress:
        row = await self._db.fetchone(
            "SELECT imports.total AS total,"
            " (SELECT COUNT(*) FROM outbox WHERE import_id = imports.id AND state = ?) AS delivered,"
            " (SELECT COUNT(*) FROM outbox WHERE import_id = imports.id AND state = ?) AS failed"
            " FROM imports WHERE id = ?",
            (ItemState.DONE.value, ItemState.FAILED.value, import_id),
        )
        if row is None:
            return Progress(0, 0, 0)
        return Progress(int(row["total"]), int(row["delivered"]), int(row["failed"]))

    async def failures(self, import_id: int) -> list[tuple[str, str]]:
        """(summary, reason) of the import's items that failed for good."""
        rows = await self._db.fetchall(
            "SELECT summary, last_error FROM outbox WHERE import_id = ? AND state = ? ORDER BY id",
            (import_id, ItemState.FAILED.value),
        )
        return [(row["summary"], row["last_error"] or "") for row in rows]


def _record(row: Any) -> ImportRecord:
    address = Address.from_dict(json.loads(row["address"])) if row["address"] else None
    return ImportRecord(
        id=row["id"],
        account=row["account"],
        uid=row["uid"],
        source=row["source"],
        chat=row["chat"],
        chat_name=row["chat_name"],
        state=ImportState(row["state"]),
        messages=row["messages"],
        total=row["total"],
        skipped=row["skipped"],
        created_at=row["created_at"],
        address=address,
    )
