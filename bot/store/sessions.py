"""Sessions shared by several instances (SPEC §13): a session's waiting inbox rows are handled by the instance
holding its lease ("session:<key>", see `bot.store.inbox.session_lease`). The queries `bot.sessions` runs: the
rows of our sessions, sessions nobody holds (their holder died), renewal, and giving idle sessions back."""

from __future__ import annotations

from collections.abc import Sequence

from bot.store.database import Conn, Database
from bot.store.inbox import ROW_COLUMNS, SESSION_LEASE_SQL, InboxRow, inbox_row
from bot.store.leases import Leases

#: Sessions taken over in one go (the rest at the next look).
TAKE_AT_ONCE = 200


class SessionRows:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def ours(self, owner: str) -> list[InboxRow]:
        """Waiting rows of the sessions `owner` holds, oldest first — also those another instance accepted."""
        rows = await self._db.fetchall(
            f"SELECT {ROW_COLUMNS} FROM inbox JOIN leases ON leases.name = {SESSION_LEASE_SQL}"  # noqa: S608
            f" WHERE inbox.state = 'new' AND leases.owner = ? AND leases.expires_at > {self._db.now_sql}"
            " ORDER BY inbox.received_at, inbox.id",
            (owner,),
        )
        return [inbox_row(r) for r in rows]

    async def waiting(self, session: str, until: float) -> list[InboxRow]:
        """Waiting rows of one session (its adapter's key) received up to `until`, wherever they were accepted."""
        rows = await self._db.fetchall(
            f"SELECT {ROW_COLUMNS} FROM inbox WHERE state = 'new' AND session = ?"  # noqa: S608
            " AND received_at <= ? ORDER BY received_at, id",
            (session, until),
        )
        return [inbox_row(r) for r in rows]

    async def take_orphans(self, owner: str, seconds: float) -> int:
        """Take the leases of sessions with waiting rows that no instance holds (a dead holder's, or rows whose
        acceptor could not take the lease as the holder let go). Returns how many were taken."""
        now_sql = self._db.now_sql
        names = [
            row["name"]
            for row in await self._db.fetchall(
                f"SELECT DISTINCT {SESSION_LEASE_SQL} AS name FROM inbox"  # noqa: S608
                f" LEFT JOIN leases ON leases.name = {SESSION_LEASE_SQL} AND leases.expires_at > {now_sql}"
                f" WHERE inbox.state = 'new' AND leases.name IS NULL LIMIT {TAKE_AT_ONCE}"
            )
        ]
        if not names:
            return 0

        def take(conn: Conn) -> int:
            return sum(Leases.take(conn, now_sql, name, owner, seconds) is not None for name in names)

        return await self._db.write(take)

    async def renew(self, owner: str, seconds: float) -> int:
        """Extend every session lease `owner` still holds (one expired and taken over is not ours any more)."""
        now_sql = self._db.now_sql

        def renew(conn: Conn) -> int:
            return conn.execute(
                f"UPDATE leases SET expires_at = {now_sql} + ?"  # noqa: S608
                f" WHERE owner = ? AND name LIKE 'session:%' AND expires_at > {now_sql}",
                (seconds, owner),
            ).rowcount

        return await self._db.write(renew)

    async def release_idle(self, owner: str, keep: Sequence[str] = ()) -> None:
        """Give back our session leases that have no waiting rows (and are not in `keep`): the next message of
        such a session is handled by whichever instance accepts it."""

        def release(conn: Conn) -> None:
            kept = "".join(" AND name <> ?" for _ in keep)
            conn.execute(
                "DELETE FROM leases WHERE owner = ? AND name LIKE 'session:%'"  # noqa: S608
                f" AND NOT EXISTS (SELECT 1 FROM inbox WHERE inbox.state = 'new' AND {SESSION_LEASE_SQL} = leases.name)"
                f"{kept}",
                (owner, *keep),
            )

        await self._db.write(release)

    async def release_all(self, owner: str) -> None:
        """At a stop: every session lease of ours goes, so another instance takes the waiting rows over at once."""
        await self._db.write(
            lambda conn: conn.execute("DELETE FROM leases WHERE owner = ? AND name LIKE 'session:%'", (owner,))
        )
