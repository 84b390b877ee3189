"""Omi → chat on Slack (SPEC §12): `/omi notify on`, then a conversation Omi posts to the webhook reaches the user
by DM — Omi's own copy, its time in the user's Slack time zone."""

from __future__ import annotations

from datetime import UTC, datetime

from bot.omi.client import OmiClient
from bot.omi.models import NewConversation
from tests.slack.conftest import link
from tests.slack.workspace import ADA


async def test_a_new_conversation_reaches_a_slack_user_by_dm_in_their_zone(env, slack):
    await link(env, ADA)
    assert (await slack.command(ADA, "notify on")).status == 200
    await env.bridge.processor.wait_idle()
    await slack.fake.said("Omi → chat is on")
    app = env.sandbox.create_app(name="wearable")
    env.sandbox.enable(app.app_id, env.uid)
    started = datetime(2026, 1, 15, 14, 5, tzinfo=UTC)
    async with OmiClient(env.omi.base_url, app.app_id, app.api_key) as recorder:
        text = "We agreed to ship the release on Friday. I will write the release notes and email the team tonight."
        await recorder.create_conversation(
            env.uid, NewConversation(text=text, text_source="audio_transcript", started_at=started, finished_at=started)
        )
    [conversation] = await env.omi.read_conversations(env.uid, limit=1)
    await env.store.pushes.accept_event(env.uid, conversation.id, "key-1", env.clock.now())
    await env.bridge.pushes.run_once()
    pushed = await slack.fake.said("New in Omi:", method="chat.postMessage")
    assert pushed.args["channel"] == f"D{ADA.id}"
    assert f"*{conversation.structured.title}*" in pushed.args["text"]
    assert "09:05 EST, 15 Jan" in pushed.args["text"]  # Ada's Slack zone is America/New_York
