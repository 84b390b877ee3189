"""One session key: the cheap look at a stored payload names the same session as the parsed message, so a burst
waits for its user's rows even when processing lags past the window (bursts run on the receive clock)."""

from __future__ import annotations

import json

import pytest

from adapters.slack.adapter import SlackAdapter
from adapters.slack.client import web_client
from adapters.slack.jobs import job_for, session_hint
from bot.events import Platform, session_key
from bot.store import InboxRow
from tests.slack.conftest import link
from tests.slack.fake_slack import BOT_TOKEN, BOT_USER_ID
from tests.slack.workspace import ADA, fixture


async def test_two_direct_messages_still_give_one_conversation_when_the_first_is_parsed_late(env, slack):
    await link(env, ADA)
    slow_slack = slack.fake.hold("users.info")  # parsing the first DM waits on Slack (its author's real name)
    assert (await slack.write_dm(ADA, "first thought", ts="1773306000.000100")).status == 200
    env.clock.advance(1.0)  # the second one comes within the burst window
    assert (await slack.write_dm(ADA, "second thought", ts="1773306001.000100")).status == 200
    await slack.fake.wait_for("users.info")
    env.clock.advance(env.window * 3)  # on the receive clock the window is long over while the first still waits
    slow_slack.set()
    await env.bridge.processor.wait_idle()
    await env.close_bursts()

    await slack.fake.said("Saved 2 messages from Ada Lovelace", method="chat.postMessage")
    [conversation] = env.sandbox.conversations(env.uid)
    assert conversation["external_data"]["text"] == "first thought\n\nsecond thought"


def _row(kind: str, body: dict) -> InboxRow:
    return InboxRow(1, Platform.SLACK.value, kind, json.dumps(body), 1773306000.0)


@pytest.mark.parametrize(
    "name",
    ["dm_event", "slash_command", "block_actions", "shortcut_save_to_omi", "shortcut_save_thread_to_omi", "edit"],
)
async def test_the_hint_is_the_parsed_messages_session_key(env, fake_slack, name):
    for person_id, real_name in ((ADA.id, ADA.name), ("U0GRACE01", "Grace Hopper")):
        fake_slack.add_user(person_id, real_name)
    fake_slack.add_thread("C0GENERAL1", [(ADA.id, "1773306000.000100", "parent")])
    if name == "edit":
        body = fixture("dm_event")
        body["event"] = {
            "type": "message",
            "subtype": "message_changed",
            "channel": "D0ADA0001",
            "channel_type": "im",
            "ts": "1773306009.000100",
            "message": {"type": "message", "user": ADA.id, "text": "edited", "ts": "1773306000.000300"},
        }
    else:
        body = fixture(name)
    job = job_for(body, BOT_USER_ID)
    assert job is not None
    row = _row(job.kind.value, job.payload)
    adapter = SlackAdapter(web_client(BOT_TOKEN, fake_slack.api_url), env.clock, env.bridge.account_summary)

    message = await adapter.parse(row)

    assert message is not None
    assert session_hint(row) == message.session_key
    assert message.session_key == session_key(Platform.SLACK, message.chat_id, message.sender_id)
