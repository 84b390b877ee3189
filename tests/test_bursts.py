"""Bursts end to end: messages in, one Omi conversation out, on a manual clock."""

from __future__ import annotations

from datetime import UTC, datetime

from bot.bursts import MAX_AGE_SECONDS, MAX_MESSAGES, Burst, BurstCollector

T0 = datetime(2026, 3, 10, 8, 0, tzinfo=UTC)


def minutes(n: int) -> datetime:
    return T0.replace(minute=n)


async def test_three_forwards_out_of_order_become_one_conversation(env):
    user = await env.linked_user()
    await user.forward("third", "Carol King", minutes(3), message_id=13)
    await user.forward("first", "Alice Smith", minutes(1), message_id=11)
    await user.forward("second", "Bob Jones", minutes(2), message_id=12)
    assert env.sandbox.conversations(env.uid) == []  # the window is still open
    await env.close_bursts()

    reply = await user.reply()
    assert reply.reaction == "👍"
    assert "3 messages from Alice Smith, Bob Jones, Carol King" in reply.text
    [conversation] = env.sandbox.conversations(env.uid)
    sent = conversation["external_data"]
    assert sent["text"] == "Alice Smith: first\n\nBob Jones: second\n\nCarol King: third"
    assert sent["text_source"] == "message"
    assert sent["text_source_spec"] == "telegram"
    assert conversation["started_at"].startswith("2026-03-10T08:01:00")
    assert conversation["finished_at"].startswith("2026-03-10T08:03:00")


async def test_comment_sent_before_forwards_goes_last_as_note(env):
    user = await env.linked_user()
    await user.say("worth keeping", message_id=20)
    await user.forward("we ship friday", "Alice Smith", minutes(5), message_id=21)
    await env.close_bursts()
    await user.reply()
    [conversation] = env.sandbox.conversations(env.uid)
    assert conversation["external_data"]["text"] == "Alice Smith: we ship friday\n\nNote: worth keeping"


async def test_plain_lines_join_without_prefix_as_other_text(env):
    user = await env.linked_user()
    for line in ("we met at the cafe", "she recommended a book on gardening", "follow up next week"):
        await user.say(line)
    await env.close_bursts()
    await user.reply()
    [conversation] = env.sandbox.conversations(env.uid)
    assert conversation["external_data"]["text_source"] == "other_text"
    assert conversation["external_data"]["text"] == (
        "we met at the cafe\n\nshe recommended a book on gardening\n\nfollow up next week"
    )


async def test_quiet_window_separates_bursts(env):
    user = await env.linked_user()
    await user.say("first burst message with some words")
    env.clock.advance(1.5)  # under the window: same burst
    await user.say("still the first burst here")
    env.clock.advance(2.1)  # the window passes: the burst closes on its own
    await user.reply()
    await user.say("a second burst starts now")
    await env.close_bursts()
    await user.reply()
    texts = sorted(c["external_data"]["text"] for c in env.sandbox.conversations(env.uid))
    assert texts == [
        "a second burst starts now",
        "first burst message with some words\n\nstill the first burst here",
    ]


async def test_edit_inside_the_window_replaces_text_and_later_edits_are_ignored(env):
    user = await env.linked_user()
    await user.say("meet at 5pm at the station", message_id=31)
    await user.push(user.message("meet at 6pm at the station", message_id=31, edited=True))
    await env.close_bursts()
    await user.reply()
    await user.push(user.message("meet at 7pm at the station", message_id=31, edited=True))
    await env.close_bursts()
    [conversation] = env.sandbox.conversations(env.uid)
    assert conversation["external_data"]["text"] == "meet at 6pm at the station"
    assert user.no_reply_pending()
    assert await env.store.inbox.pending_count() == 0


async def test_burst_closes_at_the_message_cap(env):
    user = await env.linked_user()
    for n in range(MAX_MESSAGES):
        await user.say(f"message number {n} of the long burst")
    reply = await user.reply()  # closed by the cap, no clock needed
    assert f"{MAX_MESSAGES} messages" in reply.text
    await user.say("the next burst")
    await env.close_bursts()
    await user.reply()
    assert len(env.sandbox.conversations(env.uid)) == 2


async def test_burst_closes_after_five_minutes_even_when_messages_keep_coming(env):
    # With a 10 s window, 5 s gaps never close the burst, and 70 messages stay under the 100 cap.
    closed: list[Burst] = []
    collector = BurstCollector(env.clock, 10.0, _collect(closed))
    user = env.user()
    for n in range(70):
        await collector.add(user.message(f"message {n}"), n)
        env.clock.advance(5.0)
    await collector.close_all()
    assert len(closed) == 2
    first, second = closed
    assert first.last_arrival - first.first_arrival <= MAX_AGE_SECONDS
    assert len(first.messages) + len(second.messages) == 70
    assert len(first.messages) > 50


def _collect(closed: list[Burst]):
    async def on_close(burst: Burst) -> None:
        closed.append(burst)

    return on_close


async def test_only_a_location_becomes_a_location_conversation(env):
    user = await env.linked_user()
    await user.location(52.52, 13.405)
    await env.close_bursts()
    await user.reply()
    [conversation] = env.sandbox.conversations(env.uid)
    assert conversation["external_data"]["text"] == "Location: 52.52, 13.405"
    assert conversation["geolocation"]["latitude"] == 52.52


async def test_unlinked_user_is_told_how_to_link_and_nothing_is_kept(env):
    stranger = env.user(user_id="666", name="Mallory")
    await stranger.say("hello there bot")
    text = await stranger.reply_text()
    assert "not linked" in text
    await env.close_bursts()
    assert await env.store.inbox.pending_count() == 0
    assert await env.store.outbox.depth() == 0


async def test_redelivered_message_is_processed_once(env):
    user = await env.linked_user()
    message = user.message("the same update twice please", message_id=77)
    assert await user.push(message) is True
    assert await user.push(message) is False
    await env.close_bursts()
    await user.reply()
    [conversation] = env.sandbox.conversations(env.uid)
    assert conversation["external_data"]["text"] == "the same update twice please"
