"""PostgreSQL (`DATABASE_URL=postgresql://…`): psycopg 3 with one connection in a database thread of the bridge's
own, so a write function runs there whole exactly as on SQLite — one hop, one group commit — and the store's SQL
is the same for both engines (`?` placeholders are translated here).

psycopg rather than asyncpg: asyncpg is async only, so every write function would have to become a coroutine
awaiting each statement (a hop per statement, and a second copy of the store); psycopg's synchronous connection
runs the same functions SQLite runs, in one thread, under one commit."""

from __future__ import annotations

import asyncio
import functools
import logging
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar
from urllib.parse import urlsplit

import psycopg
from psycopg.pq import TransactionStatus

from bot.store.database import Database, DatabaseUnavailable, applied_at
from bot.store.migrations import Migration

log = logging.getLogger(__name__)

T = TypeVar("T")

#: Serialises migrations of instances starting together (any constant, the same for every instance).
MIGRATION_LOCK = 0x0B1D6E
CONNECT_TIMEOUT_SECONDS = 5
#: How the bridge's connection shows in pg_stat_activity.
APPLICATION_NAME = "omi-bridge"
#: While the server cannot be reached at start: the first wait, doubling up to the cap.
START_RETRY_FIRST_SECONDS = 1.0
#: While the server cannot be reached at start: 1 s doubling, at most this long between tries.
START_RETRY_CAP_SECONDS = 30.0

#: Connection failures worth waiting out (the server is starting, down, or unreachable for now).
_TRANSIENT = re.compile(
    r"connection refused|could not connect|timeout expired|timed out|the database system is (starting up|"
    r"shutting down|in recovery mode)|no route to host|network is unreachable|server closed the connection|"
    r"could not receive|could not send|terminating connection",
    re.IGNORECASE,
)


class DatabaseRefused(Exception):
    """DATABASE_URL names a database that refuses us for good (authentication, a missing database or role, an
    unusable address): one line naming the setting, exit 2."""


def safe_url(url: str) -> str:
    """DATABASE_URL with its password as `***`, for logs and error lines."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return parts._replace(netloc=netloc).geturl()


@functools.lru_cache(maxsize=2048)
def _translate(sql: str) -> str:
    """`?` placeholders (outside quoted strings) → `%s`; a literal `%` → `%%` (psycopg reads `%` as a placeholder
    whenever parameters are passed)."""
    out: list[str] = []
    quoted = False
    for char in sql:
        if char == "'":
            quoted = not quoted
            out.append(char)
        elif char == "?" and not quoted:
            out.append("%s")
        elif char == "%":
            out.append("%%")
        else:
            out.append(char)
    return "".join(out)


class Row(Sequence[Any]):
    """A row read by column name (`row["id"]`) or position, as sqlite3.Row is."""

    __slots__ = ("_index", "_values")

    def __init__(self, values: Sequence[Any], index: dict[str, int]) -> None:
        self._values = tuple(values)
        self._index = index

    def __getitem__(self, key: Any) -> Any:  # type: ignore[override]
        return self._values[self._index[key]] if isinstance(key, str) else self._values[key]

    def __len__(self) -> int:
        return len(self._values)

    def __iter__(self) -> Iterator[Any]:
        return iter(self._values)

    def __eq__(self, other: object) -> bool:
        return tuple(self) == tuple(other) if isinstance(other, Sequence) else NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def keys(self) -> list[str]:
        return list(self._index)


def _rows(cursor: Any) -> Callable[[Sequence[Any]], Row]:
    index = {column.name: n for n, column in enumerate(cursor.description or ())}
    return lambda values: Row(values, index)


class PgConn:
    """A psycopg connection as the store's write functions use it (see `bot.store.database.Conn`)."""

    def __init__(self, raw: psycopg.Connection[Any]) -> None:
        self._raw = raw

    def execute(self, sql: str, parameters: Sequence[Any] = (), /) -> Any:
        if parameters:
            return self._raw.execute(_translate(sql), tuple(parameters))
        return self._raw.execute(sql)  # no parameters: sent as it is (several statements allowed)

    def executemany(self, sql: str, seq_of_parameters: Iterable[Sequence[Any]], /) -> Any:
        cursor = self._raw.cursor()
        cursor.executemany(_translate(sql), [tuple(p) for p in seq_of_parameters])
        return cursor

    @property
    def in_transaction(self) -> bool:
        return self._raw.info.transaction_status != TransactionStatus.IDLE


