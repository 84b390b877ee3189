"""The bridge against the real Omi's behaviours (behaviour notes §9, SPEC §5/§7): the three kinds of 429, memory
writes whose outcome is unknown, extraction that is never repeated, at most 100 memories per POST, pacing."""

from __future__ import annotations

import asyncio
import itertools
from collections import Counter

from bot.delivery import FIRST_LOOK_SECONDS, MAX_MEMORIES_PER_POST
from bot.omi import words
from bot.omi.pacing import RequestPacer
from bot.sandbox import ALL_CAPABILITIES
from tests.harness import ChatUser, Env
from tests.transports import HeldResponses, Recording, creates_memories

#: Every test that uses `env` runs against both Omi flavors and on both database engines (tests/conftest.py).
BOTH_FLAVORS = True
BOTH_ENGINES = True

WORDS = "we agreed to ship the new release on friday morning"


def requests(env: Env, route: str) -> int:
    return sum(1 for r in env.sandbox.requests() if r["route"] == route)


def texts(env: Env, uid: str | None = None) -> list[str]:
    return env.texts(uid)


def contents(env: Env, uid: str | None = None) -> Counter[str]:
    return Counter(m["content"] for m in env.sandbox.memories(uid or env.uid))


async def save(env: Env, user: ChatUser, text: str = WORDS) -> None:
    await user.say(text)
    await env.close_bursts()


# --- the three kinds of 429 ---------------------------------------------------------------------------------


async def test_retry_after_zero_means_try_again_after_a_second(env):
    env.sandbox.add_fault("create_conversation", status=429, retry_after=0)
    user = await env.linked_user()
    await save(env, user)
    assert "rate limit" in await user.reply_text()
    await env.run_clock(0.9)
    assert requests(env, "create_conversation") == 1  # not at once
    await env.run_clock(0.2)
    assert (await user.reply()).reaction == "👍"
    assert texts(env) == [WORDS]


async def test_a_byok_429_backs_that_uid_off_and_says_whose_key_it_is(env):
    byok = {"code": "byok_rate_limit", "message": "Your OpenAI key hit its rate limit"}
    env.sandbox.add_fault("create_conversation", status=429, detail=byok)  # no Retry-After
    ada = await env.linked_user()
    await save(env, ada)  # t = 0: held 30 s
    told = await ada.reply_text()
    assert "your own AI provider key" in told and "rate-limited" in told
    await ada.command("remember", "the uid is held, memories too")
    env.sandbox.enable(env.app_id, "uid-bob")
    bob = await env.linked_user(user_id="2002", name="Bob", uid="uid-bob")
    await save(env, bob, "bob's own key is fine")  # t = 2
    await env.settle()
    assert texts(env, "uid-bob") == ["bob's own key is fine"]  # another uid is not held
    assert contents(env) == Counter()  # ada's memories wait with her conversation

    env.sandbox.add_fault("create_conversation", status=429, detail=byok)
    await env.run_clock(26)  # t = 28
    assert requests(env, "create_conversation") == 2  # ada once, bob once
    await env.run_clock(3)  # t = 31: ada's second try, BYOK-limited again: held 60 s (doubling)
    assert requests(env, "create_conversation") == 3
    await env.run_clock(57)  # t = 88
    assert requests(env, "create_conversation") == 3 and texts(env) == []
    await env.run_clock(3)  # t = 91
    assert texts(env) == [WORDS]
    assert contents(env) == Counter({"the uid is held, memories too": 1})


async def test_a_429_without_omi_detail_holds_every_uid_of_the_key(env):
    # A load balancer's 429: no Omi JSON detail. Every uid behind the one key waits.
    env.sandbox.add_fault("create_conversation", status=429, detail={}, retry_after=20)
    ada = await env.linked_user()
    await save(env, ada)  # t = 0: the key is held 20 s
    assert "Omi is busy" in await ada.reply_text()
    env.sandbox.enable(env.app_id, "uid-bob")
    bob = await env.linked_user(user_id="2002", name="Bob", uid="uid-bob")
    await save(env, bob, "bob waits behind the same key")  # t = 2
    await env.run_clock(17)  # t = 19
    assert texts(env, "uid-bob") == [] and texts(env) == []
    await env.run_clock(2)
    assert texts(env, "uid-bob") == ["bob waits behind the same key"] and texts(env) == [WORDS]


