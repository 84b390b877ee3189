"""Leases (SPEC §13): who works on a uid's deliveries, a session's burst, a periodic job — one instance at a time.

A lease is taken when it is free or expired, renewed while it is held, and given back when done. Every take-over
bumps its `epoch`, so a former holder's late write is recognised and refused. Times are the database's clock
(`Database.now_sql`), never an instance's: instances whose clocks disagree still agree on who holds what."""

from __future__ import annotations

from dataclasses import dataclass

from bot.store.database import Conn, Database


@dataclass(frozen=True, slots=True)
class Lease:
    name: str
    owner: str
    epoch: int


class Leases:
    def __init__(self, db: Database) -> None:
        self._db = db

    # --- inside the caller's transaction (`Database.write`) --------------------------------------------------

    @staticmethod
    def take(conn: Conn, now_sql: str, name: str, owner: str, seconds: float) -> Lease | None:
        """The lease, if it is free, expired, or already ours (then it is extended, same epoch); else None."""
        row = conn.execute(
            f"INSERT INTO leases (name, owner, epoch, expires_at) VALUES (?, ?, 1, {now_sql} + ?)"  # noqa: S608
            " ON CONFLICT (name) DO UPDATE SET"
            f" epoch = CASE WHEN leases.owner = excluded.owner AND leases.expires_at > {now_sql}"
            " THEN leases.epoch ELSE leases.epoch + 1 END,"
            " owner = excluded.owner, expires_at = excluded.expires_at"
            f" WHERE leases.owner = excluded.owner OR leases.expires_at <= {now_sql}"
            " RETURNING epoch",
            (name, owner, seconds),
        ).fetchone()
        return Lease(name, owner, int(row[0])) if row is not None else None

    @staticmethod
    def renew(conn: Conn, now_sql: str, lease: Lease, seconds: float) -> bool:
        """Extend a lease we hold; False when it is no longer ours (taken over after it expired)."""
        return bool(
            conn.execute(
                f"UPDATE leases SET expires_at = {now_sql} + ? WHERE name = ? AND owner = ? AND epoch = ?",  # noqa: S608
                (seconds, lease.name, lease.owner, lease.epoch),
            ).rowcount
        )

    @staticmethod
    def release(conn: Conn, lease: Lease) -> None:
        """Give a lease back (if it is still ours): the next taker need not wait for it to expire."""
        conn.execute(
            "DELETE FROM leases WHERE name = ? AND owner = ? AND epoch = ?", (lease.name, lease.owner, lease.epoch)
        )

    @staticmethod
    def held(conn: Conn, lease: Lease) -> bool:
        row = conn.execute(
            "SELECT 1 FROM leases WHERE name = ? AND owner = ? AND epoch = ?", (lease.name, lease.owner, lease.epoch)
        ).fetchone()
        return row is not None

    @staticmethod
    def clear(conn: Conn) -> None:
        """Forget every lease: only when this process is known to be the database's only user (SQLite's worker
        lock), so leases of a previous run need not be waited out."""
        conn.execute("DELETE FROM leases")

    # --- reads ---------------------------------------------------------------------------------------------

    async def holder(self, name: str) -> Lease | None:
        row = await self._db.fetchone(
            f"SELECT name, owner, epoch FROM leases WHERE name = ? AND expires_at > {self._db.now_sql}",  # noqa: S608
            (name,),
        )
        return Lease(row["name"], row["owner"], int(row["epoch"])) if row is not None else None
