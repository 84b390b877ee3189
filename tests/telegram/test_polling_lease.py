"""Telegram polling on exactly one instance at a time (SPEC §13): the holder of the `telegram:polling` lease polls,
renewing it while a long poll waits; another takes over (from the stored offset, nothing lost or accepted twice)
when it stops or its lease runs out; a missed renewal or a 409 `Conflict` stops polling until the lease is held
again. Several instances are several `Store`s (each its own database connection and clock) on one PostgreSQL
schema; the single-instance behaviour runs on SQLite too."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

import pytest
from telegram.request import HTTPXRequest

from adapters.telegram.bot_api import POLL_TIMEOUT_SECONDS, IntakeBot
from adapters.telegram.polling import (
    LEASE_NAME,
    LEASE_SECONDS,
    OFFSET_KEY,
    PAUSED,
    POLLING,
    RENEW_SECONDS,
    STANDBY,
    STANDBY_SECONDS,
    Poller,
)
from bot.backoff import Backoff
from bot.clock import ManualClock
from bot.leasing import HeldLease
from bot.store import Accepted, Arrival, Store
from bot.store.leases import Leases
from tests.databases import Schema, require_postgres, set_read_only
from tests.telegram.conftest import command
from tests.telegram.fake_bot_api import CLIENT_HEADER, FakeBotApi

#: Tests that use `engine` (via `database` or `env`) run on SQLite and on PostgreSQL (tests/conftest.py).
BOTH_ENGINES = True


class CountingLease(HeldLease):
    """The real lease, counting its takes (an instance standing by tries again and again)."""

    def __init__(self, *args: object, changed: Callable[[], None], **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.takes = 0
        self.last_try = 0.0  # loop time of the last take
        self._changed = changed

    async def take(self) -> bool:
        try:
            return await super().take()
        finally:
            self.takes += 1
            self.last_try = asyncio.get_running_loop().time()
            self._changed()


@dataclass
class Instance:
    """One `omi-bridge serve` among several on one database: its own store, bot connection and poller."""

    name: str
    store: Store
    bot: IntakeBot
    lease: CountingLease
    poller: Poller
    gate: asyncio.Event = field(default_factory=asyncio.Event)  # cleared: this instance's accepts wait
    held_back: int = 0  # accepts that waited at the gate

    def polls(self, api: FakeBotApi) -> list[dict]:
        return api.calls_to("getUpdates", client=self.name)


class Cluster:
    """Instances on one database against one fake Bot API; `accepted` records (instance, update_id, fresh)."""

    def __init__(self, api: FakeBotApi, database: str) -> None:
        self.api = api
        self.database = database
        self.instances: list[Instance] = []
        self.accepted: list[tuple[str, int, bool]] = []
        self._waiters: list[tuple[asyncio.Future[None], Callable[[], bool]]] = []

    async def start(
        self,
        name: str,
        *,
        lease_seconds: float = 2.0,
        renew_seconds: float = 0.2,
        standby_seconds: float = 0.1,
        poll_timeout: int = 1,
        backoff: Backoff | None = None,
    ) -> Instance:
        store = await Store.open(self.database, ManualClock())
        headers = {"headers": {CLIENT_HEADER: name}}
        bot = IntakeBot(
            self.api.token,
            base_url=self.api.base_url,
            request=HTTPXRequest(httpx_kwargs=headers),
            get_updates_request=HTTPXRequest(connection_pool_size=1, read_timeout=10.0, httpx_kwargs=headers),
        )
        await bot.initialize()
        lease = CountingLease(store.db, LEASE_NAME, name, lease_seconds, changed=self._notify)

        async def accept(arrival: Arrival) -> Accepted:
            if not instance.gate.is_set():
                instance.held_back += 1
                self._notify()
                await instance.gate.wait()
            accepted = await store.inbox.accept(arrival)
            self.accepted.append((name, json.loads(arrival.payload)["update_id"], not accepted.duplicate))
            self._notify()
            return accepted

        poller = Poller(
            bot,
            accept,
            store.values,
            lease,
            poll_timeout=poll_timeout,
            renew_seconds=renew_seconds,
            standby_seconds=standby_seconds,
            backoff=backoff or Backoff(0.05, 0.2),
        )
        instance = Instance(name, store, bot, lease, poller)
        instance.gate.set()
        self.instances.append(instance)
        await poller.start()
        return instance

    async def stop(self, instance: Instance) -> None:
        if instance in self.instances:
            self.instances.remove(instance)
            instance.gate.set()
            await instance.poller.stop()
            await instance.bot.shutdown()
            await instance.store.close()

    async def close(self) -> None:
        for instance in reversed(list(self.instances)):
            await self.stop(instance)

    def _notify(self) -> None:
        for future, predicate in list(self._waiters):
            if not future.done() and predicate():
                future.set_result(None)

    async def wait_until(self, predicate: Callable[[], bool], timeout: float = 5.0) -> None:
        """Until `predicate()` holds after an accept or a take (no sleeping)."""
        if predicate():
            return
        waiter = (asyncio.get_running_loop().create_future(), predicate)
        self._waiters.append(waiter)
        try:
            async with asyncio.timeout(timeout):
                await waiter[0]
        finally:
            self._waiters.remove(waiter)

    def fresh(self, update: dict) -> str | None:
        """Which instance accepted `update` first (None: not yet)."""
        return next((n for n, uid, fresh in self.accepted if uid == update["update_id"] and fresh), None)

    async def inbox_update_ids(self) -> list[int]:
        db = self.instances[0].store.db if self.instances else None
        assert db is not None
        rows = await db.fetchall("SELECT payload FROM inbox ORDER BY id")
        return [json.loads(row["payload"])["update_id"] for row in rows]


async def stored_offset(store: Store) -> int:
    return int(await store.values.get(OFFSET_KEY) or 0)


@pytest.fixture
async def shared_database() -> AsyncIterator[str]:
    """One PostgreSQL schema for several instances (SQLite is one process per file: no sharing to test)."""
    require_postgres()
    schema = Schema().create()
    try:
        yield schema.url
    finally:
        schema.drop()


@pytest.fixture
async def shared(fake_api, shared_database) -> AsyncIterator[Cluster]:
    cluster = Cluster(fake_api, shared_database)
    try:
        yield cluster
    finally:
        await cluster.close()


@pytest.fixture
async def single(fake_api, database) -> AsyncIterator[Cluster]:
    """One instance's database on either engine (`database` follows BOTH_ENGINES)."""
    cluster = Cluster(fake_api, database)
    try:
        yield cluster
    finally:
        await cluster.close()


