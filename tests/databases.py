"""The databases tests run on: a file in the test's tmp dir (SQLite), or a fresh schema of the local PostgreSQL
(`OMI_BRIDGE_TEST_POSTGRES`, default the machine's `test` database), dropped after the test."""

from __future__ import annotations

import os
import uuid
from urllib.parse import quote

import psycopg
import pytest

POSTGRES = os.environ.get("OMI_BRIDGE_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")
ENGINES = ("sqlite", "postgresql")
_reachable: bool | None = None


def postgres_reachable() -> bool:
    global _reachable
    if _reachable is None:
        try:
            with psycopg.connect(POSTGRES, connect_timeout=3):
                _reachable = True
        except psycopg.Error:
            _reachable = False
    return _reachable


def require_postgres() -> None:
    """Skip without PostgreSQL on a developer's machine; in CI (where it must run) fail instead."""
    if postgres_reachable():
        return
    message = f"PostgreSQL is not reachable at {POSTGRES} (start it, or set OMI_BRIDGE_TEST_POSTGRES)"
    if os.environ.get("CI"):
        pytest.fail(message + " — CI runs the PostgreSQL half and never skips it", pytrace=False)
    pytest.skip(message)


class Schema:
    """A schema of its own for one test: the URL points the bridge at it (`search_path`)."""

    def __init__(self) -> None:
        self.name = f"t_{uuid.uuid4().hex[:16]}"
        self.url = f"{POSTGRES}{'&' if '?' in POSTGRES else '?'}options={quote(f'-csearch_path={self.name}')}"

    def create(self) -> Schema:
        with psycopg.connect(POSTGRES, autocommit=True) as conn:
            conn.execute(f"CREATE SCHEMA {self.name}")
        return self

    def drop(self) -> None:
        with psycopg.connect(POSTGRES, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA IF EXISTS {self.name} CASCADE")


async def set_read_only(db, on: bool) -> None:
    """Make every write fail as a read-only disk (SQLite) or a read-only standby (PostgreSQL) would."""
    if db.engine == "sqlite":
        statement = f"PRAGMA query_only = {'ON' if on else 'OFF'}"
    else:
        statement = f"SET default_transaction_read_only = {'on' if on else 'off'}"
    await db.run(lambda conn: conn.execute(statement))


class TcpProxy:
    """127.0.0.1:<port> in front of PostgreSQL, which a test takes down (new connections refused, open ones cut)
    and brings back: the database "is down" without touching the machine's server."""

    def __init__(self, target: tuple[str, int] = ("127.0.0.1", 5432)) -> None:
        import socket

        self.target = target
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self._server = None
        self._writers: set = set()

    def url(self, schema: Schema) -> str:
        from urllib.parse import urlsplit

        parts = urlsplit(schema.url)
        netloc = parts.netloc.rsplit("@", 1)
        host = f"127.0.0.1:{self.port}"
        return parts._replace(netloc=f"{netloc[0]}@{host}" if len(netloc) == 2 else host).geturl()

    async def up(self) -> None:
        import asyncio

        self._server = await asyncio.start_server(self._pipe, "127.0.0.1", self.port)

    async def down(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        for writer in list(self._writers):
            writer.close()
        self._writers.clear()

    async def _pipe(self, reader, writer) -> None:
        import asyncio

        upstream_reader, upstream_writer = await asyncio.open_connection(*self.target)
        self._writers |= {writer, upstream_writer}

        async def copy(source, sink) -> None:
            try:
                while data := await source.read(65536):
                    sink.write(data)
                    await sink.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                sink.close()

        await asyncio.gather(copy(reader, upstream_writer), copy(upstream_reader, writer))
