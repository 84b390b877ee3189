"""A small chaos run (bench/chaos.py is the big one): faults on every Omi route, crashes and restarts while
users keep sending; at the end Omi holds every accepted burst and memory exactly once."""

from __future__ import annotations

import random
from collections import Counter
from datetime import UTC, datetime, timedelta

from bot.delivery import SECOND_LOOK_SECONDS
from bot.sandbox import conversation_text
from tests.harness import ChatUser, Env, start_bridge

#: Every test that uses `env` runs against both Omi flavors and on both database engines (tests/conftest.py).
BOTH_FLAVORS = True
BOTH_ENGINES = True

USERS = 12
ROUNDS = 3


#: The bridge's Omi timeouts in this test (real seconds): short, so the slow-answer fault below costs little real
#: time; a timed-out create is an unknown outcome all the same.
TIMEOUT = 0.5


async def restart(env: Env, users: list[ChatUser]) -> None:
    """Stop without grace (requests in flight are cut off, open bursts forgotten) and start again."""
    omi = env.bridge.omi
    await env.bridge.stop(grace=0)
    env.bridge = await start_bridge(env.store, omi, env.clock, env.adapter, window=env.window)
    for user in users:
        user.bridge = env.bridge


FAULTS = [
    {"status": 429, "retry_after": 3},
    {"kind": "byok_rate_limit"},  # the user's own AI key: no Retry-After
    {"kind": "load_balancer_429", "retry_after": 2},  # holds every uid of the key
    {"status": 500},
    {"status": 503},
    {"kind": "provider_unavailable"},
    {"drop": True},
    {"after_write": True},
    {"drop": True, "after_write": True},
    {"delay": 2 * TIMEOUT},  # past the client's timeout: an unknown outcome
]
MEMORY_FAULTS = [{"kind": "memory_readback_unavailable"}, {"kind": "memory_writes_paused"}]


def inject_faults(env: Env, rng: random.Random) -> None:
    for route, extra in (("create_conversation", []), ("create_memories", MEMORY_FAULTS)):
        for fault in rng.sample(FAULTS + extra, k=5):
            env.sandbox.add_fault(route, times=rng.randint(1, 3), **fault)
    env.sandbox.add_fault("read_conversations", status=503, times=1)
    env.sandbox.add_fault("read_memories", status=503, times=1)


async def test_nothing_lost_nothing_duplicated_through_faults_and_restarts(env):
    rng = random.Random(7)
    fast = env.client(create_timeout=TIMEOUT, read_timeout=5.0)  # looks keep a comfortable read timeout
    await env.restart_with(fast)
    for n in range(USERS):
        env.sandbox.enable(env.app_id, f"uid-{n}")
    users = [await env.linked_user(uid=f"uid-{n}", user_id=str(3000 + n), name=f"User {n}") for n in range(USERS)]
    expected_bursts: Counter[tuple[str, str]] = Counter()
    expected_memories: dict[str, Counter[str]] = {f"uid-{n}": Counter() for n in range(USERS)}
    start = datetime(2026, 2, 1, tzinfo=UTC)

    for round_number in range(ROUNDS):
        inject_faults(env, rng)
        for n, user in enumerate(users):
            size = rng.randint(1, 5)
            lines = [f"user {n} round {round_number} line {k} about the garden plans" for k in range(size)]
            moment = start + timedelta(days=round_number, minutes=n)
            for line in lines:
                await user.say(line, sent_at=moment)
            expected_bursts[(f"uid-{n}", "\n\n".join(lines))] += 1
            fact = f"user {n} fact number {round_number} is worth keeping"
            await user.command("remember", fact)
            expected_memories[f"uid-{n}"][fact] += 1
        await env.close_bursts()
        await env.run_clock(rng.uniform(0.5, 5))  # some deliveries happen, some are in flight or waiting
        await restart(env, users)

    await env.run_clock(3 * SECOND_LOOK_SECONDS)
    assert await env.store.outbox.depth() == 0

    delivered: Counter[tuple[str, str]] = Counter()
    for n in range(USERS):
        for conversation in env.sandbox.conversations(f"uid-{n}"):
            delivered[(f"uid-{n}", conversation_text(conversation))] += 1
    assert delivered == expected_bursts  # each accepted burst exactly once: none lost, none twice
    for uid, facts in expected_memories.items():
        assert Counter(m["content"] for m in env.sandbox.memories(uid)) == facts  # each once: a multiset
    failed = await env.store.db.fetchall("SELECT id, last_error FROM outbox WHERE state = 'failed'")
    assert failed == []
    await env.bridge.stop(grace=0)
    await fast.aclose()
