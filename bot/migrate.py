"""`omi-bridge migrate-db` (SPEC §2, §13): an SQLite deployment copied into an empty PostgreSQL database at once."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import psycopg

from bot.clock import Clock, SystemClock
from bot.settings import check_postgres_url, database_path_of, is_postgres_url
from bot.store import DatabaseRefused, DatabaseUnavailable, Store
from bot.store.database import Conn
from bot.store.migrations import MIGRATIONS
from bot.store.postgres import safe_url
from bot.store.search_queries import QUERY_TTL_SECONDS
from bot.worker_lock import PostgresWorkerLock, WorkerLock

EXIT_OK, EXIT_REFUSED, EXIT_USAGE = 0, 1, 2

#: The bridge's tables, in the order the report lists them. A table a later migration adds is copied whole (after
#: these) until it is named here: nothing the source holds is left behind unless a rule below says so.
TABLES = (
    "links",
    "claims",
    "codes_sent",
    "link_tokens",
    "inbox",
    "dedupe",
    "outbox",
    "stored_values",
    "holds",
    "search_queries",
    "code_sends",
    "imports",
    "import_ledger",
    "transcripts",
    "omi_events",
    "pushes",
    "notify_settings",
)

#: Rows that no longer matter stay behind: (the rows kept, as SQL on the table; what the others are).
#: The dedupe rule compares with now (`?`): an expired key is what housekeeping deletes next.
KEEP: dict[str, tuple[str, str]] = {
    "inbox": ("state = 'new'", "finished"),
    "dedupe": ("expires_at >= ?", "expired"),
    "stored_values": ("key <> 'health_probe'", "health probe"),
    # Housekeeping's rules (bot/store/search_queries.py, bot/store/code_sends.py): a week for a "More" button's
    # query; a code send until its code expires.
    "search_queries": (f"created_at >= ? - {QUERY_TTL_SECONDS}", "expired"),
    "code_sends": ("expires_at > ?", "expired"),
}

#: Bookkeeping of the migrations themselves (each side has its own, at the same level), leases (who works on
#: what: a stopped serve holds none that matter, and PostgreSQL's instances take their own), send pacing (slots
#: of the last seconds: long past when the copy is done) and send windows (what the last 429s showed of Omi's limits:
#: learned again at the next one).
_NOT_COPIED = ("schema_version", "leases", "send_pacing", "send_windows")


class MigrateDbError(Exception):
    """Why nothing was moved: one line for the operator, and the exit code (1 refused, 2 bad arguments)."""

    def __init__(self, line: str, code: int) -> None:
        super().__init__(line)
        self.line = line
        self.code = code


@dataclass(frozen=True)
class TableCopy:
    """What one table's copy moved, and what it left behind (and why)."""

    table: str
    copied: int
    left_behind: int = 0
    why: str = ""

    def line(self) -> str:
        text = f"{self.table}: {_rows(self.copied)} copied"
        return text + (f" ({self.left_behind} {self.why} left behind)" if self.left_behind else "")


@dataclass(frozen=True)
class _Table:
    name: str
    columns: tuple[str, ...]
    rows: list[tuple[Any, ...]]
    left_behind: int
    why: str
    #: (row id column, the highest id the source ever kept, left-behind rows included), for tables that have one.
    high: tuple[str, int] | None = None


def check_target(url: str) -> None:
    """`--to` must be a PostgreSQL URL that DATABASE_URL would accept (MigrateDbError, exit 2, if not)."""
    if not is_postgres_url(url):
        raise MigrateDbError("--to: must be a postgresql://user:password@host:5432/database URL", EXIT_USAGE)
    try:
        check_postgres_url(url)
    except ValueError as exc:
        raise MigrateDbError(f"--to: {exc}", EXIT_USAGE) from None


def source_path(database_url: str) -> str:
    """The SQLite file DATABASE_URL names (MigrateDbError, exit 2, when it names no SQLite file to move)."""
    if is_postgres_url(database_url):
        raise MigrateDbError(
            f"DATABASE_URL is already PostgreSQL ({safe_url(database_url)}); migrate-db moves an SQLite deployment:"
            " run it with DATABASE_URL=sqlite:///… naming the file to move",
            EXIT_USAGE,
        )
    try:
        path = database_path_of(database_url)
    except ValueError as exc:
        raise MigrateDbError(f"DATABASE_URL: {exc}", EXIT_USAGE) from None
    if path == ":memory:":
        raise MigrateDbError("DATABASE_URL is an in-memory database: there is nothing to move", EXIT_USAGE)
    if not Path(path).is_file():
        raise MigrateDbError(f"DATABASE_URL: no SQLite database at {path}", EXIT_USAGE)
    return path


async def migrate_db(database_url: str, target_url: str, *, clock: Clock | None = None) -> list[str]:
    """Copy the SQLite deployment at `database_url` into the empty PostgreSQL database at `target_url`, in one
    transaction; the report's lines (one per table, then where it went). Raises MigrateDbError when it refuses."""
    check_target(target_url)
    path = source_path(database_url)
    clock = clock or SystemClock()
    lock = WorkerLock(path)
    if not lock.try_acquire():
        holder = lock.holder() or "another process"
        raise MigrateDbError(
            f"an omi-bridge ({holder}) is running on {path}; stop serve first, then migrate", EXIT_REFUSED
        )
    try:
        try:
            source = await Store.open(path, clock)
        except sqlite3.DatabaseError as exc:
            raise MigrateDbError(
                f"DATABASE_URL: {path} cannot be read as an SQLite database ({exc})", EXIT_USAGE
            ) from None
        try:
            level = await source.db.schema_version()
            if level != MIGRATIONS[-1].version:  # a newer omi-bridge wrote it: its tables may not be ours
                raise MigrateDbError(
                    f"{path} is at migration v{level}, this omi-bridge at v{MIGRATIONS[-1].version}; migrate with"
                    " the omi-bridge that wrote it",
                    EXIT_REFUSED,
                )
            tables = await _read(source, clock.now())
        finally:
            await source.close()
        copies = await _copy_into(target_url, tables, clock)
    finally:
        lock.release()
    total = sum(copy.copied for copy in copies)
    return [copy.line() for copy in copies] + [
        f"moved {_rows(total)} to {safe_url(target_url)}; now set DATABASE_URL to it and start serve"
    ]


