"""The bridge's database, whichever the engine (SQLite: `bot.store.sqlite`, PostgreSQL: `bot.store.postgres`):
migrations at start, group commit for every write, reads. Above this module nothing knows which engine runs.

Every write is a function `work(conn)` run in the engine's database thread inside a transaction; its SQL uses `?`
placeholders and SQL both engines speak (`ON CONFLICT`, `RETURNING`), and rows are read by column name."""

from __future__ import annotations

import asyncio
import logging
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from typing import Any, Protocol, TypeVar

from bot.store.migrations import MIGRATIONS, Migration

log = logging.getLogger(__name__)

T = TypeVar("T")


class DatabaseUnavailable(Exception):
    """The database cannot take writes (disk full, file gone, server down, connection lost): answer 503, store
    nothing — the platform sends it again."""


class Cursor(Protocol):
    rowcount: int

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...


class Conn(Protocol):
    """What a write function gets: a connection inside the write transaction (`?` placeholders)."""

    def execute(self, sql: str, parameters: Sequence[Any] = ..., /) -> Cursor: ...

    def executemany(self, sql: str, seq_of_parameters: Iterable[Sequence[Any]], /) -> Cursor: ...


#: Writes that share one commit at most (a webhook's arrival, a delivery's state, a burst's conversation...).
MAX_GROUP = 256

_SCHEMA_VERSION = (
    "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER PRIMARY KEY, description TEXT, applied_at TEXT)"
)


class Database(ABC):
    """Reads go straight to the engine; writes go through `write()`, which group-commits."""

    #: "sqlite" or "postgresql".
    engine: str
    #: SQL for the database's clock in epoch seconds: what leases are measured on (SPEC §13).
    clock_sql: str
    #: Seconds added to the database's clock as this bridge reads it: tests move it forward to expire leases.
    clock_skew: float = 0.0

    def __init__(self) -> None:
        self._waiting: list[tuple[Callable[[Conn], Any], asyncio.Future[Any]]] = []
        self._wakeup = asyncio.Event()
        self._writer: asyncio.Task[None] | None = None
        self._closing = False

    # --- the engine ---------------------------------------------------------------------------------------

    @abstractmethod
    async def _connect(self) -> None: ...

    @abstractmethod
    async def _disconnect(self) -> None: ...

    @abstractmethod
    async def run(self, function: Callable[..., T], *args: Any) -> T:
        """`function(conn, *args)` in the database thread, outside any transaction (it manages its own)."""

    @abstractmethod
    def _begin(self) -> str:
        """The statement that opens a write transaction."""

    @abstractmethod
    def _unavailable(self, exc: BaseException) -> DatabaseUnavailable | None:
        """The engine's error as DatabaseUnavailable when it means the database cannot take writes (else None:
        a work's own error, e.g. a constraint it broke)."""

    @abstractmethod
    async def fetchall(self, sql: str, params: Iterable[Any] = ()) -> list[Any]: ...

    @abstractmethod
    async def fetchone(self, sql: str, params: Iterable[Any] = ()) -> Any | None: ...

    @abstractmethod
    def _apply(self, conn: Any, migration: Migration) -> None:
        """In the database thread: the migration's SQL, its rewrite and its version row as one transaction."""

    @property
    def now_sql(self) -> str:
        """The database's "now" as an SQL expression (with `clock_skew`)."""
        return f"({self.clock_sql} + {float(self.clock_skew)!r})" if self.clock_skew else f"({self.clock_sql})"

    async def clock(self) -> float:
        """The database's clock, read now."""
        row = await self.fetchone(f"SELECT {self.now_sql} AS now")
        return float(row["now"])

    # --- life cycle --------------------------------------------------------------------------------------

    async def open(self, migrations: Iterable[Migration] = MIGRATIONS) -> None:
        await self._connect()
        await self._migrate(list(migrations))

    async def close(self) -> None:
        if self._writer is not None:
            # What was submitted is written before the connection goes: the writer ends once it has no work.
            self._closing = True
            self._wakeup.set()
            await asyncio.gather(self._writer, return_exceptions=True)
            self._writer = None
            self._closing = False
        await self._disconnect()

    async def _migrate(self, migrations: list[Migration]) -> None:
        await self.run(lambda conn: conn.execute(_SCHEMA_VERSION))
        current = await self.schema_version()
        for migration in sorted(migrations, key=lambda m: m.version):
            if migration.version > current:
                log.info("database: migrating to v%d (%s)", migration.version, migration.description)
                await self.run(self._apply, migration)

    async def schema_version(self) -> int:
        row = await self.fetchone("SELECT COALESCE(MAX(version), 0) AS v FROM schema_version")
        return int(row["v"]) if row else 0

    # --- writes ------------------------------------------------------------------------------------------

    async def write(self, work: Callable[[Conn], T]) -> T:
        """Run `work(conn)` in a write transaction: its changes are committed if it returns, undone if it raises.

        Writes submitted while a commit is under way share the next one (each in a savepoint of its own, so one
        failing undoes only itself): one hop to the database thread and one commit for the lot. A hop costs a
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
                if group:
                    await self._commit(group)

    async def _commit(self, group: list[tuple[Callable[[Conn], Any], asyncio.Future[Any]]]) -> None:
        try:
            outcomes = await self.run(commit_group, [work for work, _ in group], self._begin())
        except Exception as exc:  # the transaction itself failed: nothing of the group was written
            error = exc if isinstance(exc, DatabaseUnavailable) else self._unavailable(exc)
            error = error or DatabaseUnavailable(f"{type(exc).__name__}: {exc}")
            log.error("database: commit failed: %s", error)
            outcomes = [(False, error)] * len(group)
        for (_, future), (ok, value) in zip(group, outcomes, strict=True):
            if future.done():
                continue
            if ok:
                future.set_result(value)
            else:
                future.set_exception(self._unavailable(value) or value)

    async def barrier(self) -> None:
        """Return once every write submitted before this call has been committed (or undone)."""
        if self._writer is not None and not self._writer.done():
            await self.write(lambda conn: None)

    async def is_writable(self) -> bool:
        moment = datetime.now(UTC).isoformat()
        try:
            await self.write(
                lambda conn: conn.execute(
                    "INSERT INTO stored_values (key, value) VALUES ('health_probe', ?)"
                    " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                    (moment,),
                )
            )
        except DatabaseUnavailable:
            return False
        return True


def commit_group(conn: Any, works: list[Callable[[Conn], Any]], begin: str) -> list[tuple[bool, Any]]:
    """In the database thread: every work in a savepoint of its own, all under one commit."""
    outcomes: list[tuple[bool, Any]] = []
    conn.execute(begin)
    try:
        for work in works:
            conn.execute("SAVEPOINT work")
            try:
                outcomes.append((True, work(conn)))
            except Exception as exc:
                conn.execute("ROLLBACK TO SAVEPOINT work")
                outcomes.append((False, exc))
            conn.execute("RELEASE SAVEPOINT work")
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    return outcomes


def applied_at() -> str:
    """The time a migration is recorded as applied (the bridge's clock: both engines store the same text)."""
    return datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S")
