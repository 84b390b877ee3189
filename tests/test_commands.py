"""Commands through the in-process chat: push a message, read what the bot says."""

from __future__ import annotations

from datetime import UTC, datetime

from bot.commands import REGISTRY
from bot.events import Contact
from bot.store import ItemState
from bot.store.claims import Claims


async def claim(env, user, user_id: str) -> None:
    """A claimed (unverified) link, as a setup-page token would make it."""
    now = env.clock.now()
    await env.store.db.write(lambda conn: Claims.put(conn, user.account, env.uid, user_id, now))


async def deliver(env) -> None:
    await env.close_bursts()
    await env.settle()


async def test_remember_then_memories_shows_it_with_its_tag(env):
    user = await env.linked_user()
    await user.command("remember", "#food I am vegetarian")
    assert (await user.reply()).reaction == "👍"
    await user.command("memories")
    text = await user.reply_text()
    assert "• I am vegetarian  #food" in text


async def test_three_pasted_lines_become_one_conversation_that_recent_shows(env):
    user = await env.linked_user()
    for line in ("Alice: the launch moves to May", "Bob: then we need new posters", "Alice: I will order them"):
        await user.say(line)
    await deliver(env)
    assert "3 messages" in (await user.reply()).text
    await user.command("recent")
    text = await user.reply_text()
    assert text.count("\n\n") == 0  # one conversation listed
    assert "UTC" in text and "**" in text


async def test_help_lists_every_command_and_start_is_help(env):
    user = await env.linked_user()
    await user.command("help")
    text = await user.reply_text()
    for spec in REGISTRY.listed():
        assert f"/{spec.name}" in text
    await user.command("start")
    assert await user.reply_text() == text


async def test_unknown_command_answers_with_help(env):
    user = await env.linked_user()
    await user.command("frobnicate")
    text = await user.reply_text()
    assert text.startswith("I don't know the command /frobnicate.")
    assert "/remember" in text


async def test_bad_arguments_get_the_usage_line(env):
    user = await env.linked_user()
    await user.command("recent", "lots")
    assert await user.reply_text() == "'lots' is not a number.\nUsage: /recent [N]"
    await user.command("remember", "   ")
    assert (await user.reply_text()).endswith("Usage: /remember TEXT")
    await user.command("search")
    assert (await user.reply_text()).endswith("Usage: /search QUERY")


async def test_recent_clamps_and_pages_with_omis_offset(env):
    user = await env.linked_user()
    for day in range(1, 4):
        await user.say(f"day {day}: a long walk by the river", sent_at=datetime(2026, 3, day, 9, tzinfo=UTC))
        await deliver(env)
        await user.reply()
    await user.command("recent", "2")
    first = await user.reply()
    assert "03 Mar 2026" in first.text and "02 Mar 2026" in first.text and "01 Mar" not in first.text
    [more] = first.buttons
    assert more.data == "recent 2 @2"
    await user.command(*more.data.split(" ", 1))
    second = await user.reply()
    assert "01 Mar 2026" in second.text and second.buttons == ()
    await user.command("recent", "500")  # clamped to 20: all three fit
    assert (await user.reply_text()).count("Mar 2026") == 3


async def test_search_finds_and_pages(env):
    user = await env.linked_user()
    for n in range(7):
        await user.say(f"garden plan number {n} with tomatoes", sent_at=datetime(2026, 3, n + 1, tzinfo=UTC))
        await deliver(env)
        await user.reply()
    await user.command("search", "tomatoes")
    first = await user.reply()
    assert "Page 1 of 2" in first.text
    [more] = first.buttons
    await user.command(*more.data.split(" ", 1))
    second = await user.reply()
    assert "Page 2 of 2" in second.text
    await user.command("search", "cucumbers")
    assert "Nothing found" in await user.reply_text()


async def test_extract_lets_omi_pick_memories_and_dedupes_on_source_id(env):
    user = await env.linked_user()
    await user.command("extract", "My sister Jane lives in Lisbon now. She works as an architect there.")
    assert (await user.reply()).reaction == "👍"
    contents = [m["content"] for m in env.sandbox.memories(env.uid)]
    assert any("Lisbon" in content for content in contents)
    [request] = [r for r in env.sandbox.requests() if r["route"] == "create_memories"]
    assert request["status"] == 200


