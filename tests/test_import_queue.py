"""An import through the durable outbox (SPEC §10): staged then flipped whole, the ledger, live messages first, the
7-day limit from the first attempt, and nothing left behind by an import that fails half-way."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from bot.delivery import MAX_AGE_SECONDS
from bot.events import Address, Platform
from bot.importing.model import ImportedMessage, ImportRefused
from bot.importing.queueing import ImportTarget, queue_import
from bot.store import ItemState
from bot.store.imports import ImportState
from tests.transports import Recording, creates_conversations

BOTH_FLAVORS = True
BOTH_ENGINES = True

START = datetime(2023, 6, 1, 9, 0, tzinfo=UTC)


def history(count: int, gap_minutes: float = 60, chat: str = "777") -> list[ImportedMessage]:
    return [
        ImportedMessage(
            "telegram",
            chat,
            str(n),
            "Alice" if n % 2 else "Bob",
            f"old message {n} about the boat",
            START + timedelta(minutes=n * gap_minutes),
        )
        for n in range(count)
    ]


def target(env, user) -> ImportTarget:
    return ImportTarget(user.account, env.uid, Address(Platform.TELEGRAM, user.user_id, user.user_id))


async def run_import(env, user, messages, **options):
    queued = await queue_import(
        env.store.imports,
        env.clock,
        target(env, user),
        source="telegram",
        chat="777",
        chat_name="Family",
        messages=messages,
        **options,
    )
    env.bridge.worker.wake()
    return queued


async def test_an_import_is_delivered_as_conversations_and_a_second_import_queues_nothing_twice(env):
    user = await env.linked_user()
    queued = await run_import(env, user, history(4))
    assert (queued.conversations, queued.messages, queued.already) == (4, 4, 0)
    await env.run_clock(60)
    texts = env.texts()
    assert sorted(texts) == sorted(f"{'Alice' if n % 2 else 'Bob'}: old message {n} about the boat" for n in range(4))
    [conversation, *_] = env.sandbox.conversations(env.uid)
    assert conversation.get("text_source_spec", "telegram_import") == "telegram_import"
    progress = await env.store.imports.progress(queued.import_id)
    assert (progress.total, progress.delivered, progress.finished) == (4, 4, True)
    assert user.no_reply_pending()  # import items get no per-item confirmation

    again = await run_import(env, user, history(6), gap_minutes=24 * 60)  # another gap, two new messages
    assert (again.conversations, again.messages, again.already) == (1, 2, 4)
    await env.run_clock(60)
    assert len(env.texts()) == 5
    assert "Bob: old message 4 about the boat\n\nAlice: old message 5 about the boat" in env.texts()


async def test_an_import_that_fails_half_way_leaves_nothing_queued(env):
    user = await env.linked_user()

    def truncated():
        yield from history(1200, gap_minutes=120)  # more than two staging batches
        raise ImportRefused("result.json ends in the middle (truncated?)")

    with pytest.raises(ImportRefused):
        await run_import(env, user, truncated())
    assert await env.store.outbox.depth() == 0
    assert await env.store.db.fetchall("SELECT id FROM outbox") == []
    assert await env.store.imports.imported_ids(env.uid, "telegram", "777") == set()
    [record] = await env.store.imports.listed()
    assert record.state is ImportState.REFUSED
    # The same import, whole this time, is not taken for a repeat of the refused one.
    assert (await run_import(env, user, history(3))).conversations == 3


async def test_nothing_left_after_the_filters_keeps_no_record(env):
    user = await env.linked_user()
    queued = await run_import(env, user, history(3), since=(START + timedelta(days=30)).date())
    assert queued.import_id is None and queued.conversations == 0
    assert await env.store.imports.listed() == []


async def test_live_messages_go_before_the_uids_import_items(env):
    recording = Recording(env.clock.now)
    await env.restart_with(env.client(recording))
    user = await env.linked_user()
    await queue_import(
        env.store.imports,
        env.clock,
        target(env, user),
        source="telegram",
        chat="777",
        chat_name="Family",
        messages=history(3),
    )  # queued first (lower ids), not yet delivered
    await user.say("a live message typed now")
    await env.close_bursts()
    await env.run_clock(60)
    sent = [body["text"] for body in recording.bodies(creates_conversations)]
    assert sent[0] == "a live message typed now" and len(sent) == 4


async def test_an_import_item_counts_its_seven_days_from_the_first_attempt(env):
    user = await env.linked_user()
    await queue_import(
        env.store.imports,
        env.clock,
        target(env, user),
        source="telegram",
        chat="777",
        chat_name="Family",
        messages=history(1),
    )
    env.clock.advance(MAX_AGE_SECONDS + 3600)  # waited 8 days behind live traffic and rate limits
    env.bridge.worker.wake()
    await env.run_clock(60)
    assert len(env.texts()) == 1  # still delivered: its first attempt was just now
    [item] = await env.store.db.fetchall("SELECT state FROM outbox")
    assert item["state"] == ItemState.DONE.value


async def test_once_a_429_shows_the_limit_imports_leave_three_sends_a_window_to_live_messages(env):
    user = await env.linked_user()
    env.sandbox.set_limits(conversations_per_hour=5)
    await run_import(env, user, history(12))  # 12 conversations: more than two windows' worth
    await env.run_clock(60)
    assert len(env.texts()) == 5  # the first window: the limit was not known yet, all five went
    await env.run_clock(3600)  # the next window: at most 5 - 3 = 2 import items
    assert len(env.texts()) == 7
    await user.say("typed while the import waits")
    await env.close_bursts()
    await env.run_clock(60)
    assert "typed while the import waits" in env.texts()  # room was left for it
    assert len(env.texts()) == 8
    await env.run_clock(3600)
    assert len(env.texts()) == 10