class PostgresDatabase(Database):
    engine = "postgresql"
    clock_sql = "EXTRACT(EPOCH FROM clock_timestamp())::double precision"

    def __init__(self, url: str, *, wait_at_start: bool = True) -> None:
        super().__init__()
        self.url = url
        self._wait_at_start = wait_at_start
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="postgres")
        self._raw: psycopg.Connection[Any] | None = None  # used in the database thread only

    # --- the connection, in the database thread ---------------------------------------------------------------

    def _connection(self) -> PgConn:
        if self._raw is None or self._raw.closed or self._raw.broken:
            if self._raw is not None:
                self._raw.close()
            self._raw = psycopg.connect(
                self.url,
                autocommit=True,
                connect_timeout=CONNECT_TIMEOUT_SECONDS,
                row_factory=_rows,
                application_name=APPLICATION_NAME,
            )
        return PgConn(self._raw)

    def _call(self, function: Callable[..., T], *args: Any) -> T:
        return function(self._connection(), *args)

    async def run(self, function: Callable[..., T], *args: Any) -> T:
        try:
            future = asyncio.get_running_loop().run_in_executor(self._executor, self._call, function, *args)
        except RuntimeError:  # the executor is shut down: the database was closed
            raise DatabaseUnavailable("database is closed") from None
        try:
            return await future
        except psycopg.OperationalError as exc:
            raise DatabaseUnavailable(_reason(exc)) from None

    async def _connect(self) -> None:
        wait = START_RETRY_FIRST_SECONDS
        while True:
            try:
                await asyncio.get_running_loop().run_in_executor(self._executor, self._connection)
                return
            except psycopg.OperationalError as exc:
                reason = _reason(exc)
                if not _TRANSIENT.search(str(exc)):
                    raise DatabaseRefused(f"{safe_url(self.url)} refused the connection: {reason}") from None
                if not self._wait_at_start:
                    raise DatabaseUnavailable(reason) from None
                log.warning(
                    "database: PostgreSQL at %s not reachable (%s); trying again in %.0f s",
                    safe_url(self.url),
                    reason,
                    wait,
                )
                await asyncio.sleep(wait)
                wait = min(START_RETRY_CAP_SECONDS, wait * 2)
            except psycopg.ProgrammingError as exc:  # an unusable connection string
                raise DatabaseRefused(f"{safe_url(self.url)} is not a usable address: {_reason(exc)}") from None

    async def _disconnect(self) -> None:
        def close() -> None:
            if self._raw is not None:
                self._raw.close()
                self._raw = None

        await asyncio.get_running_loop().run_in_executor(self._executor, close)
        self._executor.shutdown(wait=True)

    @staticmethod
    def insert_rows(conn: Any, sql: str, params: Sequence[Any], count: int) -> list[int]:
        # One round trip; the ids of one INSERT come from the sequence in the order of its VALUES (RETURNING's own
        # order is not promised).
        return sorted(int(row[0]) for row in conn.execute(sql + " RETURNING id", params).fetchall())

    def _begin(self) -> str:
        return "BEGIN"

    def _unavailable(self, exc: BaseException) -> DatabaseUnavailable | None:
        # Connection lost, server shutting down, disk full, a read-only standby: not a work's own mistake.
        if isinstance(exc, psycopg.OperationalError | psycopg.errors.ReadOnlySqlTransaction):
            return DatabaseUnavailable(_reason(exc))
        return None

    async def fetchall(self, sql: str, params: Iterable[Any] = ()) -> list[Any]:
        values = tuple(params)
        return await self.run(lambda conn: conn.execute(sql, values).fetchall())

    async def fetchone(self, sql: str, params: Iterable[Any] = ()) -> Any | None:
        values = tuple(params)
        return await self.run(lambda conn: conn.execute(sql, values).fetchone())

    # --- migrations ---------------------------------------------------------------------------------------

    async def _migrate(self, migrations: list[Migration]) -> None:
        # Instances starting together migrate one at a time; each re-reads the level under the lock.
        lock = "SELECT pg_advisory_lock(?, hashtext(current_schema()))"
        await self.run(lambda conn: conn.execute(lock, (MIGRATION_LOCK,)))
        try:
            await super()._migrate(migrations)
        finally:
            unlock = "SELECT pg_advisory_unlock(?, hashtext(current_schema()))"
            await self.run(lambda conn: conn.execute(unlock, (MIGRATION_LOCK,)))

    def _apply(self, conn: PgConn, migration: Migration) -> None:
        conn.execute("BEGIN")
        try:
            conn.execute(migration.postgres_sql)
            if migration.rewrite is not None:
                migration.rewrite(conn)
            conn.execute(
                "INSERT INTO schema_version VALUES (?, ?, ?)", (migration.version, migration.description, applied_at())
            )
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise


def _reason(exc: BaseException) -> str:
    """psycopg's message without the connection string it sometimes quotes."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return re.sub(r"postgres(ql)?://\S+", "postgresql://…", text)