async def test_save_as_a_reply_keeps_the_original_author(env):
    user = await env.linked_user(chat_id="-100500")
    original = user.message("the deploy window is thursday evening", chat_kind="group")
    original.sender_name = "Grace Hopper"
    await user.command("save", reply_to=original, chat_kind="group")
    assert "1 message from Grace Hopper" in (await user.reply()).text
    [conversation] = env.sandbox.conversations(env.uid)
    assert conversation["external_data"]["text"] == "Grace Hopper: the deploy window is thursday evening"
    await user.command("save", chat_kind="group")
    reply = await user.reply()
    assert "Reply to the message" in reply.text


async def test_group_reads_are_answered_in_private(env):
    user = await env.linked_user(chat_id="-100600")
    await user.command("memories", chat_kind="group")
    reply = await user.reply()
    assert reply.address.private and reply.address.chat_id == ""


async def test_contact_becomes_a_tagged_memory(env):
    user = await env.linked_user()
    await user.push(user.message("", contact=Contact("Marie Curie", "+33 1 23 45 67 89")))
    assert (await user.reply()).reaction == "👍"
    [memory] = env.sandbox.memories(env.uid)
    assert memory["content"] == "Contact: Marie Curie, +33 1 23 45 67 89"
    assert memory["tags"] == ["contact"]


async def test_voice_gets_a_clear_answer(env):
    user = await env.linked_user()
    await user.push(user.message("", unsupported="voice"))
    answer = await user.reply_text()
    assert "Voice messages can't be saved" in answer and "set up transcription" in answer


async def test_reads_need_a_verified_link(env):
    stranger = env.user(user_id="777")
    await stranger.command("recent")
    assert "not linked" in await stranger.reply_text()


async def test_status_tells_link_queue_and_last_delivery(env):
    user = await env.linked_user()
    env.sandbox.add_fault("create_conversation", status=503, times=None)
    await user.say("something to keep waiting for a while")
    await deliver(env)
    await user.reply()
    await user.command("status")
    text = await user.reply_text()
    assert "Linked to Omi (verified)" in text
    assert "Waiting for Omi: 1 item(s)" in text and "Omi is unavailable" in text


async def test_unlink_asks_then_removes_everything(env):
    user = await env.linked_user()
    env.sandbox.add_fault("create_conversation", status=503, times=None)
    await user.say("a message that is still waiting")
    await deliver(env)
    await user.reply()
    await user.command("unlink")
    ask = await user.reply()
    assert [b.data for b in ask.buttons] == ["unlink confirm", "unlink cancel"]
    assert await env.store.links.verified(user.account) is not None  # nothing happens before confirming
    await user.command("unlink", "confirm")
    done = await user.reply_text()
    assert "stays there" in done
    assert await env.store.links.verified(user.account) is None
    assert await env.store.outbox.open_for_account(user.account) == []
    await user.say("after unlinking")
    assert "not linked" in await user.reply_text()


async def test_claimed_account_messages_are_held(env):
    user = env.user(user_id="4242")
    await claim(env, user, "4242")
    await user.say("kept until verified, then delivered")
    await deliver(env)
    assert "not verified" in await user.reply_text()
    [item] = await env.store.outbox.open_for_account(user.account)
    assert item.state is ItemState.HELD
    assert env.sandbox.conversations(env.uid) == []


async def test_held_messages_are_discarded_after_24_hours_and_the_user_is_told(env):
    user = env.user(user_id="4343")
    await claim(env, user, "4343")
    await user.say("never verified, so never sent")
    await deliver(env)
    await user.reply()
    env.clock.advance(24 * 3600 + 1)
    await env.bridge.housekeeping()
    assert "not verified within 24 hours" in await user.reply_text()
    assert await env.store.outbox.open_for_account(user.account) == []
    assert env.sandbox.conversations(env.uid) == []


def test_a_message_kind_the_bridge_cannot_save_is_named_in_the_answer():
    from bot.texts import unsupported

    assert unsupported("story").startswith("Stories can't be saved to Omi yet")
    assert unsupported("sticker").startswith("Stickers can't")
    assert unsupported("checklist_update").startswith("Checklist update messages can't")  # newer than the bridge
    assert unsupported("other").startswith("This kind of message")
    assert unsupported("x" * 500).startswith("This kind of message")  # a field name is no place for a speech
    assert unsupported("<b>odd</b>").startswith("This kind of message")
