"""The store on both engines: migrations, group-committed intake, dedupe, replay."""

from __future__ import annotations

import asyncio
import sqlite3

import pytest

from bot.clock import ManualClock
from bot.store import Arrival, Batched, DatabaseUnavailable, Store, mark_done
from bot.store import database as engine_neutral
from bot.store import inbox as inbox_module
from bot.store.inbox import DEDUPE_TTL_SECONDS
from bot.store.migrations import MIGRATIONS

#: Every test here runs on SQLite and on PostgreSQL (tests/conftest.py).
BOTH_ENGINES = True
real_one = inbox_module._insert_one


async def open_store(database, clock=None) -> Store:
    return await Store.open(database, clock or ManualClock())


async def test_migrations_run_once_and_record_their_version(database):
    store = await open_store(database)
    assert await store.db.schema_version() == MIGRATIONS[-1].version
    await store.close()
    again = await open_store(database)  # a second start migrates nothing and keeps the data
    assert await again.db.schema_version() == MIGRATIONS[-1].version
    rows = await again.db.fetchall("SELECT version FROM schema_version")
    assert [row["version"] for row in rows] == [m.version for m in MIGRATIONS]
    if again.db.engine == "sqlite":
        journal = await again.db.fetchone("PRAGMA journal_mode")
        assert journal[0] == "wal"
    await again.close()


async def test_concurrent_arrivals_share_commits_and_all_are_accepted(database, monkeypatch):
    store = await open_store(database)
    commits = 0
    original = engine_neutral.commit_group

    def counting_commit(conn, works, begin):
        nonlocal commits
        commits += 1
        return original(conn, works, begin)

    monkeypatch.setattr(engine_neutral, "commit_group", counting_commit)
    results = await asyncio.gather(
        *(store.inbox.accept(Arrival("telegram", "update", f'{{"n": {n}}}', (f"u:{n}",))) for n in range(200))
    )
    assert all(not r.duplicate for r in results)
    assert len({r.row.id for r in results}) == 200
    assert 1 <= commits < 20  # group commit: far fewer transactions than arrivals
    pending = await store.inbox.pending()
    assert [row.payload for row in pending] == [f'{{"n": {n}}}' for n in range(200)]
    await store.close()


async def test_duplicates_within_a_batch_and_across_batches(database):
    store = await open_store(database)
    first, twin = await asyncio.gather(
        store.inbox.accept(Arrival("telegram", "update", "{}", ("u:1", "m:42:7"))),
        store.inbox.accept(Arrival("telegram", "update", "{}", ("u:2", "m:42:7"))),  # same (chat, message)
    )
    assert not first.duplicate and twin.duplicate
    later = await store.inbox.accept(Arrival("telegram", "update", "{}", ("u:1",)))
    assert later.duplicate
    assert await store.inbox.pending_count() == 1
    await store.close()


async def test_arrivals_sharing_a_commit_keep_their_own_rows_and_duplicates(database, monkeypatch):
    """Arrivals in one commit are inserted by one statement per table: each gets the row holding its own payload,
    and the first of two with a shared key wins. A batch holding a key seen before is made arrival by arrival: that
    arrival is a duplicate, and its other keys are still recorded."""
    store = await open_store(database)
    one_by_one = []
    monkeypatch.setattr(inbox_module, "_insert_one", lambda conn, i: one_by_one.append(i) or real_one(conn, i))
    arrivals = [Arrival("telegram", "update", f"p{n}", (f"u:{n}", f"m:{n // 2}")) for n in range(40)]
    results = await asyncio.gather(*(store.inbox.accept(a) for a in arrivals))
    assert not one_by_one  # one batch (or a few), no key seen before
    accepted = {a.payload: r.row for a, r in zip(arrivals, results, strict=True) if not r.duplicate}
    assert set(accepted) == {f"p{n}" for n in range(0, 40, 2)}  # p1 shares m:0 with p0, p3 m:1 with p2...
    later = [Arrival("telegram", "update", "half-seen", ("u:3", "late")), Arrival("telegram", "update", "x", ("late",))]
    later.append(Arrival("telegram", "update", "new", ("fresh",)))
    results = await asyncio.gather(*(store.inbox.accept(a) for a in later))
    assert [r.duplicate for r in results] == [True, True, False] and len(one_by_one) == 3
    accepted["new"] = results[2].row
    for payload, row in accepted.items():
        stored = await store.db.fetchone("SELECT payload FROM inbox WHERE id = ?", (row.id,))
        assert stored["payload"] == payload == row.payload
    assert (await store.db.fetchone("SELECT COUNT(*) AS n FROM dedupe WHERE key = 'late'"))["n"] == 1
    await store.close()