async def test_omi_quota_429_holds_only_that_uid_and_kind(env):
    env.sandbox.add_fault("create_conversation", status=429, retry_after=60)
    ada = await env.linked_user()
    await save(env, ada)
    assert "rate limit" in await ada.reply_text()
    await ada.command("remember", "memories are another kind")
    await env.settle()
    assert contents(env) == Counter({"memories are another kind": 1})
    assert texts(env) == []


# --- memories and extraction with an unknown outcome ----------------------------------------------------------


async def test_explicit_memories_with_an_unknown_outcome_are_looked_for_not_sent_twice(env):
    env.sandbox.add_fault("create_memories", status=504, after_write=True)
    user = await env.linked_user()
    await user.command("remember", "I am vegetarian\nmy sister lives in Porto")
    await env.settle()
    assert requests(env, "read_memories") == 0
    await env.run_clock(FIRST_LOOK_SECONDS + 1)
    assert requests(env, "read_memories") == 1
    assert (await user.reply()).reaction == "👍"
    assert requests(env, "create_memories") == 1
    assert contents(env) == Counter({"I am vegetarian": 1, "my sister lives in Porto": 1})


async def test_only_the_memories_omi_is_missing_are_sent_again(env):
    recording = Recording(env.clock.now)
    await env.restart_with(env.client(recording))
    env.sandbox.add_fault("create_memories", drop=True, after_write=False)  # lost before Omi stored it
    user = await env.linked_user()
    await user.command("remember", "first fact\nsecond fact")
    await env.settle()
    env.sandbox.add_manual_memory(env.uid, "first fact")  # Omi holds this one anyway
    await env.run_clock(FIRST_LOOK_SECONDS + 1)
    assert (await user.reply()).reaction == "👍"
    sent = [[m["content"] for m in body["memories"]] for body in recording.bodies(creates_memories)]
    assert sent == [["first fact", "second fact"], ["second fact"]]
    assert contents(env) == Counter({"first fact": 1, "second fact": 1})


async def test_without_read_memories_unknown_memories_fail_with_a_clear_reason(env):
    env.sandbox.set_capabilities(env.app_id, [c for c in ALL_CAPABILITIES if c != "read_memories"])
    env.sandbox.add_fault("create_memories", status=504)
    user = await env.linked_user()
    await user.command("remember", "a fact nobody can check")
    await env.run_clock(FIRST_LOOK_SECONDS + 1)
    told = await user.reply_text()
    assert told.startswith("Could not save") and "cannot read memories to check" in told
    assert requests(env, "create_memories") == 1


async def test_canonical_readback_503_is_an_unknown_outcome_and_never_duplicates(env):
    env.sandbox.add_fault(
        "create_memories", status=503, detail="Canonical memory write readback unavailable", after_write=True
    )
    user = await env.linked_user()
    await user.command("remember", "stored before the 503")
    await env.run_clock(FIRST_LOOK_SECONDS + 1)
    assert (await user.reply()).reaction == "👍"
    assert requests(env, "create_memories") == 1
    assert contents(env) == Counter({"stored before the 503": 1})


async def test_memory_503s_before_the_write_back_off_and_deliver(env):
    env.sandbox.add_fault("create_memories", status=503, detail="Memory writes are globally paused")
    env.sandbox.add_fault("create_memories", status=503, detail={"code": "provider_unavailable", "message": "down"})
    user = await env.linked_user()
    await user.command("remember", "paused, then stored")
    assert "unavailable" in await user.reply_text()
    await env.run_clock(10)
    assert (await user.reply()).reaction == "👍"
    assert requests(env, "create_memories") == 3
    assert contents(env) == Counter({"paused, then stored": 1})