def message(message_id: int) -> dict:
    return command("help", message_id=message_id)


# --- the numbers -------------------------------------------------------------------------------------------


async def test_long_polls_ask_for_at_most_ten_seconds_and_a_dead_holder_is_replaced_within_thirty(transport, fake_api):
    await transport.start()
    [poll, *_] = await fake_api.wait_for("getUpdates")
    assert 0 < poll["timeout"] <= 10
    assert POLL_TIMEOUT_SECONDS <= 10
    assert (LEASE_SECONDS, RENEW_SECONDS) == (15.0, 5.0)
    # A holder that misses a renewal stops (its poll cancelled) by lease - renew seconds after its last renewal,
    # before its lease can run out; a dead holder's lease runs out within 15 s and is taken at the next try.
    assert STANDBY_SECONDS <= 5.0 and LEASE_SECONDS + STANDBY_SECONDS <= 30.0


# --- several instances on one PostgreSQL database --------------------------------------------------------


async def test_only_the_lease_holder_polls_and_it_renews_while_a_long_poll_waits(shared, fake_api):
    # The long poll (3 s) outlasts the lease (1.2 s): only renewals running beside it keep the lease with A.
    a = await shared.start("a", lease_seconds=1.2, poll_timeout=3)
    b = await shared.start("b", lease_seconds=1.2, poll_timeout=3)
    started = asyncio.get_running_loop().time()
    assert (a.poller.state, b.poller.state) == (POLLING, STANDBY)
    taken = await Leases(a.store.db).holder(LEASE_NAME)
    assert taken is not None and taken.owner == "a"

    await fake_api.wait_for("getUpdates", client="a", count=2, timeout=10)  # A's first long poll ran out
    assert b.polls(fake_api) == []
    # B kept trying (every 0.1 s) long past the time A's lease would have run out unrenewed, refused each time.
    assert b.lease.last_try - started >= 2 * 1.2 and b.poller.standing_by
    assert await Leases(a.store.db).holder(LEASE_NAME) == taken  # same epoch: renewed, never lost and taken again
    update = await fake_api.push_update(message(601))
    await shared.wait_until(lambda: shared.fresh(update) is not None)
    assert shared.fresh(update) == "a"
    assert b.polls(fake_api) == [] and b.poller.standing_by and b.poller.problem is None


