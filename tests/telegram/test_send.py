"""Replies leaving through the Bot API: HTML that never breaks, buttons, reactions, long texts, flood control."""

from __future__ import annotations

import itertools

from adapters.telegram.render import markdown_to_html, split_message
from bot.events import Address, Button, Platform, Reply
from tests.telegram.conftest import ADA, GROUP
from tests.telegram.fake_bot_api import check_html as visible_text

PRIVATE = Address(Platform.TELEGRAM, chat_id=str(ADA), user_id=str(ADA), message_id="120")


async def test_markdown_becomes_html_and_everything_else_is_shown_as_typed(telegram):
    text = "**Saved** _3 messages_ from `<Alice & Bob>`: [the plan](https://example.com/a?b=1&c=2) <b>not bold</b> 2*3"
    await telegram.adapter.send(Reply(PRIVATE, text=text))

    [sent] = await telegram.api.wait_for("sendMessage")
    assert sent["parse_mode"] == "HTML"
    assert sent["text"] == (
        "<b>Saved</b> <i>3 messages</i> from <code>&lt;Alice &amp; Bob&gt;</code>: "
        '<a href="https://example.com/a?b=1&amp;c=2">the plan</a> &lt;b&gt;not bold&lt;/b&gt; 2*3'
    )


def test_stray_markers_and_user_text_are_shown_exactly_as_typed():
    for text in ("**unclosed", "a_b_c snake_case", "[label](javascript:alert(1))", "<script>", "&amp; & &", "`", "_"):
        rendered = markdown_to_html(text)
        assert "<" not in rendered  # no markup at all
        assert visible_text(rendered) == text  # and Telegram's parser accepts it


async def test_buttons_become_an_inline_keyboard_with_the_command_as_data(telegram):
    buttons = (Button("Yes, unlink", "unlink confirm"), Button("Cancel", "unlink cancel"))
    await telegram.adapter.send(Reply(PRIVATE, text="Unlink?", buttons=buttons))

    [sent] = await telegram.api.wait_for("sendMessage")
    assert sent["reply_markup"] == {
        "inline_keyboard": [
            [
                {"text": "Yes, unlink", "callback_data": "unlink confirm"},
                {"text": "Cancel", "callback_data": "unlink cancel"},
            ]
        ]
    }


async def test_a_reaction_is_set_on_the_message(telegram):
    await telegram.adapter.send(Reply(PRIVATE, text="Saved 1 message.", reaction="👍"))

    [reaction] = await telegram.api.wait_for("setMessageReaction")
    assert reaction == {"chat_id": ADA, "message_id": 120, "reaction": [{"type": "emoji", "emoji": "👍"}]}
    assert telegram.api.calls_to("sendMessage") == []


async def test_a_refused_reaction_falls_back_to_a_short_text_reply(telegram):
    # ✅ is not one of Telegram's reactions: the server answers REACTION_INVALID.
    await telegram.adapter.send(Reply(PRIVATE, text="Saved 3 messages from Alice, Bob · 12 Mar", reaction="✅"))

    assert await telegram.reply() == "Saved 3 messages from Alice, Bob · 12 Mar"
    assert len(telegram.api.calls_to("setMessageReaction")) == 1


async def test_a_private_answer_from_a_group_goes_to_the_users_private_chat(telegram):
    await telegram.adapter.send(Reply(Address(Platform.TELEGRAM, chat_id="", user_id=str(ADA)), text="Your status"))

    assert await telegram.reply(chat_id=ADA) == "Your status"


async def test_a_group_answer_quotes_the_command(telegram):
    address = Address(Platform.TELEGRAM, chat_id=str(GROUP), user_id=str(ADA), message_id="90", private=False)
    await telegram.adapter.send(Reply(address, text="Reply to the message you want to save."))

    [sent] = await telegram.api.wait_for("sendMessage")
    assert sent["chat_id"] == GROUP
    assert sent["reply_parameters"] == {"message_id": 90, "allow_sending_without_reply": True}


async def test_replies_over_4096_characters_are_split_at_line_breaks(telegram):
    lines = [f"• memory number {n}: " + "x" * 60 for n in range(200)]  # ~16,000 characters
    await telegram.adapter.send(Reply(PRIVATE, text="\n".join(lines), buttons=(Button("More", "memories 5 @5"),)))

    parts = [part["text"] for part in telegram.api.calls_to("sendMessage")]
    assert len(parts) == 5
    assert all(len(part) <= 4096 for part in parts)
    assert "\n".join(parts) == "\n".join(lines)  # whole lines, nothing lost
    # Each part is as full as whole lines allow.
    assert all(len(part) + 1 + len(later.split("\n")[0]) > 4096 for part, later in itertools.pairwise(parts))
    buttons = ["reply_markup" in part for part in telegram.api.calls_to("sendMessage")]
    assert buttons == [False, False, False, False, True]  # the button comes with the last part


def test_splitting_counts_utf16_units_and_cuts_a_line_without_breaks_at_spaces():
    emoji_line = "🎉" * 3000  # 6,000 UTF-16 units in 3,000 characters
    parts = split_message(emoji_line)
    assert [len(part.encode("utf-16-le")) // 2 for part in parts] == [4096, 1904]
    words = " ".join(["word"] * 2000)
    assert all(not part.startswith(" ") and not part.endswith(" ") for part in split_message(words))
    assert " ".join(split_message(words)) == words


async def test_flood_control_waits_the_time_telegram_asks_then_sends(telegram):
    telegram.api.fail("sendMessage", retry_after=1)

    await telegram.adapter.send(Reply(PRIVATE, text="after the flood"))

    first, second = [call for call in telegram.api.calls if call.method == "sendMessage"]
    assert second.params["text"] == "after the flood"
    assert second.at - first.at >= 0.95
