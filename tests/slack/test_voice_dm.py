"""An audio file sent to the bot in a Slack DM (SPEC §11), end to end over HTTP: the real SlackPlatform fetches it
with files.info and the bot token, the fake OpenAI-compatible service transcribes it, the user gets the echo by DM,
and the conversation is `Author (voice 0:07): …` with `text_source` `audio_transcript`."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from bot.bridge import Bridge
from bot.transcribe import Transcriber
from tests.fake_stt import FakeSTT
from tests.slack.conftest import _serve, link, slack_settings
from tests.slack.fake_slack import BOT_TOKEN
from tests.slack.workspace import ADA, SlackWorkspace

CLIP = b"\x00\x00\x00\x18ftypM4A slack clip"


@pytest.fixture
async def stt() -> AsyncIterator[FakeSTT]:
    async with FakeSTT(default_text="ship the release on friday") as server:
        yield server


@pytest.fixture
async def voice_slack(env, fake_slack, stt) -> AsyncIterator[SlackWorkspace]:
    """Slack over HTTP on a bridge that transcribes with the fake service."""
    await env.bridge.stop()
    transcriber = Transcriber(stt.base_url, timeout=5.0)
    env.bridge = Bridge(env.store, env.omi, env.clock, batch_window=env.window, transcriber=transcriber)
    await env.bridge.start()
    try:
        async for workspace in _serve(env, fake_slack, slack_settings(fake_slack)):
            yield workspace
    finally:
        await env.bridge.transcription.stop()
        await transcriber.aclose()


async def test_an_audio_clip_in_a_dm_is_transcribed_echoed_and_saved(env, voice_slack, stt):
    await link(env, ADA)
    voice_slack.fake.add_file("F0CLIP001", CLIP, subtype="slack_audio", mimetype="audio/mp4", duration_ms=7300)
    body = voice_slack.dm_event(ADA, "", ts="1773306000.000900")
    body["event"] |= {
        "subtype": "file_share",
        "files": [
            {"id": "F0CLIP001", "name": "audio_message.m4a", "mimetype": "audio/mp4", "filetype": "m4a",
             "subtype": "slack_audio", "duration_ms": 7300, "size": len(CLIP)}
        ],
    }  # fmt: skip
    assert (await voice_slack.deliver("events_api", body)).status == 200
    await env.bridge.processor.wait_idle()
    await stt.wait_for_requests(1)
    echoed = await voice_slack.fake.said('🎤 "ship the release on friday"', method="chat.postMessage")
    assert echoed.args["channel"] == f"D{ADA.id}"
    await env.close_bursts()
    await voice_slack.fake.said("Saved 1 message", method="chat.postMessage")
    [conversation] = env.sandbox.conversations(env.uid)
    assert conversation["external_data"]["text"] == "Ada Lovelace (voice 0:07): ship the release on friday"
    assert conversation["external_data"]["text_source"] == "audio_transcript"
    [request] = stt.requests
    assert request.file == CLIP and request.filename == "audio_message.m4a"
    assert [call.token for call in voice_slack.fake.calls_to("download")] == [BOT_TOKEN]
