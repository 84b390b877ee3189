"""Commands as Telegram users type them: `/cmd args`, `/cmd@bot`, the deep link's `/start TOKEN`, buttons."""

from __future__ import annotations

from bot.commands import REGISTRY
from tests.telegram.conftest import ADA, GROUP, recorded


async def test_start_with_the_deep_link_token_claims_the_link(telegram):
    token = await telegram.env.bridge.linking.issue_token("uid-grace")
    update = recorded("command_start_token")
    update["message"]["text"] = f"/start {token}"

    await telegram.receive(update)

    assert (await telegram.reply()).startswith("Almost linked. Open the Omi app")
    assert await telegram.env.bridge.linking.setup_completed("uid-grace")


async def test_start_alone_explains_the_bot_and_lists_every_command(telegram):
    await telegram.receive(recorded("command_start"))

    help_text = await telegram.reply()
    assert help_text.startswith("I save what you send me into your Omi account.")
    for spec in REGISTRY.listed():
        assert f"/{spec.name}" in help_text


async def test_remember_saves_each_line_as_a_memory_with_its_tags(telegram):
    await telegram.link()
    await telegram.receive(recorded("command_remember"))
    await telegram.env.settle()

    memories = {memory["content"]: memory["tags"] for memory in telegram.env.sandbox.memories(telegram.env.uid)}
    assert memories == {"I like tea": ["food"], "and scones": []}
    [reaction] = await telegram.api.wait_for("setMessageReaction")
    assert reaction["message_id"] == 82


async def test_save_at_the_bot_as_a_reply_in_a_group_saves_the_original_author(telegram):
    await telegram.link()
    await telegram.receive(recorded("group_save_reply"))
    await telegram.env.settle()

    [conversation] = telegram.conversations()
    assert conversation["external_data"]["text"] == (
        "Charles Babbage: The Analytical Engine has no pretensions to originate anything."
    )
    [reaction] = await telegram.api.wait_for("setMessageReaction")
    assert reaction["chat_id"] == GROUP and reaction["message_id"] == 90


async def test_answers_about_a_users_data_asked_in_a_group_go_to_their_private_chat(telegram):
    update = recorded("group_save_reply")
    update["message"]["text"] = "/status"
    update["message"]["entities"][0]["length"] = len("/status")

    await telegram.receive(update)

    assert "not linked" in await telegram.reply(chat_id=ADA)
    assert telegram.api.sent_texts(GROUP) == []


async def test_the_bot_ignores_group_chatter_and_commands_for_other_bots(telegram):
    await telegram.link()
    shared_file = recorded("text_document")
    shared_file["message"]["chat"] = recorded("group_text")["message"]["chat"]
    await telegram.receive(recorded("group_text"), recorded("group_command_other_bot"), shared_file)

    assert telegram.api.calls_to("sendMessage") == []
    assert telegram.api.calls_to("getFile") == []  # not even downloaded
    assert await telegram.env.store.inbox.pending_count() == 0  # stored only until parsed, then let go


async def test_the_unlink_confirm_button_answers_the_tap_and_unlinks(telegram):
    await telegram.link()
    await telegram.receive(recorded("callback_query"))

    assert (await telegram.reply()).startswith("Unlinked.")
    [answer] = await telegram.api.wait_for("answerCallbackQuery")
    assert answer["callback_query_id"] == "4382bfdwdsb323b2d9"
    assert await telegram.env.store.links.verified(f"telegram:{ADA}") is None


async def test_a_stale_button_is_still_answered(telegram):
    telegram.api.fail("answerCallbackQuery", 400, "Bad Request: query is too old and response timeout expired")
    await telegram.receive(recorded("callback_query"))  # not linked (any more): nothing to unlink

    assert "nothing to remove" in await telegram.reply()
    assert len(await telegram.api.wait_for("answerCallbackQuery")) == 1


async def test_recent_offers_a_more_button_whose_tap_pages_on(telegram):
    await telegram.link()
    for message_id, text in ((201, "first walk by the river"), (202, "second walk in the hills")):
        update = recorded("plain_text")
        update["update_id"] += message_id
        update["message"].update(message_id=message_id, text=text)
        await telegram.receive(update)
        await telegram.deliver()
    recent = recorded("command_start")
    recent["message"].update(message_id=203, text="/recent 1")
    recent["message"]["entities"][0]["length"] = len("/recent")
    await telegram.receive(recent)

    [shown] = await telegram.api.wait_for("sendMessage", lambda p: "reply_markup" in p)
    [[more]] = shown["reply_markup"]["inline_keyboard"]
    assert more == {"text": "More", "callback_data": "recent 1 @1"}
    assert "<b>" in shown["text"]  # the title, bold
    tap = recorded("callback_query")
    tap["callback_query"].update(id="tap-more", data=more["callback_data"])
    await telegram.receive(tap)
    [_, page_two] = await telegram.api.wait_for("sendMessage", lambda p: "reply_markup" in p, count=2)
    assert page_two["text"] != shown["text"] and "UTC" in page_two["text"]
