"""The bridge's database, whichever the engine (SQLite: `bot.store.sqlite`, PostgreSQL: `bot.store.postgres`):
migrations at start, group commit for every write, reads. Above this module nothing knows which engine runs.

Every write is a function `work(conn)` run in the engine's database thread inside a transaction; its SQL uses `?`
placeholders and SQL both engines speak (`ON CONFLICT`, `RETURNING`), and rows are read by column name."""

from __future__ import annotations

import asyncio
import collections
import functools
import logging
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Generic, Protocol, TypeVar

from bot.store.migrations import MIGRATIONS, Migration

log = logging.getLogger(__name__)

T = TypeVar("T")
I = TypeVar("I")  # noqa: E741 - an item of a batched write


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


@dataclass(frozen=True, slots=True)
class Batched(Generic[I, T]):
    """A write that shares one call with its kind: in a commit's group, consecutive `Batched` writes with the same
    `run` are made by one `run(conn, items)` (which returns one result per item, in order): one multi-row statement
    per table instead of several statements per write. Should that call fail, each write is made alone in a
    savepoint of its own, so that one bad item undoes only itself."""

    run: Callable[[Conn, list[I]], list[T]]
    item: I

    def __call__(self, conn: Conn) -> T:
        return self.run(conn, [self.item])[0]


#: Writes that share one commit at most (a webhook's arrival, a delivery's state, a burst's conversation...).
MAX_GROUP = 256
#: How long the database thread commits groups back to back before reads waiting for it get their turn.
DRAIN_SECONDS = 0.005
_Write = tuple[Callable[["Conn"], Any], asyncio.Future[Any]]

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
        # Writes waiting for a commit, appended by the event loop and taken by the database thread (under `_lock`,
        # with `_draining`: whether a drain is under way or scheduled, which takes what is appended meanwhile).
        self._waiting: collections.deque[_Write] = collections.deque()
        self._lock = threading.Lock()
        self._draining = False
        self._writer: asyncio.Task[None] | None = None

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

    @staticmethod
    @abstractmethod
    def insert_rows(conn: Conn, sql: str, params: Sequence[Any], count: int) -> list[int]:
        """In a write: `sql`, an INSERT of `count` rows into a table with an `id` key (no RETURNING clause); the
        new rows' ids in the order of its VALUES."""

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
        # What was submitted is written before the connection goes: the writer ends once it has no work.
        while self._writer is not None and not self._writer.done():
            await asyncio.gather(self._writer, return_exceptions=True)
        self._writer = None
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
        failing undoes only itself). The database thread takes one group after another by itself while writes wait
        (`_drain`): the next commit does not wait for a turn of the busy event loop, nor the loop for a commit."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        with self._lock:
            self._waiting.append((work, future))
            start, self._draining = not self._draining, True
        if start or self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write_loop(loop), name="database-group-commit")
        return await future

    async def _write_loop(self, loop: asyncio.AbstractEventLoop) -> None:
        while True:
            try:
                more = await self.run(self._drain, loop)
            except Exception as exc:  # the engine could not run the drain at all (e.g. no connection)
                group = self._take()
                self._resolve(group, [(False, self._failure(exc))] * len(group))
                more = bool(group)
            if not more:
                return

    def _take(self) -> list[_Write]:
        """The next group (up to MAX_GROUP writes, oldest first); none: the drain ends (under the lock, so that a
        write appended after this starts the next)."""
        with self._lock:
            group = [self._waiting.popleft() for _ in range(min(MAX_GROUP, len(self._waiting)))]
            if not group:
                self._draining = False
        return group

    def _drain(self, conn: Any, loop: asyncio.AbstractEventLoop) -> bool:
        """In the database thread: commit groups back to back while writes wait, each group's outcomes handed to
        the event loop as it commits. For at most DRAIN_SECONDS, then reads waiting for the thread get their turn;
        after a failed commit the engine's connection is looked at again. Returns whether writes still wait."""
        until = time.monotonic() + DRAIN_SECONDS
        while group := self._take():
            # A write whose caller was cancelled before it began is not made: a stopped task writes nothing.
            group = [(work, future) for work, future in group if not future.cancelled()]
            failed = False
            try:
                outcomes = commit_group(conn, [work for work, _ in group], self._begin()) if group else []
            except Exception as exc:  # the transaction itself failed: nothing of the group was written
                outcomes, failed = [(False, self._failure(exc))] * len(group), True
            try:
                loop.call_soon_threadsafe(self._resolve, group, outcomes)
            except RuntimeError:  # the event loop is closed: nobody waits for these any more
                return False
            if failed or time.monotonic() > until:
                return True
        return False

    def _failure(self, exc: Exception) -> DatabaseUnavailable:
        error = exc if isinstance(exc, DatabaseUnavailable) else self._unavailable(exc)
        error = error or DatabaseUnavailable(f"{type(exc).__name__}: {exc}")
        log.error("database: commit failed: %s", error)
        return error

    def _resolve(self, group: list[_Write], outcomes: list[tuple[bool, Any]]) -> None:
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
    """In the database thread: every work in a savepoint of its own (a run of `Batched` ones in one), all under one
    commit."""
    outcomes: list[tuple[bool, Any]] = []
    conn.execute(begin)
    try:
        runs = _runs(works)
        if len(runs) == 1 and len(runs[0]) > 1:
            # The whole group is one batch (intake under load): no savepoint, two statements fewer. Should it fail,
            # the transaction is undone and made again write by write.
            try:
                results = _run_batch(runs[0], conn)  # type: ignore[arg-type]
            except Exception:
                conn.execute("ROLLBACK")
                conn.execute(begin)
                runs = [[work] for work in runs[0]]
            else:
                conn.execute("COMMIT")
                return [(True, result) for result in results]
        for run in runs:
            if len(run) > 1:
                done = _in_savepoint(conn, functools.partial(_run_batch, run))
                if done[0]:
                    outcomes.extend((True, result) for result in done[1])
                    continue
            outcomes.extend(_in_savepoint(conn, work) for work in run)  # one by one: one failing undoes itself
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    return outcomes


def _runs(works: list[Callable[[Conn], Any]]) -> list[list[Callable[[Conn], Any]]]:
    """The works in order, consecutive `Batched` ones with the same `run` together."""
    runs: list[list[Callable[[Conn], Any]]] = []
    for work in works:
        last = runs[-1][-1] if runs else None
        if isinstance(work, Batched) and isinstance(last, Batched) and last.run == work.run:
            runs[-1].append(work)
        else:
            runs.append([work])
    return runs


def _run_batch(batch: list[Batched[Any, Any]], conn: Conn) -> list[Any]:
    results = batch[0].run(conn, [work.item for work in batch])
    if len(results) != len(batch):
        raise RuntimeError(f"a batched write returned {len(results)} results for {len(batch)} items")
    return results


def _in_savepoint(conn: Any, work: Callable[[Conn], Any]) -> tuple[bool, Any]:
    conn.execute("SAVEPOINT work")
    try:
        outcome = (True, work(conn))
    except Exception as exc:
        conn.execute("ROLLBACK TO SAVEPOINT work")
        outcome = (False, exc)
    conn.execute("RELEASE SAVEPOINT work")
    return outcome


def applied_at() -> str:
    """The time a migration is recorded as applied (the bridge's clock: both engines store the same text)."""
    return datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S")
