"""The SQLite connection: WAL, migrations at start, and one write transaction at a time."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, TypeVar

import aiosqlite

from bot.store.migrations import MIGRATIONS, Migration

log = logging.getLogger(__name__)

T = TypeVar("T")


class DatabaseUnavailable(Exception):
    """The database cannot take writes (disk full, file gone, locked too long): answer 503, store nothing."""


class Database:
    """One aiosqlite connection. Writers go through `write()`, which serialises transactions."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._conn: aiosqlite.Connection | None = None
        self._write_lock = asyncio.Lock()

    @property
    def conn(self) -> aiosqlite.Connection:
        if self._conn is None:
            raise DatabaseUnavailable("database is not open")
        return self._conn

    async def open(self, migrations: Iterable[Migration] = MIGRATIONS) -> None:
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self._conn = await aiosqlite.connect(self.path, isolation_level=None, timeout=10)
        self._conn.row_factory = sqlite3.Row
        await self._conn.execute("PRAGMA journal_mode=WAL")
        # FULL: a commit survives power loss too. Group commit keeps the fsyncs few.
        await self._conn.execute("PRAGMA synchronous=FULL")
        await self._conn.execute("PRAGMA foreign_keys=ON")
        await self._migrate(list(migrations))

    async def close(self) -> None:
        if self._conn is not None:
            conn, self._conn = self._conn, None
            async with self._write_lock:
                await conn.close()

    async def _migrate(self, migrations: list[Migration]) -> None:
        conn = self.conn
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER PRIMARY KEY, description TEXT, applied_at TEXT)"
        )
        async with conn.execute("SELECT COALESCE(MAX(version), 0) FROM schema_version") as cursor:
            row = await cursor.fetchone()
        current = row[0] if row else 0
        for migration in sorted(migrations, key=lambda m: m.version):
            if migration.version <= current:
                continue
            log.info("database: migrating to v%d (%s)", migration.version, migration.description)
            # executescript commits first; the whole migration plus its version row is one transaction.
            await conn.executescript(
                "BEGIN IMMEDIATE;\n"
                + migration.sql
                + f"\nINSERT INTO schema_version VALUES ({migration.version}, "
                + "'"
                + migration.description.replace("'", "''")
                + "', datetime('now'));\nCOMMIT;"
            )

    async def schema_version(self) -> int:
        row = await self.fetchone("SELECT COALESCE(MAX(version), 0) AS v FROM schema_version")
        return int(row["v"]) if row else 0

    async def write(self, work: Callable[[sqlite3.Connection], T]) -> T:
        """Run `work(conn)` as one write transaction in the database thread: committed if it returns, rolled back
        if it raises. One hop from the event loop however many statements it runs — each hop costs a trip through
        a busy loop and a wait for the GIL, several times what a statement costs — and writers never interleave.
        """

        def transaction(conn: sqlite3.Connection) -> T:
            conn.execute("BEGIN IMMEDIATE")
            try:
                result = work(conn)
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
            return result

        async with self._write_lock:
            raw = self.conn._conn  # the sqlite3 connection that aiosqlite's thread owns
            try:
                # aiosqlite runs every call through `_execute` in its thread and has no public way to run a
                # function there; the whole store writes through this one place.
                return await self.conn._execute(transaction, raw)
            except sqlite3.OperationalError as exc:
                raise DatabaseUnavailable(str(exc)) from exc

    async def fetchall(self, sql: str, params: Iterable[Any] = ()) -> list[sqlite3.Row]:
        async with self.conn.execute(sql, tuple(params)) as cursor:
            return list(await cursor.fetchall())

    async def fetchone(self, sql: str, params: Iterable[Any] = ()) -> sqlite3.Row | None:
        async with self.conn.execute(sql, tuple(params)) as cursor:
            return await cursor.fetchone()

    async def is_writable(self) -> bool:
        try:
            await self.write(
                lambda conn: conn.execute("INSERT OR REPLACE INTO settings VALUES ('health_probe', datetime('now'))")
            )
        except (DatabaseUnavailable, sqlite3.Error):
            return False
        return True
