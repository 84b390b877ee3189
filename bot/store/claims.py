"""Link tokens (from the setup page) and claims with their verification codes. Secrets are stored hashed."""

from __future__ import annotations

from dataclasses import dataclass

from bot.store.database import Conn, Database


@dataclass(frozen=True, slots=True)
class Claim:
    account: str
    uid: str
    code_hash: str | None
    code_expires_at: float | None
    wrong_attempts: int
    created_at: float


class Claims:
    def __init__(self, db: Database) -> None:
        self._db = db

    # --- link tokens -----------------------------------------------------------------------------------

    async def add_token(self, token_hash: str, uid: str, now: float, ttl: float, max_open: int) -> None:
        """Store a new token; beyond `max_open` open tokens for the uid, the oldest stop working."""

        def add(conn: Conn) -> None:
            # `seq` orders tokens issued at the same moment (the newest `max_open` stay open).
            conn.execute(
                "INSERT INTO link_tokens (token_hash, uid, created_at, expires_at, seq)"
                " VALUES (?, ?, ?, ?, (SELECT COALESCE(MAX(seq), 0) + 1 FROM link_tokens))",
                (token_hash, uid, now, now + ttl),
            )
            conn.execute(
                "DELETE FROM link_tokens WHERE uid = ? AND used_at IS NULL AND token_hash NOT IN ("
                " SELECT token_hash FROM link_tokens WHERE uid = ? AND used_at IS NULL AND expires_at > ?"
                " ORDER BY created_at DESC, seq DESC LIMIT ?)",
                (uid, uid, now, max_open),
            )

        await self._db.write(add)

    async def open_tokens(self, uid: str, now: float) -> int:
        row = await self._db.fetchone(
            "SELECT COUNT(*) AS n FROM link_tokens WHERE uid = ? AND used_at IS NULL AND expires_at > ?", (uid, now)
        )
        return int(row["n"]) if row else 0

    @staticmethod
    def use_token(conn: Conn, token_hash: str, now: float) -> str | None:
        """Spend a token (single use across platforms); its uid, or None if unknown, used or expired."""
        row = conn.execute(
            "UPDATE link_tokens SET used_at = ? WHERE token_hash = ? AND used_at IS NULL AND expires_at > ?"
            " RETURNING uid",
            (now, token_hash, now),
        ).fetchone()
        return row[0] if row else None

    # --- claims -------------------------------------------------------------------------------------

    async def get(self, account: str) -> Claim | None:
        row = await self._db.fetchone("SELECT * FROM claims WHERE account = ?", (account,))
        if row is None:
            return None
        return Claim(
            account=row["account"],
            uid=row["uid"],
            code_hash=row["code_hash"],
            code_expires_at=row["code_expires_at"],
            wrong_attempts=row["wrong_attempts"],
            created_at=row["created_at"],
        )

    @staticmethod
    def put(conn: Conn, account: str, uid: str, handle_hint: str, now: float) -> None:
        """One open claim per account: a new claim replaces the old one (and its code)."""
        platform, _, user_id = account.partition(":")
        conn.execute("DELETE FROM claims WHERE account = ?", (account,))
        conn.execute("DELETE FROM links WHERE account = ? AND state = 'claimed'", (account,))
        conn.execute("INSERT INTO claims (account, uid, created_at) VALUES (?, ?, ?)", (account, uid, now))
        conn.execute(
            "INSERT INTO links (account, state, uid, platform, user_id, handle_hint, created_at)"
            " VALUES (?, 'claimed', ?, ?, ?, ?, ?)",
            (account, uid, platform, user_id, handle_hint[-2:], now),
        )

    async def set_code(self, account: str, code_hash: str, expires_at: float, uid: str, now: float) -> None:
        """A new code voids the old one; each code counts toward the uid's hourly limit."""

        def store(conn: Conn) -> None:
            conn.execute(
                "UPDATE claims SET code_hash = ?, code_expires_at = ? WHERE account = ?",
                (code_hash, expires_at, account),
            )
            conn.execute("INSERT INTO codes_sent (uid, sent_at) VALUES (?, ?)", (uid, now))
            conn.execute("DELETE FROM codes_sent WHERE sent_at < ?", (now - 24 * 3600,))

        await self._db.write(store)

    async def codes_sent_since(self, uid: str, since: float) -> list[float]:
        rows = await self._db.fetchall(
            "SELECT sent_at FROM codes_sent WHERE uid = ? AND sent_at > ? ORDER BY sent_at", (uid, since)
        )
        return [row["sent_at"] for row in rows]

    async def wrong_code(self, account: str) -> int:
        def count(conn: Conn) -> int:
            row = conn.execute(
                "UPDATE claims SET wrong_attempts = wrong_attempts + 1 WHERE account = ? RETURNING wrong_attempts",
                (account,),
            ).fetchone()
            return int(row[0]) if row else 0

        return await self._db.write(count)

    @staticmethod
    def void(conn: Conn, account: str) -> None:
        """Drop the claim and the claimed link (a verified link of the account stays)."""
        conn.execute("DELETE FROM claims WHERE account = ?", (account,))
        conn.execute("DELETE FROM links WHERE account = ? AND state = 'claimed'", (account,))
        conn.execute("DELETE FROM outbox WHERE account = ? AND state = 'held'", (account,))

    @staticmethod
    def promote(conn: Conn, account: str, now: float) -> None:
        """The code was right: the claim becomes the account's verified link (replacing an older one)."""
        conn.execute("DELETE FROM claims WHERE account = ?", (account,))
        conn.execute("DELETE FROM links WHERE account = ? AND state = 'verified'", (account,))
        conn.execute(
            "UPDATE links SET state = 'verified', verified_at = ? WHERE account = ? AND state = 'claimed'",
            (now, account),
        )

    @staticmethod
    def purge(conn: Conn, now: float) -> None:
        """Expired or used tokens and day-old code counts are of no use to anyone."""
        conn.execute("DELETE FROM link_tokens WHERE expires_at < ? OR used_at IS NOT NULL", (now,))
        conn.execute("DELETE FROM codes_sent WHERE sent_at < ?", (now - 24 * 3600,))

    async def uid_has_link(self, uid: str) -> bool:
        row = await self._db.fetchone("SELECT 1 FROM links WHERE uid = ? LIMIT 1", (uid,))
        return row is not None
