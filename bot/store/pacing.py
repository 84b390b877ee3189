"""Send pacing shared by every instance (SPEC §13: Telegram's 1 message a second per chat, 25 per bot).

A row per limited key holds the earliest time (the database's clock) its next message may go. A reservation takes
the first slot every key allows — the latest of their `next_at` and now — and moves each key past it by its gap,
all in one transaction; the caller waits until its slot. Two instances never get slots closer than a key's gap."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from bot.store.database import Conn, Database

#: Telegram: at most one message a second in a chat, and 25 a second from the bot in all (below its 30).
TELEGRAM_CHAT_GAP = 1.0
TELEGRAM_BOT_GAP = 1.0 / 25
TELEGRAM_BOT_KEY = "telegram:bot"
#: Every request made with the Omi app key, when `OMI_MAX_REQUESTS_PER_MINUTE` caps them.
OMI_KEY = "omi:key"


def telegram_limits(chat: str) -> tuple[tuple[str, float], ...]:
    """A message to a Telegram chat: the bot's limit (the shared key, locked first), then the chat's."""
    return ((TELEGRAM_BOT_KEY, TELEGRAM_BOT_GAP), (f"telegram:chat:{chat}", TELEGRAM_CHAT_GAP))


@dataclass(frozen=True, slots=True)
class Slot:
    """A reservation: when the message may go, and the database's clock when it was reserved."""

    at: float
    now: float

    @property
    def wait(self) -> float:
        return max(0.0, self.at - self.now)


class Pacing:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def reserve(self, limits: Sequence[tuple[str, float]]) -> Slot:
        """One slot under every (key, gap) of `limits`: the first moment no key's gap is broken."""
        now_sql = self._db.now_sql
        return await self._db.write(lambda conn: Pacing.take(conn, now_sql, limits))

    @staticmethod
    def take(conn: Conn, now_sql: str, limits: Sequence[tuple[str, float]]) -> Slot:
        """`reserve` inside the caller's transaction. Keys are locked in the order given, so every caller names a
        shared key first (Telegram's bot key): two transactions on PostgreSQL then queue on it rather than lock
        chat rows in opposite orders."""
        now = float(conn.execute(f"SELECT {now_sql} AS now").fetchone()[0])
        slot = now
        for key, _gap in limits:
            # Insert or touch the row: on PostgreSQL the row stays locked until this transaction ends, so a
            # concurrent reservation reads `next_at` only once this one has moved it.
            row = conn.execute(
                "INSERT INTO send_pacing (key, next_at) VALUES (?, ?)"
                " ON CONFLICT (key) DO UPDATE SET next_at = send_pacing.next_at RETURNING next_at",
                (key, now),
            ).fetchone()
            slot = max(slot, float(row[0]))
        for key, gap in limits:
            conn.execute("UPDATE send_pacing SET next_at = ? WHERE key = ?", (slot + gap, key))
        return Slot(slot, now)

    async def omi(self, interval: float) -> float:
        """Seconds to wait before the next Omi request of the app key may go (`OMI_MAX_REQUESTS_PER_MINUTE`,
        counted over every instance)."""
        return (await self.reserve(((OMI_KEY, interval),))).wait

    async def telegram(self, chat: str) -> float:
        """Seconds to wait before the next message to a Telegram chat may go (its slot, reserved now)."""
        return (await self.reserve(telegram_limits(chat))).wait

    @staticmethod
    def purge(conn: Conn, now_sql: str) -> int:
        """Housekeeping: a row whose time has passed says no more than no row at all."""
        return conn.execute(f"DELETE FROM send_pacing WHERE next_at < {now_sql} - 60").rowcount  # noqa: S608
