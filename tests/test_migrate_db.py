"""`omi-bridge migrate-db` (SPEC §2, §13): an SQLite deployment holding every kind of row moves into an empty
PostgreSQL schema whole and equal, in one transaction; a non-empty target, a running serve, a PostgreSQL source and
bad arguments are refused; the target's password is never printed."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest

import bot.migrate as migrate
from adapters.telegram.platform import SECRET_KEY
from adapters.telegram.polling import OFFSET_KEY
from bot.clock import ManualClock
from bot.events import Address, Platform
from bot.migrate import EXIT_REFUSED, EXIT_USAGE, TABLES, MigrateDbError, migrate_db
from bot.omi.models import ExplicitMemory, NewConversation, NewMemories
from bot.store import Arrival, ItemKind, ItemState, NewItem, OmiWrite, Outbox, Store
from bot.store.claims import Claims
from bot.store.holds import Holds
from bot.store.inbox import DEDUPE_TTL_SECONDS, Inbox
from bot.store.migrations import MIGRATIONS
from bot.store.pushes import NotifySetting
from bot.store.search_queries import QUERY_TTL_SECONDS, SearchQueries
from bot.worker_lock import PostgresWorkerLock, WorkerLock
from tests.databases import POSTGRES, Schema, require_postgres
from tests.test_cli import clean_env, run

PASSWORD = "s3cret-Pa55word"  # trust auth ignores it; it must never be printed
WEBHOOK_SECRET = "tg-webhook-secret-0123456789"
OMI_WEBHOOK_KEY = "omi_webhook_secret"  # a stored value other than Telegram's: copied all the same
#: What the deployment holds that still matters: 3 links, a claim, a code sent, 2 tokens, an inbox row, 2 dedupe keys,
#: 7 outbox items, 3 stored values, a 429 hold, a "More" button's query, a code on its way, a transcript, an Omi
#: webhook event, a push and a /notify setting.
MOVED = 31
SEARCH_QUERY, CODE = "tomatoes in the garden", "271828"


def with_password(url: str) -> str:
    parts = urlsplit(url)
    user = parts.username or "postgres"
    netloc = f"{user}:{PASSWORD}@{parts.hostname}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


@pytest.fixture
def target() -> Iterator[str]:
    """A fresh, empty PostgreSQL schema (its URL carries a password that must never show)."""
    require_postgres()
    schema = Schema().create()
    try:
        yield with_password(schema.url)
    finally:
        schema.drop()


# --- an SQLite deployment holding every kind of row -----------------------------------------------------------


@dataclass
class Deployment:
    path: Path
    url: str
    now: float
    writes: dict[int, OmiWrite]  # outbox id → what it carries (open items)
    pending_inbox_id: int
    search_token: str


def _conversation(text: str) -> NewConversation:
    return NewConversation(
        text=text, text_source_spec="telegram", started_at=datetime(2026, 3, 1, 9, 30, tzinfo=UTC), language="en"
    )


async def build_deployment(path: Path) -> Deployment:
    now = time.time()
    clock = ManualClock(start=now)
    store = await Store.open(str(path), clock)
    try:
        # Links: a verified account; another verified one with an open claim (and its code) for a new uid.
        await store.links.link_verified("telegram:100", "uid-ada", handle_hint="ada_lovelace")
        await store.links.link_verified("slack:U200", "uid-old")
        await store.db.write(lambda conn: Claims.put(conn, "slack:U200", "uid-bob", "bobby", now))
        await store.claims.set_code("slack:U200", "code-hash", now + 600, "uid-bob", now)
        await store.claims.wrong_code("slack:U200")
        # Link tokens: one open, one spent.
        await store.claims.add_token("token-hash-open", "uid-ada", now, 3600, 3)
        await store.claims.add_token("token-hash-used", "uid-ada", now, 3600, 3)
        await store.db.write(lambda conn: Claims.use_token(conn, "token-hash-used", now))

        # Inbox: one row still to process, one done; a dedupe key from eight days ago has expired.
        pending = await store.inbox.accept(Arrival("telegram", "message", '{"update_id": 7}', ("telegram:u:7",)))
        done = await store.inbox.accept(Arrival("telegram", "message", '{"update_id": 6}', ("telegram:u:6",)))
        await store.inbox.complete_one(done.row.id)
        old = await Inbox(store.db, ManualClock(start=now - 8 * 24 * 3600)).accept(
            Arrival("telegram", "message", '{"update_id": 1}', ("telegram:u:1",))
        )
        await store.inbox.complete_one(old.row.id)

        # Outbox: an item in every state, of every kind.
        telegram = Address(Platform.TELEGRAM, "100", "100", message_id="55")
        slack = Address(Platform.SLACK, "D200", "U200", private=True, extra={"response_url": "http://127.0.0.1/r"})
        memories = NewMemories(memories=[ExplicitMemory(content="likes tea", tags=["drinks"])])
        extract = NewMemories(text="I moved to Lisbon", text_source_spec="slack")
        items = {
            ItemState.HELD: NewItem("slack:U200", "uid-bob", ItemKind.MEMORIES, memories, slack, state=ItemState.HELD),
            ItemState.PENDING: NewItem("telegram:100", "uid-ada", ItemKind.CONVERSATION, _conversation("a"), telegram),
            ItemState.SENDING: NewItem("telegram:100", "uid-ada", ItemKind.CONVERSATION, _conversation("b"), telegram),
            ItemState.UNKNOWN: NewItem("telegram:100", "uid-ada", ItemKind.CONVERSATION, _conversation("c"), telegram),
            ItemState.BLOCKED: NewItem("slack:U200", "uid-old", ItemKind.EXTRACT, extract, slack, summary="Lisbon"),
            ItemState.FAILED: NewItem("telegram:100", "uid-ada", ItemKind.CONVERSATION, _conversation("d"), telegram),
            ItemState.DONE: NewItem("telegram:100", "uid-ada", ItemKind.CONVERSATION, _conversation("e"), telegram),
        }
        ids = dict(
            zip(items, await store.db.write(lambda conn: Outbox.add(conn, list(items.values()), now)), strict=True)
        )
        outcomes = {
            ItemState.UNKNOWN: {"unknown_since": now, "next_attempt_at": now + 120},
            ItemState.BLOCKED: {"last_error": "app not enabled", "next_attempt_at": now + 3600, "attempts_delta": 1},
            ItemState.FAILED: {"last_error": "Omi said 400", "finished_at": now, "attempts_delta": 1},
            ItemState.DONE: {"finished_at": now, "attempts_delta": 1},
        }
        for state in (ItemState.SENDING, *outcomes):
            [claimed] = await store.db.write(lambda conn, i=ids[state]: Outbox.claim(conn, [i], now))
            if state in outcomes:  # the attempt's outcome
                await store.db.write(
                    lambda conn, c=claimed, s=state: Outbox.transition(
                        conn, [c.claim], expect=ItemState.SENDING, to=s, **outcomes[s]
                    )
                )
        for state, item_id in ids.items():
            assert (await store.outbox.get(item_id)).state is state

        # Stored values: the webhook secrets, the polling offset; the health probe stays behind.
        await store.values.set(SECRET_KEY, WEBHOOK_SECRET)
        await store.values.set(OMI_WEBHOOK_KEY, "omi-secret")
        await store.values.set(OFFSET_KEY, "812345679")
        # A 429 hold in force, shared by every instance once on PostgreSQL.
        await store.db.write(
            lambda conn: Holds.hold(conn, "kind:uid-ada:conversation", 30.0, first=1.0, cap=600.0, now=now)
        )
        # A "More" button's query of today, and one of last week that housekeeping would delete next.
        search_token = await store.search_queries.remember(SEARCH_QUERY)
        await SearchQueries(store.db, ManualClock(start=now - 8 * 24 * 3600)).remember("an old search")
        # A code on its way to the Omi app (given back when serve stopped), and Telegram's send pacing (not moved).
        await store.code_sends.put("slack:U200", "uid-bob", CODE, slack, now, now + 1800, "serve", 120.0)
        await store.code_sends.release("serve")
        await store.pacing.telegram("100")
        # An import on its way: its record, its ledger of imported message ids, and its item in the outbox.
        import_id = await store.imports.begin(
            account="telegram:100", uid="uid-ada", source="telegram", chat="777", chat_name="Family", now=now
        )
        record = await store.imports.get(import_id)
        assert record is not None
        imported = items[ItemState.PENDING]
        await store.imports.stage(record, [imported], [["m1", "m2"]], now)
        await store.imports.queue(import_id, messages=2, skipped=0, now=now)
        # A voice message's transcript, stored while its burst waits (SPEC §11): moved, so it is not paid twice.
        await store.transcripts.want("telegram:100:100:7", "telegram:100", now)
        # Omi → chat (SPEC §12): an event not handled yet, a push waiting for the digest, the /notify setting.
        setting = NotifySetting("telegram:100", "digest", digest_minute=540, zone="+02:00")
        await store.pushes.set_mode("telegram:100", setting, now)

        def omi_rows(conn) -> None:
            conn.execute(
                "INSERT INTO omi_events (uid, conversation_id, received_at, next_at) VALUES ('uid-ada', 'c-1', ?, ?)",
                (now, now),
            )
            conn.execute(
                "INSERT INTO pushes (account, conversation_id, digest, content, created_at, next_at)"
                " VALUES ('telegram:100', 'c-0', 1, '{\"title\": \"Garden\"}', ?, 0)",
                (now,),
            )

        await store.db.write(omi_rows)
        assert await store.db.is_writable()
    finally:
        await store.close()
    writes = {ids[state]: item.write for state, item in items.items() if state is not ItemState.DONE}
    return Deployment(path, f"sqlite:///{path}", now, writes, pending.row.id, search_token)


@pytest.fixture
async def deployment(tmp_path: Path) -> AsyncIterator[Deployment]:
    yield await build_deployment(tmp_path / "bridge.db")


def sqlite_rows(path: Path, table: str) -> list[dict[str, Any]]:
    with sqlite3.connect(path) as conn:
        conn.row_factory = sqlite3.Row
        return [dict(row) for row in conn.execute(f"SELECT * FROM {table}")]  # noqa: S608


async def store_rows(store: Store, table: str) -> list[dict[str, Any]]:
    return [dict(zip(row.keys(), row, strict=True)) for row in await store.db.fetchall(f"SELECT * FROM {table}")]  # noqa: S608


def ordered(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(rows, key=lambda row: repr(sorted(row.items())))


def still_matter(table: str, rows: list[dict[str, Any]], now: float) -> list[dict[str, Any]]:
    if table == "inbox":
        return [row for row in rows if row["state"] == "new"]
    if table == "dedupe":
        return [row for row in rows if row["expires_at"] >= now]
    if table == "stored_values":
        return [row for row in rows if row["key"] != "health_probe"]
    if table == "search_queries":
        return [row for row in rows if row["created_at"] >= now - QUERY_TTL_SECONDS]
    if table == "code_sends":
        return [row for row in rows if row["expires_at"] > now]
    return rows


# --- the move ---------------------------------------------------------------------------------------------------


async def test_every_kind_of_row_arrives_equal(deployment: Deployment, target: str) -> None:
    lines = await migrate_db(deployment.url, target)

    assert [line.split(":")[0] for line in lines[:-1]] == list(TABLES)
    assert "inbox: 1 row copied (2 finished left behind)" in lines
    assert "dedupe: 2 rows copied (1 expired left behind)" in lines
    assert "outbox: 8 rows copied" in lines  # the seven states and an import's item
    assert "stored_values: 3 rows copied (1 health probe left behind)" in lines
    assert "search_queries: 1 row copied (1 expired left behind)" in lines
    assert "code_sends: 1 row copied" in lines
    assert "imports: 1 row copied" in lines and "import_ledger: 2 rows copied" in lines
    assert "transcripts: 1 row copied" in lines
    assert lines[-1].startswith("moved ")
    assert lines[-1].endswith("; now set DATABASE_URL to it and start serve")
    assert PASSWORD not in "\n".join(lines)
    assert ":***@" in lines[-1]

    store = await Store.open(target, ManualClock(start=deployment.now))
    try:
        assert await store.db.schema_version() == MIGRATIONS[-1].version
        # Every row that still matters, column for column.
        for table in TABLES:
            expected = still_matter(table, sqlite_rows(deployment.path, table), time.time())
            assert expected, table  # the deployment holds rows of every kind
            assert ordered(await store_rows(store, table)) == ordered(expected), table

        # ...and the store reads them as it did on SQLite.
        verified, claimed = await store.links.get("slack:U200")
        assert (verified.uid, claimed.uid, claimed.handle_hint) == ("uid-old", "uid-bob", "by")
        claim = await store.claims.get("slack:U200")
        assert (claim.code_hash, claim.wrong_attempts) == ("code-hash", 1)
        assert await store.claims.codes_sent_since("uid-bob", deployment.now - 60) == [deployment.now]
        assert await store.claims.open_tokens("uid-ada", deployment.now) == 1
        assert [row.id for row in await store.inbox.pending()] == [deployment.pending_inbox_id]
        for item_id, write in deployment.writes.items():
            item = await store.outbox.get(item_id)
            assert item.write == write and item.payload_problem is None
        assert {item.state for item in await store.outbox.open_for_account("telegram:100")} == {
            ItemState.PENDING,
            ItemState.SENDING,
            ItemState.UNKNOWN,
        }
        assert (await store.outbox.last_finished("telegram:100")).state in (ItemState.DONE, ItemState.FAILED)
        assert await store.values.get(SECRET_KEY) == WEBHOOK_SECRET
        assert await store.values.get(OMI_WEBHOOK_KEY) == "omi-secret"
        assert await store.values.get(OFFSET_KEY) == "812345679"
        assert await store.values.get("health_probe") is None
        # A "More" button pressed after the move still pages its search; the code still goes to the Omi app.
        assert await store.search_queries.get(deployment.search_token) == SEARCH_QUERY
        send = await store.code_sends.get("slack:U200")
        assert (send.uid, send.code, send.address.platform) == ("uid-bob", CODE, Platform.SLACK)
        assert sqlite_rows(deployment.path, "send_pacing") and await store_rows(store, "send_pacing") == []

        # A dedupe key that came over still catches its duplicate; the expired one does not.
        assert (await store.inbox.accept(Arrival("telegram", "message", "{}", ("telegram:u:7",)))).duplicate
        fresh = await store.inbox.accept(Arrival("telegram", "message", "{}", ("telegram:u:1",)))
        # New rows get ids above the copied ones (the identity sequences were moved past them).
        assert fresh.row.id > max(row["id"] for row in sqlite_rows(deployment.path, "inbox"))
        address = Address(Platform.TELEGRAM, "100", "100")
        item = NewItem("telegram:100", "uid-ada", ItemKind.CONVERSATION, _conversation("f"), address)
        [new_id] = await store.db.write(lambda conn: Outbox.add(conn, [item], deployment.now))
        assert new_id > max(deployment.writes)
        assert (await store.outbox.get(new_id)).write == _conversation("f")
        # Keys expire in a week from their arrival, as they would have on SQLite.
        [row] = await store.db.fetchall("SELECT expires_at FROM dedupe WHERE key = ?", ("telegram:u:7",))
        assert row["expires_at"] == pytest.approx(deployment.now + DEDUPE_TTL_SECONDS)
    finally:
        await store.close()


async def test_the_worker_lock_is_held_while_copying_and_released_after(
    deployment: Deployment, target: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[bool] = []
    real = migrate._insert_all

    def spying(conn: Any, tables: Any) -> Any:
        probe = WorkerLock(str(deployment.path))
        seen.append(probe.try_acquire())  # a serve starting now could not take it
        probe.release()
        return real(conn, tables)

    monkeypatch.setattr(migrate, "_insert_all", spying)
    await migrate_db(deployment.url, target)
    assert seen == [False]
    after = WorkerLock(str(deployment.path))
    assert after.try_acquire()
    after.release()


async def test_a_failed_copy_moves_nothing(deployment: Deployment, target: str) -> None:
    # SQLite keeps a value its column cannot hold; PostgreSQL refuses it, after the tables before outbox went in.
    with sqlite3.connect(deployment.path) as conn:
        conn.execute("UPDATE outbox SET attempts = 'many' WHERE id = ?", (min(deployment.writes),))
    with pytest.raises(MigrateDbError) as refused:
        await migrate_db(deployment.url, target)
    assert refused.value.code == EXIT_REFUSED
    assert "nothing was moved" in refused.value.line and PASSWORD not in refused.value.line
    store = await Store.open(target, ManualClock())
    try:
        for table in TABLES:
            assert await store_rows(store, table) == [], table
    finally:
        await store.close()
    # The source is as it was, and a second try (after the fix) finds the target empty.
    with sqlite3.connect(deployment.path) as conn:
        conn.execute("UPDATE outbox SET attempts = 0 WHERE id = ?", (min(deployment.writes),))
    assert (await migrate_db(deployment.url, target))[-1].startswith("moved ")


# --- refusals -----------------------------------------------------------------------------------------------------


async def test_a_target_that_is_not_empty_is_refused(deployment: Deployment, target: str) -> None:
    store = await Store.open(target, ManualClock())
    try:
        await store.values.set("telegram_offset", "1")
        await store.links.link_verified("console:me", "uid-x")
    finally:
        await store.close()
    with pytest.raises(MigrateDbError) as refused:
        await migrate_db(deployment.url, target)
    assert refused.value.code == EXIT_REFUSED
    assert refused.value.line == (
        f"target {with_password(target).replace(PASSWORD, '***')} is not empty (1 row in links, 1 row in"
        " stored_values); give an empty database"
    )
    store = await Store.open(target, ManualClock())
    try:
        assert len(await store_rows(store, "links")) == 1  # untouched
    finally:
        await store.close()


async def test_a_target_holding_only_a_health_probe_counts_as_empty(deployment: Deployment, target: str) -> None:
    store = await Store.open(target, ManualClock())
    try:
        assert await store.db.is_writable()  # what `doctor` leaves behind
    finally:
        await store.close()
    assert (await migrate_db(deployment.url, target))[-1].startswith(f"moved {MOVED} rows to ")


async def test_refused_while_serve_holds_the_worker_lock(tmp_path: Path) -> None:
    deployment = await build_deployment(tmp_path / "bridge.db")
    serve = WorkerLock(str(deployment.path))
    assert serve.try_acquire()
    try:
        # The target is never reached (nothing listens on port 1): the lock is checked first.
        with pytest.raises(MigrateDbError) as refused:
            await migrate_db(deployment.url, "postgresql://postgres@127.0.0.1:1/test")
    finally:
        serve.release()
    assert refused.value.code == EXIT_REFUSED
    assert f"pid {os.getpid()}" in refused.value.line
    assert "stop serve first" in refused.value.line


async def test_refused_while_a_serve_runs_on_the_target(deployment: Deployment, target: str) -> None:
    serve = PostgresWorkerLock(target, "the target", shared=True)  # as every `serve` instance holds it
    assert await asyncio.to_thread(serve.try_acquire)
    try:
        with pytest.raises(MigrateDbError) as refused:
            await migrate_db(deployment.url, target)
    finally:
        serve.release()
    assert refused.value.code == EXIT_REFUSED
    assert "is running on" in refused.value.line and PASSWORD not in refused.value.line


async def test_a_target_that_cannot_be_reached_or_refuses_us(deployment: Deployment) -> None:
    require_postgres()
    with pytest.raises(MigrateDbError) as unreachable:  # nothing listens on port 1: no waiting, exit 1
        await migrate_db(deployment.url, f"postgresql://postgres:{PASSWORD}@127.0.0.1:1/test")
    assert (
        unreachable.value.code == EXIT_REFUSED and "cannot reach postgresql://postgres:***@" in unreachable.value.line
    )
    missing = with_password(POSTGRES).rsplit("/", 1)[0] + "/omi_bridge_no_such_database"
    with pytest.raises(MigrateDbError) as refused:  # a database that is not there: a bad argument
        await migrate_db(deployment.url, missing)
    assert refused.value.code == EXIT_USAGE and refused.value.line.startswith("--to: postgresql://postgres:***@")
    for line in (unreachable.value.line, refused.value.line):
        assert PASSWORD not in line


# --- the command line -----------------------------------------------------------------------------------------------


def test_the_command_moves_a_deployment_and_never_prints_the_password(tmp_path: Path, target: str) -> None:
    deployment = asyncio.run(build_deployment(tmp_path / "bridge.db"))
    env = clean_env(DATABASE_URL=deployment.url)
    moved = run("migrate-db", "--to", target, cwd=tmp_path, env=env)
    assert moved.code == 0, moved.err
    assert moved.err == ""
    assert len(moved.out_lines) == len(TABLES) + 1
    host = urlsplit(target)
    assert moved.out_lines[-1] == (
        f"moved {MOVED} rows to postgresql://postgres:***@{host.hostname}:{host.port}{host.path}?{host.query};"
        " now set DATABASE_URL to it and start serve"
    )
    again = run("migrate-db", "--to", target, cwd=tmp_path, env=env)
    assert again.code == 1
    assert again.out == "" and len(again.err_lines) == 1
    assert "is not empty (" in again.err and "give an empty database" in again.err
    for result in (moved, again):
        assert PASSWORD not in result.out + result.err


def test_a_source_that_is_already_postgresql_is_exit_2(tmp_path: Path) -> None:
    env = clean_env(DATABASE_URL=f"postgresql://postgres:{PASSWORD}@127.0.0.1:1/test")
    result = run("migrate-db", "--to", "postgresql://postgres@127.0.0.1:1/other", cwd=tmp_path, env=env)
    assert result.code == 2
    assert len(result.err_lines) == 1 and "Traceback" not in result.err
    assert "already PostgreSQL" in result.err and "SQLite" in result.err
    assert PASSWORD not in result.err and "postgres:***@" in result.err


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (("migrate-db",), "--to"),
        (("migrate-db", "--to", "sqlite:///other.db"), "--to: must be a postgresql://"),
        (("migrate-db", "--to", "postgresql://postgres@127.0.0.1:5432"), "--to: must name the database"),
        (("migrate-db", "--to", "postgresql://postgres@127.0.0.1:port/db"), "--to: must look like"),
    ],
)
def test_bad_arguments_are_exit_2(tmp_path: Path, args: tuple[str, ...], says: str) -> None:
    result = run(*args, cwd=tmp_path, env=clean_env(DATABASE_URL="sqlite:///bridge.db"))
    assert result.code == 2
    assert len(result.err_lines) == 1 and says in result.err
    assert list(tmp_path.iterdir()) == []  # nothing created, nothing locked


def test_a_missing_source_is_exit_2_and_creates_nothing(tmp_path: Path) -> None:
    result = run("migrate-db", "--to", "postgresql://postgres@127.0.0.1:1/test", cwd=tmp_path, env=clean_env())
    assert result.code == 2
    assert result.err_lines == ["omi-bridge migrate-db: DATABASE_URL: no SQLite database at omi-bridge.db"]
    assert list(tmp_path.iterdir()) == []


def test_help(tmp_path: Path) -> None:
    result = run("migrate-db", "--help", cwd=tmp_path)
    assert result.code == 0 and result.err == ""
    assert "usage: omi-bridge migrate-db" in result.out and "--to" in result.out
    assert "migrate-db" in run("--help", cwd=tmp_path).out