async def test_when_the_holder_stops_another_takes_over_at_once_from_the_stored_offset(shared, fake_api):
    # A lease of 30 s: a take-over within the test's few seconds means A gave it back on stop.
    a = await shared.start("a", lease_seconds=30.0)
    b = await shared.start("b", lease_seconds=30.0)
    first, second = [await fake_api.push_update(message(n)) for n in (602, 603)]
    await shared.wait_until(lambda: shared.fresh(first) == "a" and shared.fresh(second) == "a")
    await fake_api.wait_for("getUpdates", lambda p: p["offset"] == second["update_id"] + 1, client="a")
    assert await stored_offset(a.store) == second["update_id"] + 1

    await shared.stop(a)
    await b.poller.wait_for(lambda p: p.state == POLLING)
    [resumed, *_] = await fake_api.wait_for("getUpdates", client="b")
    assert resumed["offset"] == second["update_id"] + 1  # from where A stopped, read from the database
    third = await fake_api.push_update(message(604))
    await shared.wait_until(lambda: shared.fresh(third) is not None)

    assert [shared.fresh(u) for u in (first, second, third)] == ["a", "a", "b"]
    assert [uid for _, uid, fresh in shared.accepted if not fresh] == []  # nothing fetched twice
    assert await shared.inbox_update_ids() == [first["update_id"], second["update_id"], third["update_id"]]


async def test_when_the_holders_lease_runs_out_another_takes_over_and_the_former_holder_stops_polling(shared, fake_api):
    # A's long poll (8 s) is in flight when its lease is taken over: it must end at A's next renewal, not after 8 s.
    a = await shared.start("a", lease_seconds=2.0, poll_timeout=8)
    b = await shared.start("b", lease_seconds=2.0, poll_timeout=8)
    first = await fake_api.push_update(message(605))
    await shared.wait_until(lambda: shared.fresh(first) == "a")
    await fake_api.wait_for("getUpdates", lambda p: p["offset"] == first["update_id"] + 1, client="a")
    lease_a = await Leases(a.store.db).holder(LEASE_NAME)

    # On B's view of the database's clock A's lease has run out (as if A had stopped renewing 3 s ago).
    b.store.db.clock_skew = 3.0
    await b.poller.wait_for(lambda p: p.state == POLLING)
    await a.poller.wait_for(lambda p: p.state == STANDBY, timeout=4.0)  # its renewal was refused: poll cancelled
    lease_b = await Leases(b.store.db).holder(LEASE_NAME)
    assert lease_a is not None and lease_b is not None
    assert (lease_b.owner, lease_b.epoch) == ("b", lease_a.epoch + 1)
    a_polls = len(a.polls(fake_api))

    [resumed, *_] = await fake_api.wait_for("getUpdates", client="b")
    assert resumed["offset"] == first["update_id"] + 1
    second, third = [await fake_api.push_update(message(n)) for n in (606, 607)]
    await shared.wait_until(lambda: shared.fresh(second) is not None and shared.fresh(third) is not None)
    await fake_api.wait_for("getUpdates", lambda p: p["offset"] == third["update_id"] + 1, client="b")

    assert [shared.fresh(u) for u in (first, second, third)] == ["a", "b", "b"]
    assert len(a.polls(fake_api)) == a_polls  # A polls no more while B holds the lease
    assert a.lease.takes > 1 and a.poller.standing_by and a.poller.problem is None
    assert await shared.inbox_update_ids() == [u["update_id"] for u in (first, second, third)]
    assert await stored_offset(b.store) == third["update_id"] + 1


async def test_a_former_holders_late_batch_never_moves_the_stored_offset_back(shared, fake_api):
    a = await shared.start("a", lease_seconds=2.0)
    b = await shared.start("b", lease_seconds=2.0)
    a.gate.clear()  # A's accepts hang: A fetches the next batch and is still committing it when it loses the lease
    first = await fake_api.push_update(message(608))
    await shared.wait_until(lambda: a.held_back == 1)

    b.store.db.clock_skew = 3.0  # A's lease ran out; B takes over and fetches the same batch (not yet confirmed)
    await b.poller.wait_for(lambda p: p.state == POLLING)
    second = await fake_api.push_update(message(609))
    await shared.wait_until(lambda: shared.fresh(first) == "b" and shared.fresh(second) == "b")
    await fake_api.wait_for("getUpdates", lambda p: p["offset"] == second["update_id"] + 1, client="b")
    assert await stored_offset(b.store) == second["update_id"] + 1

    a.gate.set()  # A's late commit: a duplicate accept, and an offset below B's
    await shared.wait_until(lambda: any(n == "a" and uid == first["update_id"] for n, uid, _ in shared.accepted))
    await a.poller.wait_for(lambda p: p.state == STANDBY)
    assert ("a", first["update_id"], False) in shared.accepted  # accepted again: a no-op
    assert await stored_offset(a.store) == second["update_id"] + 1  # not moved back to first + 1
    assert await shared.inbox_update_ids() == [first["update_id"], second["update_id"]]


