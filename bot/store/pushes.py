"""Omi → chat in the database (SPEC §12): webhook events stored before Omi is answered, the pushes they become for
each verified account that asked, and the /notify settings. Every row is claimed by one instance at a time (an
owner and a lease on the database's clock), so with several instances each event is handled once and each message
sent once."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from bot.store.database import Conn, Database

#: How long an instance keeps a claimed event or push before another may take it (it is renewed by finishing).
CLAIM_SECONDS = 60.0
#: A repeat delivery (same Idempotency-Key, or the same uid and conversation) is recognised this long.
DEDUPE_SECONDS = 7 * 24 * 3600.0


@dataclass(frozen=True, slots=True)
class OmiEvent:
    id: int
    uid: str
    conversation_id: str
    attempts: int


@dataclass(frozen=True, slots=True)
class Push:
    id: int
    account: str
    conversation_id: str
    content: dict[str, Any]
    created_at: float


@dataclass(frozen=True, slots=True)
class NotifySetting:
    account: str
    mode: str  # "on" | "digest"
    digest_minute: int | None = None
    zone: str | None = None
    last_digest_at: float | None = None


def dedupe_keys(uid: str, conversation_id: str, idempotency_key: str | None) -> list[str]:
    keys = [f"omi-webhook:conversation:{uid}:{conversation_id}"]
    if idempotency_key:
        keys.append(f"omi-webhook:key:{idempotency_key}")
    return keys


class Pushes:
    def __init__(self, db: Database) -> None:
        self._db = db

    # --- events ----------------------------------------------------------------------------------------------

    async def accept_event(self, uid: str, conversation_id: str, idempotency_key: str | None, now: float) -> int | None:
        """Store a webhook delivery; None when it repeats one seen before (either dedupe key)."""
        keys = dedupe_keys(uid, conversation_id, idempotency_key)

        def work(conn: Conn) -> int | None:
            for key in keys:
                if conn.execute("SELECT 1 FROM dedupe WHERE key = ? AND expires_at >= ?", (key, now)).fetchone():
                    return None
            for key in keys:
                conn.execute(
                    "INSERT INTO dedupe (key, expires_at) VALUES (?, ?)"
                    " ON CONFLICT (key) DO UPDATE SET expires_at = excluded.expires_at",
                    (key, now + DEDUPE_SECONDS),
                )
            row = conn.execute(
                "INSERT INTO omi_events (uid, conversation_id, received_at, next_at) VALUES (?, ?, ?, ?) RETURNING id",
                (uid, conversation_id, now, now),
            ).fetchone()
            return int(row[0])

        return await self._db.write(work)

    async def claim_events(self, owner: str, now: float, limit: int = 20) -> list[OmiEvent]:
        now_sql = self._db.now_sql

        def work(conn: Conn) -> list[OmiEvent]:
            rows = _claim(conn, now_sql, "omi_events", "", "id, uid, conversation_id, attempts", (owner, now, limit))
            return [OmiEvent(int(r[0]), r[1], r[2], int(r[3])) for r in rows]

        return await self._db.write(work)

    async def event_later(self, event: OmiEvent, owner: str, at: float) -> None:
        """Omi could not be read: look again at `at` (any instance may)."""
        await self._db.write(
            lambda conn: conn.execute(
                "UPDATE omi_events SET next_at = ?, attempts = attempts + 1, owner = NULL, lease_until = NULL"
                " WHERE id = ? AND owner = ?",
                (at, event.id, owner),
            )
        )

    async def event_handled(
        self, event: OmiEvent, owner: str, pushes: list[tuple[str, bool]], content: Any, now: float
    ) -> None:
        """The event becomes its pushes ((account, for the digest?) each) in one transaction, and is gone."""
        body = json.dumps(content) if content is not None else None

        def work(conn: Conn) -> None:
            gone = conn.execute("DELETE FROM omi_events WHERE id = ? AND owner = ?", (event.id, owner)).rowcount
            if not gone or body is None:
                return  # another instance took it over (this one was too slow): it decides
            for account, digest in pushes:
                conn.execute(
                    "INSERT INTO pushes (account, conversation_id, digest, content, created_at, next_at)"
                    " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (account, conversation_id) DO NOTHING",
                    (account, event.conversation_id, int(digest), body, now, 0.0),
                )

        await self._db.write(work)

    # --- pushes ----------------------------------------------------------------------------------------------

    async def claim_due(self, owner: str, now: float, limit: int = 50) -> list[Push]:
        """Pushes to send now (not digests), oldest first, claimed for this instance."""
        now_sql = self._db.now_sql

        def work(conn: Conn) -> list[Push]:
            returning = "id, account, conversation_id, content, created_at"
            rows = _claim(conn, now_sql, "pushes", "digest = 0 AND ", returning, (owner, now, limit))
            return sorted((_push(r) for r in rows), key=lambda push: push.id)

        return await self._db.write(work)

    async def sent(self, push: Push, owner: str) -> None:
        await self._db.write(
            lambda conn: conn.execute("DELETE FROM pushes WHERE id = ? AND owner = ?", (push.id, owner))
        )

    async def take_digest(self, account: str, due: float, deliver: bool) -> list[Push] | None:
        """The digest due at `due`, recorded as sent (at most once, whichever instance gets here first): its pushes,
        taken out of the table. None when it was already recorded. `deliver` False (too late): recorded, and its
        pushes wait for the next one."""

        def work(conn: Conn) -> list[Push] | None:
            recorded = conn.execute(
                "UPDATE notify_settings SET last_digest_at = ? WHERE account = ? AND mode = 'digest'"
                " AND (last_digest_at IS NULL OR last_digest_at < ?)",
                (due, account, due),
            ).rowcount
            if not recorded:
                return None
            if not deliver:
                return []
            rows = conn.execute(
                "DELETE FROM pushes WHERE account = ? AND digest = 1 AND created_at <= ?"
                " RETURNING id, account, conversation_id, content, created_at",
                (account, due),
            ).fetchall()
            return sorted((_push(r) for r in rows), key=lambda push: push.created_at)

        return await self._db.write(work)

    # --- settings --------------------------------------------------------------------------------------------

    async def setting(self, account: str) -> NotifySetting | None:
        row = await self._db.fetchone(
            "SELECT account, mode, digest_minute, zone, last_digest_at FROM notify_settings WHERE account = ?",
            (account,),
        )
        return _setting(row) if row is not None else None

    async def settings_for(self, accounts: list[str]) -> list[NotifySetting]:
        if not accounts:
            return []
        marks = ", ".join("?" for _ in accounts)
        rows = await self._db.fetchall(
            "SELECT account, mode, digest_minute, zone, last_digest_at FROM notify_settings"  # noqa: S608
            f" WHERE account IN ({marks})",
            accounts,
        )
        return [_setting(row) for row in rows]

    async def digests(self) -> list[NotifySetting]:
        rows = await self._db.fetchall(
            "SELECT account, mode, digest_minute, zone, last_digest_at FROM notify_settings WHERE mode = 'digest'"
        )
        return [_setting(row) for row in rows]

    async def set_mode(self, account: str, setting: NotifySetting | None, now: float) -> None:
        """`None`: off — the row goes, with what waited for a digest."""

        def work(conn: Conn) -> None:
            if setting is None:
                conn.execute("DELETE FROM notify_settings WHERE account = ?", (account,))
                conn.execute("DELETE FROM pushes WHERE account = ?", (account,))
                return
            conn.execute(
                "INSERT INTO notify_settings (account, mode, digest_minute, zone, last_digest_at, updated_at)"
                " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (account) DO UPDATE SET mode = excluded.mode,"
                " digest_minute = excluded.digest_minute, zone = excluded.zone,"
                " last_digest_at = excluded.last_digest_at, updated_at = excluded.updated_at",
                (account, setting.mode, setting.digest_minute, setting.zone, now, now),
            )
            if setting.mode == "on":  # what waited for a digest goes out now
                conn.execute("UPDATE pushes SET digest = 0 WHERE account = ?", (account,))

        await self._db.write(work)

    @staticmethod
    def purge(conn: Conn, before: float) -> None:
        """Housekeeping: pushes nobody could send (or digests nobody asked for any more) after a week."""
        conn.execute("DELETE FROM pushes WHERE created_at < ?", (before,))
        conn.execute("DELETE FROM omi_events WHERE received_at < ?", (before,))


def _claim(conn: Conn, now_sql: str, table: str, where: str, returning: str, params: tuple[Any, ...]) -> list[Any]:
    """Rows of `table` due (`next_at` ≤ now) and not claimed by a live instance, claimed for `owner`. The lease test
    is made again on the row itself: PostgreSQL re-checks it (not the subquery) after waiting for another
    instance's claim of the same row, which then wins alone."""
    free = f"(lease_until IS NULL OR lease_until < {now_sql})"
    owner, now, limit = params
    return conn.execute(
        f"UPDATE {table} SET owner = ?, lease_until = {now_sql} + ?"  # noqa: S608 - names, not values
        f" WHERE id IN (SELECT id FROM {table} WHERE {where}next_at <= ? AND {free} ORDER BY id LIMIT ?)"
        f" AND {free} RETURNING {returning}",
        (owner, CLAIM_SECONDS, now, limit),
    ).fetchall()


def _push(row: Any) -> Push:
    return Push(int(row[0]), row[1], row[2], json.loads(row[3]), float(row[4]))


def _setting(row: Any) -> NotifySetting:
    return NotifySetting(
        account=row["account"],
        mode=row["mode"],
        digest_minute=row["digest_minute"],
        zone=row["zone"],
        last_digest_at=row["last_digest_at"],
    )