async def _read(source: Store, now: float) -> list[_Table]:
    """Every table's rows that still matter (serve is stopped and the lock held: nothing changes meanwhile)."""
    found = await source.db.fetchall(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\'"
    )
    names = [row["name"] for row in found if row["name"] not in _NOT_COPIED]
    names.sort(key=lambda name: (TABLES.index(name) if name in TABLES else len(TABLES), name))
    tables = []
    for name in names:
        info = await source.db.fetchall(f"PRAGMA table_info({name})")
        columns = tuple(row["name"] for row in info)
        # SQLite's INTEGER PRIMARY KEY (the row id) is PostgreSQL's identity column (`Migration.postgres_sql`).
        keys = [row for row in info if row["pk"]]
        row_id = keys[0]["name"] if len(keys) == 1 and keys[0]["type"].upper() == "INTEGER" else None
        keep, why = KEEP.get(name, ("1 = 1", ""))
        params = (now,) * keep.count("?")
        listed = ", ".join(columns)
        rows = await source.db.fetchall(f"SELECT {listed} FROM {name} WHERE {keep}", params)  # noqa: S608
        highest = f", MAX({row_id}) AS high" if row_id else ", NULL AS high"
        everything = await source.db.fetchone(f"SELECT COUNT(*) AS n{highest} FROM {name}")  # noqa: S608
        left_behind = int(everything["n"]) - len(rows)
        high = (row_id, int(everything["high"])) if row_id and everything["high"] is not None else None
        tables.append(_Table(name, columns, [tuple(row) for row in rows], left_behind, why, high))
    return tables


async def _copy_into(url: str, tables: list[_Table], clock: Clock) -> list[TableCopy]:
    shown = safe_url(url)
    try:
        target = await Store.open(url, clock, wait_at_start=False)
    except DatabaseRefused as exc:
        raise MigrateDbError(f"--to: {exc}", EXIT_USAGE) from None
    except DatabaseUnavailable as exc:
        raise MigrateDbError(
            f"cannot reach {shown} ({_masked(str(exc), url)}); nothing was moved", EXIT_REFUSED
        ) from None
    target_lock = PostgresWorkerLock(url, shown)
    try:
        if not await asyncio.to_thread(target_lock.try_acquire):
            holder = await asyncio.to_thread(target_lock.holder) or "another process"
            raise MigrateDbError(
                f"an omi-bridge ({holder}) is running on {shown}; stop it and give an empty database", EXIT_REFUSED
            )
        await _check_empty(target, shown, [table.name for table in tables])
        return await target.db.write(lambda conn: _insert_all(conn, tables))
    except (psycopg.Error, DatabaseUnavailable) as exc:
        reason = _masked(str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__, url)
        raise MigrateDbError(f"copying into {shown} failed, nothing was moved: {reason}", EXIT_REFUSED) from None
    finally:
        target_lock.release()
        await target.close()


async def _check_empty(target: Store, shown: str, names: Sequence[str]) -> None:
    """The target at the source's migration level (the newest: both were just migrated up), no row in any table."""
    level, newest = await target.db.schema_version(), MIGRATIONS[-1].version
    if level != newest:
        raise MigrateDbError(
            f"target {shown} is at migration v{level}, this omi-bridge at v{newest}; give an empty database",
            EXIT_REFUSED,
        )
    held = []
    for name in dict.fromkeys([*TABLES, *names]):
        if name == "stored_values":
            sql = f"SELECT COUNT(*) AS n FROM {name} WHERE {KEEP[name][0]}"  # noqa: S608 - our own table names
        else:
            sql = f"SELECT COUNT(*) AS n FROM {name}"  # noqa: S608
        row = await target.db.fetchone(sql)
        if row and row["n"]:
            held.append(f"{_rows(int(row['n']))} in {name}")
    if held:
        raise MigrateDbError(f"target {shown} is not empty ({', '.join(held)}); give an empty database", EXIT_REFUSED)


def _insert_all(conn: Conn, tables: list[_Table]) -> list[TableCopy]:
    """In the target's write transaction: every row with its id, then each identity sequence past the source's
    highest id (the next outbox or inbox row gets an id no row of this deployment ever had, as on SQLite)."""
    for table in tables:
        if table.rows:
            marks = ", ".join("?" for _ in table.columns)
            conn.executemany(
                f"INSERT INTO {table.name} ({', '.join(table.columns)}) VALUES ({marks})",  # noqa: S608
                table.rows,
            )
    for table in tables:
        if table.high is not None:
            column, high = table.high
            conn.execute("SELECT setval(pg_get_serial_sequence(?, ?), ?)", (table.name, column, high))
    return [TableCopy(t.name, len(t.rows), t.left_behind, t.why) for t in tables]


def _rows(n: int) -> str:
    return f"{n} row" if n == 1 else f"{n} rows"


def _masked(text: str, url: str) -> str:
    """An error line with the URL's password as `***`, wherever a driver may have quoted it."""
    try:
        password = urlsplit(url).password
    except ValueError:
        password = None
    return text.replace(password, "***") if password else text
