"""SQLite, the default engine: one aiosqlite connection in WAL mode, `synchronous=FULL` (a commit survives power
loss; group commit keeps the fsyncs few)."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import aiosqlite

from bot.store.database import Database, DatabaseUnavailable, applied_at
from bot.store.migrations import Migration

T = TypeVar("T")
#: How long a statement waits for another process's lock before it fails ("database is locked").
LOCK_TIMEOUT_SECONDS = 10.0


class SqliteDatabase(Database):
    engine = "sqlite"
    clock_sql = "(julianday('now') - 2440587.5) * 86400.0"

    def __init__(self, path: str) -> None:
        super().__init__()
        self.path = path
        self._conn: aiosqlite.Connection | None = None

    @property
    def conn(self) -> aiosqlite.Connection:
        if self._conn is None:
            raise DatabaseUnavailable("database is not open")
        return self._conn

    async def _connect(self) -> None:
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self._conn = await aiosqlite.connect(self.path, isolation_level=None, timeout=LOCK_TIMEOUT_SECONDS)
        self._conn.row_factory = sqlite3.Row
        await self._wal()
        await self._conn.execute("PRAGMA synchronous=FULL")
        await self._conn.execute("PRAGMA foreign_keys=ON")

    async def _wal(self) -> None:
        """WAL mode. Switching a new file into it takes the file for itself, and SQLite answers "database is locked"
        at once — without waiting `timeout` as it does for other locks — while another process is doing the same
        (two commands started together on a new file): waited for here, up to the same `timeout`."""
        deadline = asyncio.get_running_loop().time() + LOCK_TIMEOUT_SECONDS
        while True:
            try:
                await self.conn.execute("PRAGMA journal_mode=WAL")
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or asyncio.get_running_loop().time() > deadline:
                    raise
            await asyncio.sleep(0.02)

    async def _disconnect(self) -> None:
        if self._conn is not None:
            conn, self._conn = self._conn, None
            await conn.close()

    async def run(self, function: Callable[..., T], *args: Any) -> T:
        # aiosqlite runs every call through `_execute` in its thread and has no public way to run a function
        # there; the whole store goes through this one place.
        return await self.conn._execute(function, self.conn._conn, *args)

    @staticmethod
    def insert_rows(conn: Any, sql: str, params: Sequence[Any], count: int) -> list[int]:
        # SQLite numbers the rows of one INSERT one after another (max(id) + 1 each): they are counted back from the
        # last. One step of the statement, where RETURNING would be a step per row — each a wait for the GIL while
        # the event loop runs.
        last = conn.execute(sql, params).lastrowid
        return list(range(last - count + 1, last + 1))

    def _begin(self) -> str:
        return "BEGIN IMMEDIATE"

    def _unavailable(self, exc: BaseException) -> DatabaseUnavailable | None:
        # OperationalError: locked too long, disk full, file gone, read-only... — not a work's own mistake.
        return DatabaseUnavailable(str(exc)) if isinstance(exc, sqlite3.OperationalError) else None

    async def fetchall(self, sql: str, params: Iterable[Any] = ()) -> list[Any]:
        async with self.conn.execute(sql, tuple(params)) as cursor:
            return list(await cursor.fetchall())

    async def fetchone(self, sql: str, params: Iterable[Any] = ()) -> Any | None:
        async with self.conn.execute(sql, tuple(params)) as cursor:
            return await cursor.fetchone()

    def _apply(self, conn: sqlite3.Connection, migration: Migration) -> None:
        # executescript commits a pending transaction first, so the script opens the transaction itself — and
        # claims the version first: another process that migrated the same file meanwhile (two commands started at
        # once on a new file; only `serve` holds the worker lock) already holds it, and this one then has nothing
        # to do. The script's values are the bridge's own (an int, its fixed text, a timestamp), quoted.
        description = migration.description.replace("'", "''")
        claim = f"INSERT INTO schema_version VALUES ({int(migration.version)}, '{description}', '{applied_at()}');"  # noqa: S608
        try:
            conn.executescript("BEGIN IMMEDIATE;\n" + claim + "\n" + migration.sql)
        except sqlite3.IntegrityError:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            return  # applied by the other process
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        try:
            if migration.rewrite is not None:
                migration.rewrite(conn)
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
