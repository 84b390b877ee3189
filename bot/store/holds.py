"""429 holds shared by every instance (SPEC §7, §13): whose requests wait, until when (the bridge's clock)."""

from __future__ import annotations

from collections.abc import Sequence

from bot.store.database import Conn, Database


def hold_keys(uid: str, kind: str) -> tuple[str, str, str]:
    """The holds that stop a (uid, kind): Omi's quota of that kind, the uid's (BYOK), the whole key's."""
    return (f"kind:{uid}:{kind}", f"uid:{uid}", "key")


#: SQL: the (uid, kind) of the outbox row in scope is held at `?` (the bridge's now).
HELD = (
    "EXISTS (SELECT 1 FROM holds WHERE holds.until_at > ? AND holds.key IN"
    " ('kind:' || outbox.uid || ':' || outbox.kind, 'uid:' || outbox.uid, 'key'))"
)


class Holds:
    def __init__(self, db: Database) -> None:
        self._db = db

    @staticmethod
    def hold(conn: Conn, key: str, seconds: float | None, *, first: float, cap: float, now: float) -> float:
        """Hold `key` for `seconds` (Retry-After), else for double its last such hold (from `first`, at most
        `cap`). Returns when the hold ends (a longer hold already in place is kept)."""
        row = conn.execute("SELECT until_at, length FROM holds WHERE key = ?", (key,)).fetchone()
        length = row["length"] if row is not None else None
        if seconds is None:
            seconds = first if length is None else min(cap, float(length) * 2)
            length = seconds
        until = max(now + seconds, float(row["until_at"]) if row is not None else 0.0)
        conn.execute(
            "INSERT INTO holds (key, until_at, length) VALUES (?, ?, ?)"
            " ON CONFLICT (key) DO UPDATE SET until_at = excluded.until_at, length = excluded.length",
            (key, until, length),
        )
        return until

    @staticmethod
    def delivered(conn: Conn, keys: Sequence[str]) -> None:
        """A write went through: the next hold of these keys starts from the beginning again."""
        conn.executemany("UPDATE holds SET length = NULL WHERE key = ?", [(key,) for key in keys])

    @staticmethod
    def purge(conn: Conn, now: float) -> None:
        """Holds that ended (a doubling length is kept a day, for the next 429)."""
        conn.execute("DELETE FROM holds WHERE until_at < ? AND (length IS NULL OR until_at < ?)", (now, now - 86400))

    async def next_end(self, now: float) -> float | None:
        row = await self._db.fetchone("SELECT MIN(until_at) AS t FROM holds WHERE until_at > ?", (now,))
        return float(row["t"]) if row is not None and row["t"] is not None else None
