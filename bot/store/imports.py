"""Imports of history (SPEC §10): the import record, the ledger of imported message ids, and the outbox items an
import stages. Items are written in batches as `staged` (never sent), and the import is flipped to queued in one
small transaction; a refused or failed import deletes what it staged — so nothing partial is ever sent. An in-chat
import (SPEC §10) is staged whole when the file arrives and *offered*: the user's Import flips it, Cancel (or expiry,
or a newer file) drops it — a choice any instance can carry out, however often the button is pressed. Its progress
message (the summary, edited in place) is kept on the record: which message, what it shows, since when."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from bot.events import Address
from bot.store.database import Conn, Database
from bot.store.inbox import mark_done
from bot.store.outbox import OPEN_STATES, ItemState, NewItem, Outbox

#: At most this many outbox rows per staging transaction (SPEC §10).
BATCH_ROWS = 500


class ImportState(StrEnum):
    STAGING = "staging"  # items being written (not sendable)
    OFFERED = "offered"  # in chat: staged whole, waiting for the user's Import or Cancel
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
    updated_at: float = 0.0
    #: In chat: the message that shows the import (its summary, then its progress), what it shows, since when, and
    #: whether that is its last word.
    progress_message_id: str | None = None
    progress_text: str | None = None
    progress_at: float | None = None
    progress_final: bool = False


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
            # Only a staging import: one cancelled meanwhile (/unlink) stays cancelled, its late batches unsent.
            total = conn.execute(
                "UPDATE outbox SET state = ?, next_attempt_at = ? WHERE import_id = ? AND state = ?"
                " AND EXISTS (SELECT 1 FROM imports WHERE id = ? AND state = ?)",
                (ItemState.PENDING.value, now, import_id, ItemState.STAGED.value, import_id, ImportState.STAGING.value),
            ).rowcount
            conn.execute(
                "UPDATE imports SET state = ?, total = ?, messages = ?, skipped = ?, updated_at = ?"
                " WHERE id = ? AND state = ?",
                (ImportState.QUEUED.value, total, messages, skipped, now, import_id, ImportState.STAGING.value),
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
        running = (ImportState.STAGING.value, ImportState.QUEUED.value, ImportState.OFFERED.value)
        deleted = conn.execute(
            f"DELETE FROM outbox WHERE state IN ({marks}) AND import_id IN"  # noqa: S608
            " (SELECT id FROM imports WHERE account = ? AND state IN (?, ?, ?))",
            (*(s.value for s in open_states), account, *running),
        ).rowcount
        # An offer brought nothing in: its messages are not imported.
        conn.execute(
            "DELETE FROM import_ledger WHERE import_id IN (SELECT id FROM imports WHERE account = ? AND state = ?)",
            (account, ImportState.OFFERED.value),
        )
        conn.execute(
            "UPDATE imports SET state = ?, updated_at = ? WHERE account = ? AND state IN (?, ?, ?)",
            (ImportState.CANCELLED.value, now, account, *running),
        )
        return deleted

    # --- in chat: the offer, the choice, the progress message -------------------------------------------

    async def offer(
        self, import_id: int, *, messages: int, skipped: int, now: float, rows: Sequence[int] = ()
    ) -> int | None:
        """A staged import waits for the user's choice; `rows` (the inbox row that brought the file) are marked done
        with it (`RowsTaken` if another instance handled them: nothing changes). Returns how many items it holds,
        None when it is no longer staging (cancelled by /unlink meanwhile)."""

        def flip(conn: Conn) -> int | None:
            total = conn.execute(
                "SELECT COUNT(*) FROM outbox WHERE import_id = ? AND state = ?", (import_id, ItemState.STAGED.value)
            ).fetchone()[0]
            changed = conn.execute(
                "UPDATE imports SET state = ?, total = ?, messages = ?, skipped = ?, updated_at = ?"
                " WHERE id = ? AND state = ?",
                (ImportState.OFFERED.value, total, messages, skipped, now, import_id, ImportState.STAGING.value),
            ).rowcount
            mark_done(conn, rows, still_new=True)
            return int(total) if changed else None

        return await self._db.write(flip)

    async def accept(self, import_id: int, account: str, *, message_id: str, text: str, now: float) -> bool:
        """Import pressed: `account`'s offered import is flipped to queued, all its items at once, and `message_id`
        shows its progress from now (`text`). False: not, or no longer, an offer of `account` — nothing changes
        (a second press, an old button)."""

        def flip(conn: Conn) -> bool:
            if not conn.execute(
                "UPDATE imports SET state = ?, progress_message_id = ?, progress_text = ?, progress_at = ?,"
                " updated_at = ? WHERE id = ? AND account = ? AND state = ?",
                (ImportState.QUEUED.value, message_id, text, now, now, import_id, account, ImportState.OFFERED.value),
            ).rowcount:
                return False
            conn.execute(
                "UPDATE outbox SET state = ?, next_attempt_at = ? WHERE import_id = ? AND state = ?",
                (ItemState.PENDING.value, now, import_id, ItemState.STAGED.value),
            )
            return True

        return await self._db.write(flip)

    async def decline(
        self, import_id: int, account: str, now: float, *, message_id: str | None = None, text: str | None = None
    ) -> bool:
        """Cancel pressed, the offer expired or a newer file replaced it: an offered import's staged items and ledger
        rows go, it is cancelled (with `message_id`, the message now showing `text` for good). False: not, or no
        longer, an offer of `account`."""

        def drop(conn: Conn) -> bool:
            if not conn.execute(
                "UPDATE imports SET state = ?, progress_message_id = ?, progress_text = ?, progress_at = ?,"
                " progress_final = ?, updated_at = ? WHERE id = ? AND account = ? AND state = ?",
                (ImportState.CANCELLED.value, message_id, text, now if text else None, 1 if text else 0, now,
                 import_id, account, ImportState.OFFERED.value),
            ).rowcount:  # fmt: skip
                return False
            conn.execute("DELETE FROM outbox WHERE import_id = ? AND state = ?", (import_id, ItemState.STAGED.value))
            conn.execute("DELETE FROM import_ledger WHERE import_id = ?", (import_id,))
            return True

        return await self._db.write(drop)

    async def offers(self, *, account: str | None = None, before: float | None = None) -> list[ImportRecord]:
        """Offers waiting for a choice: `account`'s, or those made before `before` (to expire)."""
        where, params = "state = ?", [ImportState.OFFERED.value]
        if account is not None:
            where, params = where + " AND account = ?", [*params, account]
        if before is not None:
            where, params = where + " AND updated_at < ?", [*params, before]
        rows = await self._db.fetchall(f"SELECT * FROM imports WHERE {where} ORDER BY id", tuple(params))  # noqa: S608
        return [_record(row) for row in rows]

    async def showing(self) -> list[ImportRecord]:
        """Imports whose progress message has more to say: queued (or cancelled since) and not at its last word."""
        rows = await self._db.fetchall(
            "SELECT * FROM imports WHERE progress_message_id IS NOT NULL AND progress_final = 0"
            " AND state IN (?, ?) ORDER BY id",
            (ImportState.QUEUED.value, ImportState.CANCELLED.value),
        )
        return [_record(row) for row in rows]

    async def shown(self, import_id: int, *, before: str | None, text: str, now: float, final: bool) -> bool:
        """The progress message is to show `text` from `now` — only if it still shows `before`, so that of two
        rounds (two instances, a late one) one edits, and never with the same text twice."""
        return bool(
            await self._db.write(
                lambda conn: (
                    conn.execute(
                        "UPDATE imports SET progress_text = ?, progress_at = ?, progress_final = ?"
                        " WHERE id = ? AND progress_final = 0 AND COALESCE(progress_text, '') = ?",
                        (text, now, 1 if final else 0, import_id, before or ""),
                    ).rowcount
                )
            )
        )

    async def open_items(self, import_id: int) -> int:
        """The import's items still on their way (none left, though not all settled: deleted, e.g. by /unlink)."""
        marks = ", ".join("?" for _ in OPEN_STATES)
        row = await self._db.fetchone(
            f"SELECT COUNT(*) AS n FROM outbox WHERE import_id = ? AND state IN ({marks})",  # noqa: S608
            (import_id, *(state.value for state in OPEN_STATES)),
        )
        return int(row["n"]) if row else 0

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
        updated_at=row["updated_at"],
        progress_message_id=row["progress_message_id"],
        progress_text=row["progress_text"],
        progress_at=row["progress_at"],
        progress_final=bool(row["progress_final"]),
    )
