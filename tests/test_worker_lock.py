"""One delivery worker per database."""

from __future__ import annotations

import io

import pytest

from bot import runtime, worker_lock
from bot.runtime import run_console
from bot.settings import load_settings
from bot.worker_lock import PostgresWorkerLock, WorkerLock, WorkerLockBusy
from tests.processes import BackgroundProcess, clean_env


async def test_a_second_holder_waits_then_gives_up_naming_the_first(tmp_path):
    db = str(tmp_path / "bridge.db")
    first, second = WorkerLock(db), WorkerLock(db)
    assert first.try_acquire()
    with pytest.raises(WorkerLockBusy, match=r"pid \d+ on .* is delivering from this database"):
        await second.acquire(wait=0.2)
    first.release()
    await second.acquire(wait=0.2)  # free again: taken at once
    second.release()


async def test_the_lock_goes_with_a_killed_process(tmp_path):
    db = tmp_path / "bridge.db"
    env = clean_env(DATABASE_URL=f"sqlite:///{db}")
    console = BackgroundProcess("console", cwd=tmp_path, env=env)  # holds the lock while it waits for input
    try:
        console.wait_for("Linked to Omi uid")
        assert not WorkerLock(str(db)).try_acquire()
        console.process.kill()
        console.process.wait()
        lock = WorkerLock(str(db))
        assert lock.try_acquire()  # no stale lock after kill -9
        lock.release()
    finally:
        console.kill()


async def test_a_second_console_on_the_same_database_exits_with_a_clear_message(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(worker_lock, "LOCK_WAIT_SECONDS", 0.2)
    monkeypatch.setattr(runtime, "LOCK_WAIT_SECONDS", 0.2)
    settings = load_settings(DATABASE_URL=f"sqlite:///{tmp_path / 'bridge.db'}", OMI_APP_ID=None, OMI_API_KEY=None)
    holder = WorkerLock(settings.database_path)
    assert holder.try_acquire()
    with pytest.raises(WorkerLockBusy):
        await run_console(settings, stdin=io.StringIO("hello\n"), stdout=io.StringIO())
    holder.release()


def test_postgres_instances_share_the_lock_and_migrate_db_needs_it_alone():
    """SPEC §13: any number of `serve` instances on one PostgreSQL database; `migrate-db` refuses while any runs,
    and an instance starting during a migration waits for it."""
    from tests.databases import Schema, require_postgres

    require_postgres()
    schema = Schema().create()
    first = PostgresWorkerLock(schema.url, "db", shared=True)
    second = PostgresWorkerLock(schema.url, "db", shared=True)
    migration = PostgresWorkerLock(schema.url, "db")
    try:
        assert first.try_acquire() and second.try_acquire()
        assert first.others() == 1 and second.others() == 1  # how `omi-bridge import` sees a serve at work
        assert not migration.try_acquire()
        first.release()
        second.release()
        assert migration.try_acquire()
        assert not PostgresWorkerLock(schema.url, "db", shared=True).try_acquire()
    finally:
        for lock in (first, second, migration):
            lock.release()
        schema.drop()
