"""The bridge's store (SQLite or PostgreSQL): the only place that writes SQL."""

from __future__ import annotations

from dataclasses import dataclass

from bot.clock import Clock
from bot.store.claims import Claim, Claims
from bot.store.code_sends import CodeSend, CodeSends
from bot.store.database import Batched, Conn, Database, DatabaseUnavailable
from bot.store.imports import Imports
from bot.store.inbox import Accepted, Arrival, Inbox, InboxRow, RowsTaken, mark_done
from bot.store.leases import Leases
from bot.store.links import Link, Links
from bot.store.outbox import ItemState, NewItem, Outbox, OutboxItem
from bot.store.pacing import Pacing
from bot.store.postgres import DatabaseRefused, PostgresDatabase
from bot.store.pushes import Pushes
from bot.store.search_queries import SearchQueries
from bot.store.sqlite import SqliteDatabase
from bot.store.transcripts import Transcripts
from bot.store.values import StoredValues
from bot.store.writes import ItemKind, OmiWrite


def open_database(target: str, *, wait_at_start: bool = True) -> Database:
    """The engine for `target` (not yet opened)."""
    if target.startswith(("postgresql://", "postgres://")):
        return PostgresDatabase(target, wait_at_start=wait_at_start)
    prefix = "sqlite:///"
    return SqliteDatabase(target[len(prefix) :] if target.startswith(prefix) else target)


def purge_shared(conn: Conn, now: float, now_sql: str) -> None:
    """Housekeeping (in its write) of what instances share instead of keeping in memory: "More" buttons' queries
    older than a week, code sends whose code expired, send pacing slots long past."""
    SearchQueries.purge(conn, now)
    CodeSends.purge(conn, now)
    Pacing.purge(conn, now_sql)


@dataclass
class Store:
    """Every repository over one database."""

    db: Database
    inbox: Inbox
    links: Links
    outbox: Outbox
    values: StoredValues
    leases: Leases
    claims: Claims
    search_queries: SearchQueries
    code_sends: CodeSends
    pacing: Pacing
    imports: Imports
    transcripts: Transcripts
    pushes: Pushes

    @classmethod
    async def open(cls, target: str, clock: Clock, *, wait_at_start: bool = True) -> Store:
        """The store at `target`: a DATABASE_URL (`sqlite:///…`, `postgresql://…`) or an SQLite file path.
        PostgreSQL that cannot be reached yet is waited for (with a log line), unless `wait_at_start` is off."""
        db = open_database(target, wait_at_start=wait_at_start)
        try:
            await db.open()
        except BaseException:
            await db.close()  # its connection's thread would keep the process alive
            raise
        return cls(
            db=db,
            inbox=Inbox(db, clock),
            links=Links(db, clock),
            outbox=Outbox(db),
            values=StoredValues(db),
            leases=Leases(db),
            claims=Claims(db),
            search_queries=SearchQueries(db, clock),
            code_sends=CodeSends(db),
            pacing=Pacing(db),
            imports=Imports(db),
            transcripts=Transcripts(db),
            pushes=Pushes(db),
        )

    async def close(self) -> None:
        await self.db.close()


__all__ = [
    "Accepted",
    "Arrival",
    "Batched",
    "Claim",
    "CodeSend",
    "Database",
    "DatabaseRefused",
    "DatabaseUnavailable",
    "InboxRow",
    "ItemKind",
    "ItemState",
    "Link",
    "NewItem",
    "OmiWrite",
    "OutboxItem",
    "Pacing",
    "RowsTaken",
    "SearchQueries",
    "Store",
    "mark_done",
    "open_database",
    "purge_shared",
]
