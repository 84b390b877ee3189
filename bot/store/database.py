"""The SQLite connection: WAL, migrations at start, and group commit for every write."""

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


#: Writes that share one commit at most (a webhook's arrival, a delivery's state, a burst's conversation...).
MAX_GROUP = 256


class Database:
    """One aiosqlite connection. Reads go straight to it; writes go through `write()`, which group-commits."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._conn: aiosqlite.Connection | None = None
        self._waiting: list[tuple[Callable[[sqlite3.Connection], Any], asyncio.Future[Any]]] = []
        self._wakeup = asyncio.Event()
        self._writer: asyncio.Task[None] | None = None
        self._closing = False

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
        if self._writer is not None:
            # What was submitted is written before the connection goes: the writer ends once it has no work.
            self._closing = True
            self._wakeup.set()
            await asyncio.gather(self._writer, return_exceptions=True)
            self._writer = None
            self._closing = False
        if self._conn is not None:
            conn, self._conn = self._conn, None
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
            await conn._execute(_apply_migration, conn._conn, migration)  # in aiosqlite's thread, see write()

    async def schema_version(self) -> int:
        row = await self.fetchone("SELECT COALESCE(MAX(version), 0) AS v FROM schema_version")
        return int(row["v"]) if row else 0

    async def write(self, work: Callable[[sqlite3.Connection], T]) -> T:
        """Run `work(conn)` in a write transaction: its changes are committed if it returns, undone if it raises.

        Writes submitted while a commit is under way share the next one (each in a savepoint of its own, so one
        failing undoes only itself): one hop to the database thread and one fsync for the lot. A hop costs a
        trip through a busy event loop and a wait for the GIL, several times what a statement costs."""
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write_loop(), name="database-group-commit")
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._waiting.append((work, future))
        self._wakeup.set()
        return await future

    async def _write_loop(self) -> None:
        while not (self._closing and not self._waiting):
            await self._wakeup.wait()
            self._wakeup.clear()
            while self._waiting:
                group, self._waiting = self._waiting[:MAX_GROUP], self._waiting[MAX_GROUP:]
                # A write whose caller was cancelled before it began is not made: a stopped task writes nothing.
                group = [(work, future) for work, future in group if not future.cancelled()]
                if not group:
                    continue
                try:
                    raw = self.conn._conn  # the sqlite3 connection that aiosqlite's thread owns
                    # aiosqlite runs every call through `_execute` in its thread and has no public way to run a
                    # function there; the whole store writes through this one place.
                    outcomes = await self.conn._execute(_commit_group, raw, [work for work, _ in group])
                except (sqlite3.Error, DatabaseUnavailable) as exc:
                    error = exc if isinstance(exc, DatabaseUnavailable) else DatabaseUnavailable(str(exc))
                    log.error("database: commit failed: %s", exc)
                    outcomes = [(False, error)] * len(group)
                for (_, future), (ok, value) in zip(group, outcomes, strict=True):
                    if future.done():
                        continue
                    if ok:
                        future.set_result(value)
                    else:
                        if isinstance(value, sqlite3.OperationalError):
                            value = DatabaseUnavailable(str(value))
                        future.set_exception(value)

    async def barrier(self) -> None:
        """Return once every write submitted before this call has been committed (or undone)."""
        if self._writer is not None and not self._writer.done():
            await self.write(lambda conn: None)

    async def fetchall(self, sql: str, params: Iterable[Any] = ()) -> list[sqlite3.Row]:
        async with self.conn.execute(sql, tuple(params)) as cursor:
            return list(await cursor.fetchall())

    async def fetchone(self, sql: str, params: Iterable[Any] = ()) -> sqlite3.Row | None:
        async with self.conn.execute(sql, tuple(params)) as cursor:
            return await cursor.fetchone()

    async def is_writable(self) -> bool:
        try:
            await self.write(
                lambda conn: conn.execute(
                    "INSERT OR REPLACE INTO stored_values VALUES ('health_probe', datetime('now'))"
                )
            )
        except (DatabaseUnavailable, sqlite3.Error):
            return False
        return True


def _apply_migration(conn: sqlite3.Connection, migration: Migration) -> None:
    """In the database thread: the migration's SQL, its rewrite and its version row as one transaction."""
    # executescript commits a pending transaction first, so the script opens the transaction itself.
    conn.executescript("BEGIN IMMEDIATE;\n" + migration.sql)
    try:
        if migration.rewrite is not None:
            migration.rewrite(conn)
        conn.execute(
            "INSERT INTO schema_version VALUES (?, ?, datetime('now'))", (migration.version, migration.description)
        )
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


def _commit_group(conn: sqlite3.Connection, works: list[Callable[[sqlite3.Connection], Any]]) -> list[tuple[bool, Any]]:
    """In the database thread: every work in a savepoint of its own, all under one commit."""
    outcomes: list[tuple[bool, Any]] = []
    conn.execute("BEGIN IMMEDIATE")
    try:
        for work in works:
            conn.execute("SAVEPOINT work")
            try:
                outcomes.append((True, work(conn)))
            except Exception as exc:
                conn.execute("ROLLBACK TO work")
                outcomes.append((False, exc))
            conn.execute("RELEASE work")
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    return outcomes
