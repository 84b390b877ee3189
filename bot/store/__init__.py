"""The bridge's SQLite store: the only place that writes SQL."""

from __future__ import annotations

from dataclasses import dataclass

from bot.clock import Clock
from bot.store.claims import Claim, Claims
from bot.store.database import Database, DatabaseUnavailable
from bot.store.inbox import Accepted, Arrival, Inbox, InboxRow, mark_done
from bot.store.links import Link, Links
from bot.store.outbox import ItemState, NewItem, Outbox, OutboxItem
from bot.store.values import StoredValues
from bot.store.writes import ItemKind, OmiWrite


@dataclass
class Store:
    """Every repository over one database."""

    db: Database
    inbox: Inbox
    links: Links
    outbox: Outbox
    values: StoredValues
    claims: Claims

    @classmethod
    async def open(cls, path: str, clock: Clock) -> Store:
        db = Database(path)
        await db.open()
        return cls(
            db=db,
            inbox=Inbox(db, clock),
            links=Links(db, clock),
            outbox=Outbox(db),
            values=StoredValues(db),
            claims=Claims(db),
        )

    async def close(self) -> None:
        await self.db.close()


__all__ = [
    "Accepted",
    "Arrival",
    "Claim",
    "Database",
    "DatabaseUnavailable",
    "InboxRow",
    "ItemKind",
    "ItemState",
    "Link",
    "NewItem",
    "OmiWrite",
    "OutboxItem",
    "Store",
    "mark_done",
]
