"""Replies leaving for Slack: ephemeral through the response_url at most 5 times and for 30 minutes, then
`chat.postEphemeral`, then a DM; outcomes (not ephemeral) always by DM; Markdown as mrkdwn, buttons as Block Kit."""

from __future__ import annotations

import pytest

from adapters.slack.client import web_client
from adapters.slack.send import SlackSender
from bot.clock import ManualClock
from bot.events import Address, Button, Platform, Reply
from tests.slack.fake_slack import BOT_TOKEN, FakeSlack
from tests.slack.workspace import ADA, GENERAL


@pytest.fixture
async def sender(fake_slack: FakeSlack) -> SlackSender:
    return SlackSender(web_client(BOT_TOKEN, fake_slack.api_url), ManualClock())


def address(fake: FakeSlack, key: str = "cmd", expires: float = 1_780_001_800.0) -> Address:
    url = fake.response_url(key)
    extra = {"response_url": url, "response_url_expires": str(expires)}
    return Address(Platform.SLACK, GENERAL, ADA.id, message_id="trigger", extra=extra)


async def test_the_response_url_is_used_five_times_then_post_ephemeral(fake_slack, sender):
    to_ada = address(fake_slack)
    for n in range(6):
        await sender.send(Reply(to_ada, text=f"answer {n}", ephemeral=True))
    assert [call.text for call in fake_slack.calls_to("response_url")] == [f"answer {n}" for n in range(5)]
    [fallback] = fake_slack.calls_to("chat.postEphemeral")
    assert (fallback.args["channel"], fallback.args["user"], fallback.text) == (GENERAL, ADA.id, "answer 5")


async def test_an_expired_response_url_is_not_tried(fake_slack, sender):
    old = address(fake_slack, expires=1_000.0)
    await sender.send(Reply(old, text="late answer", ephemeral=True))
    assert fake_slack.calls_to("response_url") == []
    assert fake_slack.calls_to("chat.postEphemeral")[0].text == "late answer"


async def test_when_slack_refuses_ephemeral_messages_the_answer_goes_by_dm(fake_slack, sender):
    fake_slack.fail("chat.postEphemeral", "channel_not_found")
    no_url = Address(Platform.SLACK, GENERAL, ADA.id)
    await sender.send(Reply(no_url, text="still reaches you", ephemeral=True))
    [opened] = fake_slack.calls_to("conversations.open")
    assert opened.args["users"] == ADA.id
    [dm] = fake_slack.calls_to("chat.postMessage")
    assert (dm.args["channel"], dm.text) == (f"D{ADA.id}", "still reaches you")


async def test_outcomes_go_by_dm_even_with_a_response_url_and_reactions_become_text(fake_slack, sender):
    to_ada = address(fake_slack)
    await sender.send(Reply(to_ada, text="Saved 3 messages.", reaction="👍"))
    await sender.send(Reply(to_ada, text="Saved 1 memory.", reaction="👍"))
    assert fake_slack.calls_to("response_url") == []
    assert [call.text for call in fake_slack.calls_to("chat.postMessage")] == ["Saved 3 messages.", "Saved 1 memory."]
    assert len(fake_slack.calls_to("conversations.open")) == 1  # the DM channel is remembered


async def test_markdown_becomes_mrkdwn_and_buttons_become_block_kit(fake_slack, sender):
    reply = Reply(
        address(fake_slack),
        text="🌳 **Garden plan** · 01 Mar 2026 19:00\nsee [the plan](https://example.org/plan?a=1&b=2) <now>",
        buttons=(Button("More", "recent 5 @5"),),
        ephemeral=True,
    )
    await sender.send(reply)
    [call] = fake_slack.calls_to("response_url")
    expected = "🌳 *Garden plan* · 01 Mar 2026 19:00\nsee <https://example.org/plan?a=1&amp;b=2|the plan> &lt;now&gt;"
    assert call.text == expected
    section, actions = call.args["blocks"]
    assert section == {"type": "section", "text": {"type": "mrkdwn", "text": expected}}
    [button] = actions["elements"]
    assert button["value"] == "recent 5 @5" and button["action_id"] == "omi:recent 5 @5"
    assert call.args["response_type"] == "ephemeral" and call.args["replace_original"] is False


async def test_after_a_restart_a_used_up_response_url_refuses_and_the_answer_still_arrives(fake_slack, sender):
    to_ada = address(fake_slack)
    for n in range(5):
        await sender.send(Reply(to_ada, text=f"before {n}", ephemeral=True))
    restarted = SlackSender(web_client(BOT_TOKEN, fake_slack.api_url), ManualClock())  # forgot the count
    await restarted.send(Reply(to_ada, text="after the restart", ephemeral=True))
    assert fake_slack.calls_to("response_url")[-1].text == "after the restart"  # tried, refused (used_url)
    assert fake_slack.calls_to("chat.postEphemeral")[0].text == "after the restart"
