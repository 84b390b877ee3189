"""PostgreSQL faults (SPEC §13): a server that is down at start is waited for, a connection lost in the middle of a
transaction loses nothing (and nothing of it counts as accepted), a wrong DATABASE_URL is one line, exit 2."""

from __future__ import annotations

import asyncio
import logging
import threading

import psycopg
import pytest

from bot.clock import ManualClock
from bot.store import Arrival, DatabaseRefused, DatabaseUnavailable, Store
from tests.databases import POSTGRES, Schema, TcpProxy, require_postgres


@pytest.fixture
def schema():
    require_postgres()
    made = Schema().create()
    try:
        yield made
    finally:
        made.drop()


class Seen(logging.Handler):
    """Sets `event` when a record whose message contains `text` is logged."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.text = text
        self.event = asyncio.Event()
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        self.messages.append(message)
        if self.text in message:
            self.event.set()


async def test_a_server_that_is_down_at_start_is_waited_for_with_a_log_line(schema):
    proxy = TcpProxy()
    seen = Seen("not reachable")
    logger = logging.getLogger("bot.store.postgres")
    logger.addHandler(seen)
    try:
        opening = asyncio.create_task(Store.open(proxy.url(schema), ManualClock()))
        await asyncio.wait_for(seen.event.wait(), 10)
        assert not opening.done()
        await proxy.up()
        store = await asyncio.wait_for(opening, 15)
        try:
            assert not (await store.inbox.accept(Arrival("telegram", "update", "{}", ("u:1",)))).duplicate
        finally:
            await store.close()
    finally:
        logger.removeHandler(seen)
        await proxy.down()
    [line] = [m for m in seen.messages if "not reachable" in m][:1]
    assert "trying again" in line and "127.0.0.1" in line


async def test_while_the_server_is_away_writes_are_refused_then_work_again(schema):
    proxy = TcpProxy()
    await proxy.up()
    store = await Store.open(proxy.url(schema), ManualClock())
    try:
        await proxy.down()
        with pytest.raises(DatabaseUnavailable):
            await store.inbox.accept(Arrival("telegram", "update", '{"n": 1}', ("u:1",)))
        assert not await store.db.is_writable()
        await proxy.up()
        accepted = await store.inbox.accept(Arrival("telegram", "update", '{"n": 1}', ("u:1",)))
        assert not accepted.duplicate  # the refused one was never stored, so this is no duplicate
        assert [row.payload for row in await store.inbox.pending()] == ['{"n": 1}']
    finally:
        await store.close()
        await proxy.down()


async def test_a_connection_lost_mid_transaction_loses_nothing_and_acknowledges_nothing(schema):
    store = await Store.open(schema.url, ManualClock())
    try:
        pid = (await store.db.fetchone("SELECT pg_backend_pid() AS pid"))["pid"]
        inside, release = threading.Event(), threading.Event()

        def slow(conn):
            conn.execute("INSERT INTO stored_values (key, value) VALUES ('half', 'done')")
            inside.set()
            release.wait(10)
            conn.execute("INSERT INTO stored_values (key, value) VALUES ('other', 'half')")

        first = asyncio.create_task(store.db.write(slow))
        await asyncio.to_thread(inside.wait, 10)
        # An arrival queued behind the doomed commit: it goes in the next one, on a new connection.
        second = asyncio.create_task(store.inbox.accept(Arrival("telegram", "update", '{"n": 7}', ("u:7",))))
        await asyncio.sleep(0)
        with psycopg.connect(POSTGRES, autocommit=True) as admin:
            assert admin.execute("SELECT pg_terminate_backend(%s)", (pid,)).fetchone()[0]
        release.set()
        with pytest.raises(DatabaseUnavailable):  # not committed, so never acknowledged: the sender retries
            await first
        assert not (await second).duplicate  # accepted = committed, after the reconnect
        assert await store.values.get("half") is None and await store.values.get("other") is None
        assert [row.payload for row in await store.inbox.pending()] == ['{"n": 7}']
        assert (await store.inbox.accept(Arrival("telegram", "update", '{"n": 7}', ("u:7",)))).duplicate
    finally:
        await store.close()


async def test_a_missing_database_is_refused_for_good_with_the_password_masked():
    require_postgres()
    url = POSTGRES.rsplit("/", 1)[0].replace("postgresql://postgres@", "postgresql://postgres:s3cr3t-pw@")
    with pytest.raises(DatabaseRefused) as refused:
        await Store.open(url + "/omi_bridge_no_such_database", ManualClock())
    message = str(refused.value)
    assert "does not exist" in message and "s3cr3t-pw" not in message and ":***@" in message


def test_a_database_url_that_refuses_is_one_line_naming_it_exit_2(tmp_path):
    from tests.test_cli import clean_env, run

    require_postgres()
    base = POSTGRES.rsplit("/", 1)[0].replace("postgresql://postgres@", "postgresql://postgres:s3cr3t-pw@")
    for args in (("link", "telegram:1", "uid-1"), ("unlink", "telegram:1")):
        result = run(*args, cwd=tmp_path, env=clean_env(DATABASE_URL=base + "/omi_bridge_no_such_database"))
        assert result.code == 2, result.err
        [line] = result.err.splitlines()
        assert line.startswith("omi-bridge: invalid setting DATABASE_URL: postgresql://postgres:***@")
        assert "does not exist" in line and "s3cr3t-pw" not in result.err + result.out


async def test_serve_waits_for_a_database_that_is_down_and_stops_on_sigterm_while_waiting(tmp_path):
    from bot.sandbox import ALL_CAPABILITIES, Sandbox
    from tests.processes import BackgroundProcess, clean_env, free_port

    require_postgres()
    sandbox = Sandbox()
    omi_url = await sandbox.start("127.0.0.1", 0)
    app = sandbox.create_app(capabilities=ALL_CAPABILITIES)
    closed = free_port()  # nothing listens there: "connection refused", as a server that is not up yet
    serve = BackgroundProcess(
        "serve",
        cwd=tmp_path,
        env=clean_env(
            OMI_API_BASE_URL=omi_url,
            OMI_APP_ID=app.app_id,
            OMI_API_KEY=app.api_key,
            HOST="127.0.0.1",
            PORT=str(free_port()),
            DATABASE_URL=f"postgresql://postgres:s3cr3t-pw@127.0.0.1:{closed}/test",
        ),
    )
    try:
        line = (await asyncio.to_thread(serve.wait_for, r"database: PostgreSQL at .* not reachable")).group(0)
        assert ":***@" in line and "s3cr3t-pw" not in line
        assert await asyncio.to_thread(serve.stop) == 0
    finally:
        serve.kill()
        await sandbox.stop()
        sandbox.close()
    output = "\n".join(serve.rest())
    assert "Traceback" not in output and "s3cr3t-pw" not in output
