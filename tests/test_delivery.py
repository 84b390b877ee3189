"""Durable delivery against the sandbox with injected faults: nothing lost, nothing duplicated."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import httpx

from bot.delivery import FIRST_LOOK_SECONDS, MAX_ATTEMPTS, SECOND_LOOK_SECONDS
from bot.omi.client import OmiClient
from bot.store import ItemState
from tests.harness import ChatUser, Env, start_bridge

#: Every test that uses `env` runs against both Omi flavors and on both database engines (tests/conftest.py).
BOTH_FLAVORS = True
BOTH_ENGINES = True

WORDS = "we agreed to ship the new release on friday morning"
#: A look reads two windows (around started_at, and since the first attempt), each one empty page here.
LOOK_READS = 2


async def save_burst(env: Env, user: ChatUser, text: str = WORDS) -> None:
    await user.say(text)
    await env.close_bursts()


def conversation_texts(env: Env) -> list[str]:
    return env.texts()


def attempts(env: Env, route: str = "create_conversation") -> int:
    return sum(1 for r in env.sandbox.requests() if r["route"] == route)


async def test_rate_limit_holds_until_retry_after_then_delivers_once(env):
    env.sandbox.add_fault("create_conversation", status=429, retry_after=30)
    user = await env.linked_user()
    await save_burst(env, user)
    waiting = await user.reply_text()
    assert "rate limit" in waiting and "next try at" in waiting
    assert conversation_texts(env) == []
    await env.run_clock(29)
    assert conversation_texts(env) == []  # held for the whole Retry-After
    await env.run_clock(2)
    assert (await user.reply()).reaction == "👍"
    assert conversation_texts(env) == [WORDS]


async def test_rate_limit_hold_covers_the_uid_and_kind_not_other_users(env):
    env.sandbox.add_fault("create_conversation", status=429, retry_after=60)
    ada = await env.linked_user()
    await save_burst(env, ada, "first message from ada about the plan")
    assert "rate limit" in await ada.reply_text()
    await save_burst(env, ada, "second message from ada about the plan")
    env.sandbox.enable(env.app_id, "uid-bob")
    bob = await env.linked_user(user_id="2002", name="Bob", uid="uid-bob")
    await save_burst(env, bob, "bob is not held by ada's rate limit at all")
    await env.settle()
    assert env.texts("uid-bob") == ["bob is not held by ada's rate limit at all"]
    assert conversation_texts(env) == []  # ada's newer item waits behind the hold too
    await env.run_clock(61)
    assert sorted(conversation_texts(env)) == [
        "first message from ada about the plan",
        "second message from ada about the plan",
    ]


async def test_server_errors_back_off_and_the_user_hears_once(env):
    env.sandbox.add_fault("create_conversation", status=500, times=1)
    env.sandbox.add_fault("create_conversation", status=503, times=2)
    user = await env.linked_user()
    await save_burst(env, user)
    first = await user.reply_text()
    assert "unavailable" in first
    await env.run_clock(60)
    reply = await user.reply()
    assert reply.reaction == "👍"  # the next thing said is the confirmation: one waiting message only
    assert conversation_texts(env) == [WORDS]
    assert attempts(env) == 4


async def test_504_after_the_write_is_found_by_looking_and_not_sent_again(env):
    env.sandbox.add_fault("create_conversation", after_write=True)
    user = await env.linked_user()
    await save_burst(env, user)
    await env.settle()
    assert len(conversation_texts(env)) == 1
    item = (await env.store.outbox.open_for_account(user.account))[0]
    assert item.state is ItemState.UNKNOWN
    await env.run_clock(FIRST_LOOK_SECONDS - 1)
    assert attempts(env, "read_conversations") == 0  # no look before 2 minutes
    await env.run_clock(2)
    assert (await user.reply()).reaction == "👍"
    assert conversation_texts(env) == [WORDS]
    assert attempts(env) == 1


async def test_dropped_connection_before_the_write_is_resent_after_two_looks(env):
    env.sandbox.add_fault("create_conversation", drop=True)
    user = await env.linked_user()
    await save_burst(env, user)
    await env.run_clock(FIRST_LOOK_SECONDS + 1)
    assert attempts(env, "read_conversations") == LOOK_READS  # one look
    assert attempts(env) == 1
    await env.run_clock(SECOND_LOOK_SECONDS - FIRST_LOOK_SECONDS)
    assert attempts(env, "read_conversations") == 2 * LOOK_READS
    assert (await user.reply()).reaction == "👍"
    assert conversation_texts(env) == [WORDS]
    assert attempts(env) == 2


async def test_client_timeout_is_an_unknown_outcome_and_never_duplicates(env):
    env.sandbox.add_fault("create_conversation", delay=4.0, after_write=False)  # the client gives up at 3 s
    user = await env.linked_user()
    await save_burst(env, user)
    await env.settle()
    item = (await env.store.outbox.open_for_account(user.account))[0]
    assert item.state is ItemState.UNKNOWN
    await env.run_clock(SECOND_LOOK_SECONDS + 1)
    await user.reply()
    assert conversation_texts(env) == [WORDS]


async def test_memories_from_several_commands_travel_in_one_post(env):
    user = await env.linked_user()
    env.sandbox.add_fault("create_memories", status=429, retry_after=10)  # three commands queue behind the hold
    await user.command("remember", "#food I am vegetarian")
    assert "rate limit" in await user.reply_text()
    await user.command("remember", "I live in Berlin\nI have a cat named Miso")
    await user.command("remember", "#work standup is at 9:30")
    await env.run_clock(11)
    confirmations = [await user.reply() for _ in range(3)]
    assert all(reply.reaction == "👍" for reply in confirmations)
    assert attempts(env, "create_memories") == 2  # the failed one, then one combined POST
    contents = {m["content"]: m["tags"] for m in env.sandbox.memories(env.uid)}
    assert contents == {
        "I am vegetarian": ["food"],
        "I live in Berlin": [],
        "I have a cat named Miso": [],
        "standup is at 9:30": ["work"],
    }


async def test_not_enabled_blocks_then_the_next_message_retries(env):
    env.sandbox.disable(env.app_id, env.uid)
    user = await env.linked_user()
    await save_burst(env, user)
    text = await user.reply_text()
    assert "not enabled" in text and "enable omi-bridge" in text
    [item] = await env.store.outbox.open_for_account(user.account)
    assert item.state is ItemState.BLOCKED
    env.sandbox.enable(env.app_id, env.uid)
    await user.command("status")  # coming back unblocks
    status = await user.reply_text()
    assert "not enabled" in status
    await env.settle()
    assert (await user.reply()).reaction == "👍"
    assert conversation_texts(env) == [WORDS]


async def test_failed_item_does_not_block_the_next_one(env):
    env.sandbox.add_fault("create_conversation", status=422, detail="Either text or something is wrong")
    user = await env.linked_user()
    await save_burst(env, user, "this one is refused by omi for good")
    failed = await user.reply_text()
    assert failed.startswith("Could not save") and "rejected" in failed
    await save_burst(env, user, "this one goes through just fine")
    assert (await user.reply()).reaction == "👍"
    assert conversation_texts(env) == ["this one goes through just fine"]


async def test_twenty_failures_fail_for_good(env):
    env.sandbox.add_fault("create_conversation", status=500, times=None)
    user = await env.linked_user()
    await save_burst(env, user)
    assert "unavailable" in await user.reply_text()
    await env.run_clock(MAX_ATTEMPTS * 600)
    final = await user.reply_text()
    assert final.startswith("Could not save") and f"failed {MAX_ATTEMPTS} times" in final
    assert attempts(env) == MAX_ATTEMPTS


async def test_items_of_one_user_are_delivered_oldest_first(env):
    user = await env.linked_user()
    for day in (1, 2, 3):
        await user.say(f"notes from day {day} of the trip", sent_at=datetime(2026, 3, day, 9, tzinfo=UTC))
        await env.close_bursts()
    summaries = [(await user.reply()).text for _ in range(3)]
    assert [s.rsplit("·", 1)[1].strip(" .") for s in summaries] == ["1 Mar", "2 Mar", "3 Mar"]


async def test_an_item_waiting_on_its_own_retry_does_not_hold_back_newer_ones(env):
    env.sandbox.add_fault("create_conversation", drop=True)  # unknown outcome: a look is due in 2 minutes
    user = await env.linked_user()
    await save_burst(env, user, "the older message meets a dropped connection")
    await env.settle()
    await save_burst(env, user, "the newer message goes straight through")
    assert (await user.reply()).reaction == "👍"
    assert conversation_texts(env) == ["the newer message goes straight through"]
    await env.run_clock(SECOND_LOOK_SECONDS + 1)
    assert (await user.reply()).reaction == "👍"
    assert len(conversation_texts(env)) == 2


async def test_restart_resumes_pending_items(env, tmp_path):
    env.sandbox.add_fault("create_conversation", status=503, times=None)
    user = await env.linked_user()
    await save_burst(env, user)
    await user.reply()
    await env.bridge.stop()
    env.sandbox.clear_faults()
    env.bridge = await start_bridge(env.store, env.omi, env.clock, env.adapter, window=env.window)
    user.bridge = env.bridge
    await env.run_clock(600)
    assert (await user.reply()).reaction == "👍"
    assert conversation_texts(env) == [WORDS]


class _SeesRequests(httpx.AsyncHTTPTransport):
    """Signals when a create request has gone out, so a test can "crash" while it is in flight."""

    def __init__(self) -> None:
        super().__init__()
        self.create_sent = asyncio.Event()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.method == "POST" and request.url.path.endswith("/user/conversations"):
            self.create_sent.set()
        return await super().handle_async_request(request)


async def test_crash_mid_request_looks_before_resending(env):
    await env.bridge.stop()
    transport = _SeesRequests()
    crashing_omi = OmiClient(env.omi.base_url, env.app_id, env.sandbox.mint_key(env.app_id), transport=transport)
    env.bridge = await start_bridge(env.store, crashing_omi, env.clock, env.adapter, window=env.window)
    user = await env.linked_user()
    user.bridge = env.bridge
    env.sandbox.add_fault("create_conversation", delay=1.0)  # still in flight when we "crash"
    await save_burst(env, user)
    await asyncio.wait_for(transport.create_sent.wait(), 5)
    [item] = await env.store.outbox.open_for_account(user.account)
    assert item.state is ItemState.SENDING
    await env.bridge.stop(grace=0)  # cut off mid-request: did Omi write it or not?
    await crashing_omi.aclose()

    env.bridge = await start_bridge(env.store, env.omi, env.clock, env.adapter, window=env.window)
    user.bridge = env.bridge
    assert (await env.store.outbox.get(item.id)).state is ItemState.UNKNOWN
    await env.run_clock(SECOND_LOOK_SECONDS + 1)
    assert (await user.reply()).reaction == "👍"
    assert len(conversation_texts(env)) == 1


async def test_original_times_are_sent_in_utc(env):
    user = await env.linked_user()
    await user.forward("a quote worth keeping forever", "Alice Smith", datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC))
    await env.close_bursts()
    await user.reply()
    [conversation] = env.sandbox.conversations(env.uid)
    assert conversation["started_at"] == "2026-01-02T03:04:05Z"
    if env.sandbox.flavor == "fastapi":  # Omi's server dates the conversation by started_at; API core by import
        assert conversation["created_at"] == "2026-01-02T03:04:05Z"
