"""Several instances on one PostgreSQL database, in process (SPEC §13): each `Bridge` has its own store
(connections), all share the database, the Omi sandbox and the chat. What a user sends may reach any instance;
the session's lease holder collects the burst, a stopped holder's sessions are taken over, and two instances
never both store what the same rows caused. (tests/test_multi_instance.py runs real `serve` processes.)"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import pytest

from bot.bridge import Bridge
from bot.clock import ManualClock
from bot.omi.client import OmiClient
from bot.sandbox import Sandbox
from bot.store import Store
from bot.store.inbox import session_lease
from tests.databases import Schema, require_postgres
from tests.harness import ChatAdapter, ChatUser, make_sandbox, start_bridge

WINDOW = 2.0
UID = "uid-ada"


@dataclass
class Cluster:
    sandbox: Sandbox
    app_id: str
    omi: OmiClient
    clock: ManualClock
    adapter: ChatAdapter
    url: str
    stores: list[Store]
    bridges: list[Bridge]

    async def add(self) -> Bridge:
        store = await Store.open(self.url, self.clock)
        bridge = await start_bridge(store, self.omi, self.clock, self.adapter, window=WINDOW)
        self.stores.append(store)
        self.bridges.append(bridge)
        return bridge

    def texts(self) -> list[str]:
        from bot.sandbox import conversation_text

        return [conversation_text(c) for c in self.sandbox.conversations(UID)]


@pytest.fixture
async def cluster() -> AsyncIterator[Cluster]:
    require_postgres()
    schema = Schema().create()
    clock = ManualClock()
    sandbox, base_url, app_id, api_key = await make_sandbox(
        clock=clock.now, conversations_per_hour=0, memories_per_hour=0
    )
    sandbox.enable(app_id, UID)
    omi = OmiClient(base_url, app_id, api_key, create_timeout=3.0, read_timeout=3.0)
    cluster = Cluster(sandbox, app_id, omi, clock, ChatAdapter(), schema.url, [], [])
    try:
        for _ in range(3):
            await cluster.add()
        yield cluster
    finally:
        for bridge in cluster.bridges:
            await bridge.stop(grace=1.0)
        for store in cluster.stores:
            await store.close()
        await omi.aclose()
        await sandbox.stop()
        schema.drop()


async def until(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    """Wait (at most `timeout`) for `predicate()`, re-checked every few ms: the instances work on their own."""
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.02)


async def linked(cluster: Cluster) -> ChatUser:
    user = ChatUser(cluster.bridges[0], cluster.adapter)
    await cluster.stores[0].links.link_verified(user.account, UID)
    return user


async def say_via(user: ChatUser, bridge: Bridge, text: str) -> None:
    user.bridge = bridge
    await user.say(text)


async def test_a_burst_spread_over_three_instances_is_one_conversation(cluster: Cluster) -> None:
    user = await linked(cluster)
    lines = [f"line {n} of the plan for the garden" for n in range(6)]
    for n, line in enumerate(lines):
        await say_via(user, cluster.bridges[n % 3], line)
    # Only the first instance took the session: the others stored their rows and left them to it.
    holders = {await store.leases.holder(session_lease(user.message().session_key, 0)) for store in cluster.stores}
    assert len(holders) == 1 and None not in holders
    cluster.clock.advance(WINDOW + 0.01)
    await until(lambda: len(cluster.texts()) >= 1)
    for bridge in cluster.bridges:
        await bridge.processor.wait_idle()
    assert cluster.texts() == ["\n\n".join(lines)]
    assert await cluster.stores[0].inbox.pending_count() == 0


async def test_a_stopped_holders_session_is_taken_over_and_closed(cluster: Cluster) -> None:
    user = await linked(cluster)
    first, second, third = cluster.bridges
    await say_via(user, first, "the first half of a thought")
    await say_via(user, second, "and the second half")
    await first.stop(grace=0)  # open burst forgotten, rows waiting, session lease given back
    # The others find the waiting rows, one of them takes the session and closes the burst on time.
    await until(lambda: any(b.bursts.open_count for b in (second, third)))
    cluster.clock.advance(WINDOW + 0.01)
    await until(lambda: len(cluster.texts()) >= 1)
    assert cluster.texts() == ["the first half of a thought\n\nand the second half"]


async def test_a_holder_whose_lease_lapsed_cannot_store_the_burst_again(cluster: Cluster) -> None:
    """The holder pauses past its lease; another instance takes the session over and stores the burst; the old
    holder's late close is undone (its rows are no longer waiting): one conversation, not two."""
    user = await linked(cluster)
    first, second, _ = cluster.bridges
    assert first.sessions is not None and second.sessions is not None
    await say_via(user, first, "a message the first instance holds")
    name = session_lease(user.message().session_key, 0)
    # The first instance's lease lapses (as if it stalled): the second's clock is far ahead of its lease.
    cluster.stores[1].db.clock_skew = 3600.0
    await second.sessions.look()
    holder = await cluster.stores[1].leases.holder(name)
    assert holder is not None and holder.owner == second.sessions.owner
    await until(lambda: second.bursts.open_count == 1)
    assert first.bursts.open_count == 1
    await second.bursts.close_all()  # the new holder stores it…
    await until(lambda: len(cluster.texts()) >= 1)
    await first.bursts.close_all()  # …and the old holder's late close changes nothing
    assert await second.worker.drain(5.0) and await first.worker.drain(5.0)
    assert cluster.texts() == ["a message the first instance holds"]
    assert await cluster.stores[0].outbox.depth() == 0


async def test_a_link_token_issued_on_one_instance_is_claimed_on_a_second_and_verified_on_a_third(
    cluster: Cluster,
) -> None:
    new_uid = "uid-grace"
    cluster.sandbox.enable(cluster.app_id, new_uid)
    first, second, third = cluster.bridges
    token = await first.linking.issue_token(new_uid)  # the setup page, served by the first
    user = ChatUser(second, cluster.adapter, user_id="5150", name="Grace Hopper")
    await user.command("start", token)  # claimed on the second
    assert "Almost linked" in await user.reply_text()
    assert "6-digit code" in await user.reply_text()  # sent through Omi
    [code] = re.findall(r"\b(\d{6})\b", cluster.sandbox.notifications(new_uid)[0]["message"])
    for bridge in cluster.bridges:
        await bridge.processor.wait_idle()
        assert bridge.sessions is not None
        await bridge.sessions.release_idle()  # nobody holds the session: the next request's instance handles it
    user.bridge = third
    await user.command("verify", code)  # verified on the third
    assert "linked" in (await user.reply_text()).lower()
    verified, _ = await cluster.stores[0].links.get(user.account)
    assert verified is not None and verified.uid == new_uid
    holder = await cluster.stores[2].leases.holder(session_lease(user.message().session_key, 0))
    assert holder is not None and holder.owner == third.worker.instance  # the third handled it