async def test_an_extraction_with_an_unknown_outcome_is_never_sent_again(env):
    env.sandbox.add_fault("create_memories", status=504, after_write=True)
    user = await env.linked_user()
    await user.command("extract", "I moved to Berlin in March. My sister is a nurse in Hamburg.")
    told = await user.reply_text()
    assert told.startswith("Could not save") and "may not be saved" in told
    await env.run_clock(3600)
    assert requests(env, "create_memories") == 1
    assert all(count == 1 for count in contents(env).values()) and contents(env)


async def test_a_crash_with_an_extraction_in_flight_does_not_repeat_it(env):
    held = HeldResponses(creates_memories)
    held_omi = env.client(held)
    await env.restart_with(held_omi)
    user = await env.linked_user()
    await user.command("extract", "We adopted a grey cat called Pixel last week.")
    await asyncio.wait_for(held.arrived.wait(), 5)
    await env.restart_with(env.omi)  # stop(grace=0) would do the same: the request is cut off
    user.bridge = env.bridge
    told = await user.reply_text()
    assert "may not be saved" in told
    await env.run_clock(3600)
    assert requests(env, "create_memories") == 1
    held.release()
    await held_omi.aclose()


# --- limits --------------------------------------------------------------------------------------------------


async def test_memories_go_in_posts_of_at_most_100(env):
    recording = Recording(env.clock.now)
    await env.restart_with(env.client(recording))
    user = await env.linked_user()
    await user.command("remember", "\n".join(f"fact number {n}" for n in range(150)))
    await user.command("remember", "\n".join(f"more fact {n}" for n in range(60)))
    await env.settle()
    sizes = [len(body["memories"]) for body in recording.bodies(creates_memories)]
    assert max(sizes) <= MAX_MEMORIES_PER_POST and sum(sizes) == 210
    assert sizes[0] == MAX_MEMORIES_PER_POST
    assert sum(contents(env).values()) == 210 and set(contents(env).values()) == {1}


async def test_a_memory_over_omis_length_limit_gets_a_clear_answer(env):
    user = await env.linked_user()
    await user.command("remember", "short one\n" + "x" * 50_001)
    assert "Memory 2 is longer than Omi's 50,000 characters" in await user.reply_text()
    assert requests(env, "create_memories") == 0


async def test_max_requests_per_minute_paces_every_request_of_the_key(env):
    recording = Recording(env.clock.now)
    await env.restart_with(env.client(recording, pacer=RequestPacer(6, env.clock)))  # one every 10 s
    for n in range(3):
        env.sandbox.enable(env.app_id, f"uid-{n}")
        user = await env.linked_user(uid=f"uid-{n}", user_id=str(4000 + n), name=f"User {n}")
        await user.say(f"user {n} has something to say")
    await env.close_bursts()
    for sent in (1, 2, 3):  # each paced request waits for its slot on the clock
        if sent > 1:
            env.clock.set(await env.clock.next_sleeper(before=env.clock.now() + 60))
        await recording.until(lambda sent=sent: recording.posts() >= sent)
    await env.settle()
    moments = [at for method, path, _, at in recording.sent if method == "POST"]
    assert len(moments) == 3
    assert all(later - earlier >= 10 for earlier, later in itertools.pairwise(moments))


def test_the_words_for_failures_never_carry_exception_text():
    from bot.omi.errors import OmiValidationError

    exc = OmiValidationError("text: secret user words echoed back", status=422, detail="secret user words")
    assert "secret" not in words.write_refused(exc)
    assert "secret" not in words.code_refused(exc)


def test_the_setting_gives_serve_a_pacer_and_unset_gives_none():
    from bot.runtime import pacer_for
    from bot.settings import load_settings

    assert pacer_for(load_settings(OMI_MAX_REQUESTS_PER_MINUTE="120")).per_minute == 120
    assert pacer_for(load_settings(OMI_MAX_REQUESTS_PER_MINUTE="")) is None
