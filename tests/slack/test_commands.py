"""`/omi` and every subcommand through the real Bolt app and the real core: answers are ephemeral (response_url),
outcomes arrive by DM, dates are in the user's own time zone."""

from __future__ import annotations

import re
from datetime import UTC, datetime

from bot.omi.models import NewConversation
from tests.slack.conftest import link
from tests.slack.workspace import ADA, GRACE

NEW_UID = "uid-slack-newcomer"


async def test_omi_alone_answers_with_help_ephemerally(env, slack):
    sent = await slack.command(ADA, "")
    assert sent.status == 200 and sent.body == ""  # acknowledged empty; the answer follows on the response_url
    answer = await slack.fake.said("I save what you send me")
    assert answer.args["response_type"] == "ephemeral"
    assert answer.args["key"] in sent.response_url
    assert "/omi remember TEXT" in answer.text and "/omi search QUERY" in answer.text
    assert slack.fake.calls_to("chat.postMessage") == []


async def test_unknown_subcommand_answers_with_help(env, slack):
    await slack.command(ADA, "frobnicate now")
    answer = await slack.fake.said("I don't know the command /frobnicate.")
    assert "/omi remember TEXT" in answer.text


async def test_a_stranger_is_told_how_to_link_and_nothing_is_kept(env, slack):
    await slack.command(GRACE, "remember I like tea")
    answer = await slack.fake.said("not linked")
    assert "/omi link" in answer.text
    assert env.sandbox.memories(env.uid) == []


async def test_link_then_verify_with_the_code_from_the_omi_app(env, slack):
    token = await env.bridge.linking.issue_token(NEW_UID)
    env.sandbox.enable(env.app_id, NEW_UID)
    await slack.command(ADA, f"link {token}")
    almost = await slack.fake.said("Almost linked")
    assert "/omi verify CODE" in almost.text
    sent_note = await slack.fake.said("I sent a 6-digit code", method="chat.postMessage")
    assert sent_note.args["channel"] == f"D{ADA.id}"  # by DM: the response_url is for answers, not for later news
    [note] = env.sandbox.notifications(NEW_UID)
    assert "linking your Slack account" in note["message"]
    code = re.search(r"\b(\d{6})\b", note["message"]).group(1)

    await slack.command(ADA, f"verify {code}")
    await slack.fake.said("Verified: this chat is linked to your Omi account.")
    verified, claim = await env.store.links.get(f"slack:{ADA.id}")
    assert verified is not None and verified.uid == NEW_UID and claim is None


async def test_remember_saves_memories_and_the_outcome_arrives_by_dm(env, slack):
    await link(env, ADA)
    await slack.command(ADA, "remember #food I am vegetarian\n- I drink my coffee black")
    saved = await slack.fake.said("Saved 2 memories.", method="chat.postMessage")
    assert saved.args["channel"] == f"D{ADA.id}"
    contents = {memory["content"]: memory["tags"] for memory in env.sandbox.memories(env.uid)}
    assert contents == {"I am vegetarian": ["food"], "I drink my coffee black": []}

    await slack.command(ADA, "memories")
    listed = await slack.fake.said("I am vegetarian")
    assert "• I am vegetarian  #food" in listed.text


async def test_channel_mentions_in_remember_stay_words_and_are_never_tags(env, slack):
    await link(env, ADA)
    slack.fake.add_channel("C0RANDOM11", "random")
    await slack.command(ADA, "remember standup notes go to <#C0GENERAL1|general> #work\nand <#C0RANDOM11> too")
    await slack.fake.said("Saved 2 memories.", method="chat.postMessage")
    contents = {memory["content"]: memory["tags"] for memory in env.sandbox.memories(env.uid)}
    assert contents == {"standup notes go to #general": ["work"], "and #random too": []}


async def test_command_text_arrives_escaped_and_is_saved_readable(env, slack):
    await link(env, ADA)
    await slack.command(ADA, "remember Tom &amp; Jerry met <@U0GRACE01|grace> at <https://example.org/p|the party>")
    await slack.fake.said("Saved 1 memory.", method="chat.postMessage")
    [memory] = env.sandbox.memories(env.uid)
    assert memory["content"] == "Tom & Jerry met @Grace Hopper at the party (https://example.org/p)"


async def test_extract_lets_omi_pick_the_memories(env, slack):
    await link(env, ADA)
    await slack.command(ADA, "extract My sister Jane lives in Lisbon now. She works as an architect there.")
    await slack.fake.said("Saved your text for memory extraction.", method="chat.postMessage")
    assert any("Lisbon" in memory["content"] for memory in env.sandbox.memories(env.uid))


async def test_recent_shows_dates_in_the_users_time_zone_and_more_pages_on_a_click(env, slack):
    await link(env, ADA)
    for day in range(1, 7):
        started = datetime(2026, 3, day + 1, 2, 30, tzinfo=UTC)  # New York: the evening before
        text = f"Day {day}: a long walk by the river with the dog"
        await env.omi.create_conversation(env.uid, NewConversation(text=text, started_at=started))
    await slack.command(ADA, "recent")
    first = await slack.fake.said("06 Mar 2026 21:30")  # EST, 7 Mar 02:30 UTC
    assert "UTC" not in first.text
    assert "02 Mar 2026 21:30" in first.text and "01 Mar" not in first.text
    [actions] = [block for block in first.args["blocks"] if block["type"] == "actions"]
    [more] = actions["elements"]
    assert more["text"]["text"] == "More" and more["value"] == "recent 5 @5"

    clicked = await slack.click(ADA, more["value"])
    assert clicked.status == 200
    second = await slack.fake.said("01 Mar 2026 21:30")
    assert "blocks" not in second.args  # the last page: no "More"


async def test_search_finds_what_was_saved(env, slack):
    await link(env, ADA)
    text = "We planted tomatoes and basil in the garden"
    await env.omi.create_conversation(env.uid, NewConversation(text=text, started_at=datetime(2026, 3, 2, tzinfo=UTC)))
    await slack.command(ADA, "search tomatoes")
    found = await slack.fake.said("Page 1 of 1")
    assert "01 Mar 2026 19:00" in found.text
    await slack.command(ADA, "search cucumbers")
    await slack.fake.said("Nothing found for “cucumbers”.")


async def test_status_tells_the_link_and_what_waits(env, slack):
    await link(env, ADA)
    await slack.command(ADA, "status")
    answer = await slack.fake.said("Linked to Omi (verified)")
    assert "Nothing is waiting." in answer.text


async def test_unlink_asks_with_buttons_and_a_click_confirms(env, slack):
    await link(env, ADA)
    await slack.command(ADA, "unlink")
    question = await slack.fake.said("Unlink this chat from your Omi account?")
    [actions] = [block for block in question.args["blocks"] if block["type"] == "actions"]
    values = {button["text"]["text"]: button["value"] for button in actions["elements"]}
    assert values == {"Yes, unlink": "unlink confirm", "Cancel": "unlink cancel"}

    await slack.click(ADA, values["Yes, unlink"])
    await slack.fake.said("Unlinked.")
    assert await env.store.links.get(f"slack:{ADA.id}") == (None, None)