# --- one instance, either engine ---------------------------------------------------------------------------


async def test_a_missed_renewal_stops_polling_until_the_lease_is_held_again(single, fake_api):
    a = await single.start("a", lease_seconds=2.0, poll_timeout=1)
    await fake_api.wait_for("getUpdates", client="a")
    assert a.poller.state == POLLING

    await set_read_only(a.store.db, True)  # the next renewal fails
    await a.poller.wait_for(lambda p: p.state == PAUSED)
    assert a.poller.problem == "the database is not writable, updates stay with Telegram"
    polls, takes = len(a.polls(fake_api)), a.lease.takes
    waiting = await fake_api.push_update(message(610))  # a poll still running would return with it at once
    await single.wait_until(lambda: a.lease.takes >= takes + 3)
    assert len(a.polls(fake_api)) == polls  # stopped: no getUpdates without the lease
    assert single.fresh(waiting) is None

    await set_read_only(a.store.db, False)
    await a.poller.wait_for(lambda p: p.state == POLLING)
    await single.wait_until(lambda: single.fresh(waiting) == "a")
    await fake_api.wait_for("getUpdates", lambda p: p["offset"] == waiting["update_id"] + 1, client="a")
    await a.poller.wait_for(lambda p: p.problem is None)
    assert await stored_offset(a.store) == waiting["update_id"] + 1


async def test_a_conflict_gives_the_lease_back_and_polling_resumes_when_it_ends(single, fake_api, caplog):
    caplog.set_level(logging.WARNING, logger="adapters.telegram.polling")
    fake_api.webhook["url"] = "https://elsewhere.example.com/hook"  # getUpdates answers 409 while a webhook is set
    a = await single.start("a", lease_seconds=30.0, backoff=Backoff(0.5, 1.0))

    await a.poller.wait_for(lambda p: p.state == PAUSED)
    assert a.poller.problem == "another process polls this bot (getUpdates) or a webhook is set"
    assert await a.store.leases.holder(LEASE_NAME) is None  # given back (a 30 s lease would not run out)
    await fake_api.wait_for("getUpdates", client="a", count=3, timeout=10)  # tried again with backoff
    conflicts = [r for r in caplog.records if "409" in r.getMessage()]
    assert len(conflicts) == 1 and conflicts[0].levelno == logging.WARNING

    fake_api.webhook["url"] = ""  # the other deployment is gone
    update = await fake_api.push_update(message(611))
    await single.wait_until(lambda: single.fresh(update) == "a", timeout=10)
    await a.poller.wait_for(lambda p: p.state == POLLING and p.problem is None)
    assert (await a.store.leases.holder(LEASE_NAME)).owner == "a"


async def test_a_standby_instance_is_healthy_and_takes_over_when_the_lease_is_given_back(transport, fake_api, env):
    """The wiring in `serve`: the bridge's instance name owns the lease; standing by is not a problem."""
    db = env.store.db
    other = await db.write(lambda conn: Leases.take(conn, db.now_sql, LEASE_NAME, "another-instance", 60.0))
    assert other is not None
    platform, web = await transport.start()

    assert platform.poller is not None and platform.poller.standing_by
    assert await platform.health() == "ok: standby as @omibridge_bot (polling runs on another instance)"
    assert await web.components["telegram"]() == await platform.health()
    assert fake_api.calls_to("getUpdates") == []

    await db.write(lambda conn: Leases.release(conn, other))  # the other instance stops
    await fake_api.wait_for("getUpdates", timeout=STANDBY_SECONDS + 3)
    assert await platform.health() == "ok: polling as @omibridge_bot"
    held = await env.store.leases.holder(LEASE_NAME)
    assert held is not None and held.owner == env.bridge.worker.instance

    await transport.stop(platform)
    assert await env.store.leases.holder(LEASE_NAME) is None  # given back on stop: the next instance need not wait