async def test_a_batched_write_that_fails_is_made_one_by_one(database):
    """One bad item in a batch undoes only itself: the batch is made again item by item, each in its savepoint."""
    store = await open_store(database)

    def put(conn, keys):
        for key in keys:
            if key == "bad":
                raise ValueError("bad item")
            conn.execute("INSERT INTO stored_values (key, value) VALUES (?, 'v')", (key,))
        return list(keys)

    writes = [store.db.write(Batched(put, key)) for key in ("a", "bad", "c")]
    results = await asyncio.gather(*writes, return_exceptions=True)
    assert results[0] == "a" and results[2] == "c" and isinstance(results[1], ValueError)
    assert await store.values.get("a") == "v" and await store.values.get("c") == "v"
    assert await store.values.get("bad") is None
    await store.close()


async def test_dedupe_keys_expire_after_seven_days(database):
    clock = ManualClock()
    store = await open_store(database, clock)
    assert not (await store.inbox.accept(Arrival("slack", "event", "{}", ("ev:1",)))).duplicate
    clock.advance(DEDUPE_TTL_SECONDS + 1)
    await store.inbox.purge()
    assert not (await store.inbox.accept(Arrival("slack", "event", "{}", ("ev:1",)))).duplicate
    await store.close()


async def test_rows_not_marked_done_are_replayed_and_done_rows_lose_their_payload(database):
    store = await open_store(database)
    kept = await store.inbox.accept(Arrival("console", "line", '{"text": "a"}'))
    done = await store.inbox.accept(Arrival("console", "line", '{"text": "b"}'))
    await store.db.write(lambda conn: mark_done(conn, [done.row.id]))
    await store.close()
    reopened = await open_store(database)
    assert [row.id for row in await reopened.inbox.pending()] == [kept.row.id]
    row = await reopened.db.fetchone("SELECT payload FROM inbox WHERE id = ?", (done.row.id,))
    assert row["payload"] is None
    await reopened.close()


async def test_a_failing_transaction_rolls_back(database):
    store = await open_store(database)

    def half_done(conn):
        conn.execute("INSERT INTO stored_values VALUES ('a', 'b')")
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        await store.db.write(half_done)
    assert await store.values.get("a") is None
    await store.close()


async def test_an_unwritable_database_is_reported_as_unavailable(database):
    store = await open_store(database)
    read_only, writable = (
        ("PRAGMA query_only = ON", "PRAGMA query_only = OFF")  # every write now fails like a read-only disk
        if store.db.engine == "sqlite"
        else ("SET default_transaction_read_only = on", "SET default_transaction_read_only = off")
    )
    await store.db.run(lambda conn: conn.execute(read_only))
    with pytest.raises(DatabaseUnavailable):
        await store.inbox.accept(Arrival("telegram", "update", "{}", ("u:9",)))
    assert not await store.db.is_writable()
    await store.db.run(lambda conn: conn.execute(writable))
    assert await store.db.is_writable()
    await store.close()


async def test_settings_get_or_create_generates_once(database):
    store = await open_store(database)
    first = await store.values.get_or_create("webhook_secret", lambda: "generated-1")
    second = await store.values.get_or_create("webhook_secret", lambda: "generated-2")
    assert first == second == "generated-1"
    await store.close()


def test_every_migration_is_valid_sql():
    connection = sqlite3.connect(":memory:")
    for migration in MIGRATIONS:
        connection.executescript(migration.sql)
    connection.close()


async def test_a_migration_another_process_applied_meanwhile_is_skipped_on_sqlite(tmp_path):
    """Two commands started at once on a new SQLite file both saw version 0; the one that gets the write lock
    second finds the version claimed and has nothing to do (it used to fail with "table links already exists")."""
    from bot.clock import ManualClock
    from bot.store import Store
    from bot.store.migrations import MIGRATIONS

    store = await Store.open(str(tmp_path / "bridge.db"), ManualClock())
    try:
        await store.db.run(store.db._apply, MIGRATIONS[0])  # as the slower process would
        assert await store.db.schema_version() == MIGRATIONS[-1].version
        assert (await store.db.fetchone("SELECT COUNT(*) AS n FROM schema_version"))["n"] == len(MIGRATIONS)
    finally:
        await store.close()
