"""Links between chat accounts and Omi uids (claimed or verified)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from bot.clock import Clock
from bot.store.database import Conn, Database

LinkState = Literal["claimed", "verified"]


@dataclass(frozen=True, slots=True)
class Link:
    account: str
    state: LinkState
    uid: str
    platform: str
    user_id: str
    handle_hint: str
    created_at: float
    verified_at: float | None

    @property
    def verified(self) -> bool:
        return self.state == "verified"


def split_account(account: str) -> tuple[str, str]:
    platform, _, user_id = account.partition(":")
    return platform, user_id


class Links:
    def __init__(self, db: Database, clock: Clock) -> None:
        self._db = db
        self._clock = clock

    async def get(self, account: str) -> tuple[Link | None, Link | None]:
        """(verified link, open claim) of one account."""
        rows = await self._db.fetchall("SELECT * FROM links WHERE account = ?", (account,))
        links = {row["state"]: _link(row) for row in rows}
        return links.get("verified"), links.get("claimed")

    async def verified(self, account: str) -> Link | None:
        row = await self._db.fetchone("SELECT * FROM links WHERE account = ? AND state = 'verified'", (account,))
        return _link(row) if row else None

    async def for_uid(self, uid: str) -> list[Link]:
        rows = await self._db.fetchall("SELECT * FROM links WHERE uid = ? ORDER BY created_at", (uid,))
        return [_link(row) for row in rows]

    async def link_verified(self, account: str, uid: str, *, handle_hint: str = "") -> None:
        """The operator command and the sandbox shortcut: straight to verified, replacing any link."""
        await self._db.write(lambda conn: self.set_verified(conn, account, uid, handle_hint=handle_hint))

    def set_verified(self, conn: Conn, account: str, uid: str, *, handle_hint: str = "") -> None:
        platform, user_id = split_account(account)
        now = self._clock.now()
        conn.execute("DELETE FROM links WHERE account = ?", (account,))
        conn.execute("DELETE FROM claims WHERE account = ?", (account,))
        conn.execute(
            "INSERT INTO links (account, state, uid, platform, user_id, handle_hint, created_at, verified_at)"
            " VALUES (?, 'verified', ?, ?, ?, ?, ?, ?)",
            (account, uid, platform, user_id, (handle_hint or user_id)[-2:], now, now),
        )

    @staticmethod
    def delete_account(conn: Conn, account: str) -> int:
        """Everything the bridge holds for an account: links, claims, queued items, transcripts. Returns links
        removed."""
        removed = conn.execute("DELETE FROM links WHERE account = ?", (account,)).rowcount
        conn.execute("DELETE FROM claims WHERE account = ?", (account,))
        conn.execute("DELETE FROM outbox WHERE account = ?", (account,))
        conn.execute("DELETE FROM transcripts WHERE account = ?", (account,))
        conn.execute("DELETE FROM pushes WHERE account = ?", (account,))
        conn.execute("DELETE FROM notify_settings WHERE account = ?", (account,))
        return removed


def _link(row: Any) -> Link:
    return Link(
        account=row["account"],
        state=row["state"],
        uid=row["uid"],
        platform=row["platform"],
        user_id=row["user_id"],
        handle_hint=row["handle_hint"],
        created_at=row["created_at"],
        verified_at=row["verified_at"],
    )
