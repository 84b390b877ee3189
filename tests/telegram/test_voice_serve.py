"""End to end: `omi-bridge serve` as a process with TRANSCRIBE_URL set, polling the fake Bot API: a voice message is
fetched through getFile, transcribed by the fake OpenAI-compatible service, echoed, and saved into the sandbox as
`Author (voice 0:04): …` with `text_source` `audio_transcript` (SPEC §11)."""

from __future__ import annotations

import asyncio

from bot.sandbox import ALL_CAPABILITIES, Sandbox
from tests.fake_stt import FakeSTT
from tests.processes import BackgroundProcess, operator_link, serve_env
from tests.telegram.conftest import ADA, recorded

UID = "uid-ada-voice"
OGG = b"OggS\x00\x02opus-voice-bytes"
KEY = "sk-e2e-transcription-secret"


async def test_serve_transcribes_a_telegram_voice_message_into_omi(tmp_path, fake_api):
    sandbox = Sandbox()
    omi_url = await sandbox.start("127.0.0.1", 0)
    app = sandbox.create_app(capabilities=ALL_CAPABILITIES)
    sandbox.enable(app.app_id, UID)
    fake_api.add_file("voice-1", "voice/file_7.oga", OGG)
    stt = FakeSTT(default_text="remind me to water the tomatoes")
    await stt.start()
    env = serve_env(
        tmp_path,
        omi_url,
        app,
        TELEGRAM_BOT_TOKEN=fake_api.token,
        TELEGRAM_API_BASE_URL=fake_api.base_url,
        TRANSCRIBE_URL=stt.base_url,
        TRANSCRIBE_API_KEY=KEY,
        BATCH_WINDOW_SECONDS="0.3",
    )
    await operator_link(f"telegram:{ADA}", UID, cwd=tmp_path, env=env)
    serve = BackgroundProcess("serve", cwd=tmp_path, env=env)
    try:
        await asyncio.to_thread(serve.wait_for, r"serving on (http://\S+)")
        await fake_api.push_update(recorded("voice"))

        [echoed] = await fake_api.wait_for("sendMessage", lambda p: p["text"].startswith("🎤"), timeout=15)
        assert echoed["chat_id"] == ADA and echoed["text"] == '🎤 "remind me to water the tomatoes"'
        [saved] = await fake_api.wait_for("setMessageReaction", timeout=15)
        assert saved["message_id"] == 72
        [conversation] = sandbox.conversations(UID)
        assert conversation["external_data"]["text"] == "Ada Lovelace (voice 0:04): remind me to water the tomatoes"
        assert conversation["external_data"]["text_source"] == "audio_transcript"

        [request] = stt.requests
        assert request.file == OGG and request.filename == "voice.ogg"
        assert request.fields == {"model": "whisper-1", "response_format": "json", "language": "en"}
        assert request.authorization == f"Bearer {KEY}"
        assert await asyncio.to_thread(serve.stop) == 0
    finally:
        serve.kill()
        await stt.stop()
        await sandbox.stop()
        sandbox.close()
    output = "\n".join(serve.rest())
    assert KEY not in output and fake_api.token not in output
    assert "Traceback" not in output
