"""The queries behind "More" buttons (SPEC §13): a button's callback data is capped at 64 bytes and a query is not,
so the button carries a token and the query waits here — where any instance behind the load balancer finds it."""

from __future__ import annotations

import secrets

from bot.clock import Clock
from bot.store.database import Conn, Database

#: SPEC §9's retention: a "More" button older than this says the search has expired.
QUERY_TTL_SECONDS = 7 * 24 * 3600


def new_token() -> str:
    """48 random bits as 8 URL-safe characters: short enough for a button next to the page number."""
    return secrets.token_urlsafe(6)


class SearchQueries:
    def __init__(self, db: Database, clock: Clock) -> None:
        self._db = db
        self._clock = clock

    async def remember(self, query: str) -> str:
        """Keep `query`; the token that finds it again (on this instance or any other)."""
        now = self._clock.now()

        def add(conn: Conn) -> str:
            while True:  # a token already taken (a 1 in 2**48 draw) is drawn again
                token = new_token()
                row = conn.execute(
                    "INSERT INTO search_queries (token, query, created_at) VALUES (?, ?, ?)"
                    " ON CONFLICT (token) DO NOTHING RETURNING token",
                    (token, query, now),
                ).fetchone()
                if row is not None:
                    return token

        return await self._db.write(add)

    async def get(self, token: str) -> str | None:
        """The query the token stands for; None if unknown or older than a week."""
        row = await self._db.fetchone(
            "SELECT query FROM search_queries WHERE token = ? AND created_at >= ?",
            (token, self._clock.now() - QUERY_TTL_SECONDS),
        )
        return row["query"] if row is not None else None

    @staticmethod
    def purge(conn: Conn, now: float) -> int:
        """Housekeeping: queries older than a week are of no use to anyone."""
        return conn.execute("DELETE FROM search_queries WHERE created_at < ?", (now - QUERY_TTL_SECONDS,)).rowcount
