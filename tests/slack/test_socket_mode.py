"""Socket Mode: envelopes arrive over the websocket from `apps.connections.open`, each is acknowledged only after
it was accepted, and `/slack/events` is not served."""

from __future__ import annotations

import httpx

from tests.slack.conftest import link
from tests.slack.fake_slack import APP_TOKEN
from tests.slack.workspace import ADA, GENERAL, fixture


async def test_connects_with_the_app_token(env, socket_slack):
    [opened] = socket_slack.fake.calls_to("apps.connections.open")
    assert opened.token == APP_TOKEN
    async with httpx.AsyncClient(base_url=socket_slack.web_url) as client:
        assert (await client.post("/slack/events", content=b"{}")).status_code == 404
        health = (await client.get("/healthz")).json()
    assert health["components"]["slack"] == "ok (Socket Mode)"


async def test_slash_command_envelope_is_acked_then_answered(env, socket_slack):
    await link(env, ADA)
    sent = await socket_slack.command(ADA, "remember #tea I like green tea")
    assert sent.status == 200  # the envelope was acknowledged
    await socket_slack.fake.said("Saved 1 memory.", method="chat.postMessage")
    [memory] = env.sandbox.memories(env.uid)
    assert (memory["content"], memory["tags"]) == ("I like green tea", ["tea"])


async def test_thread_shortcut_over_socket_mode(env, socket_slack):
    await link(env, ADA)
    thread_ts = socket_slack.fake.add_thread(
        GENERAL, [(ADA.id, "1773306000.000100", "first"), (ADA.id, "1773306060.000200", "second")]
    )
    assert (await socket_slack.save_thread(ADA, thread_ts)).status == 200
    await socket_slack.fake.said("Saved 2 messages", method="chat.postMessage")
    [conversation] = env.sandbox.conversations(env.uid)
    assert conversation["external_data"]["text"] == "Ada Lovelace: first\n\nAda Lovelace: second"


async def test_a_redelivered_event_envelope_is_processed_once(env, socket_slack):
    await link(env, ADA)
    body = fixture("dm_event")
    assert (await socket_slack.deliver("events_api", body)).status == 200
    retried = fixture("dm_event_retried")
    assert (await socket_slack.deliver("events_api", retried["body"], headers=retried["headers"])).status == 200
    await env.bridge.processor.wait_idle()
    await env.close_bursts()
    await socket_slack.fake.said("Saved 1 message", method="chat.postMessage")
    assert len(env.sandbox.conversations(env.uid)) == 1


async def test_an_envelope_that_cannot_be_stored_is_not_acknowledged(env, socket_slack):
    await env.store.db.close()
    try:
        sent = await socket_slack.command(ADA, "help")
    finally:
        await env.store.db.open()
    assert sent.status == 0  # no ack: Slack redelivers it
    assert (await socket_slack.command(ADA, "help")).status == 200
