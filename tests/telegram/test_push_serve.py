"""End to end: `omi-bridge serve` as a process, Omi → chat (SPEC §12): a user says /notify on; the sandbox records a
conversation "from the wearable" and POSTs it to the serve's Omi webhook, as Omi does; the bridge reads Omi's copy
back and pushes it to Telegram as HTML — through a 429 `retry_after` on the first send."""

from __future__ import annotations

import asyncio

from bot.sandbox import ALL_CAPABILITIES, Sandbox
from tests.processes import BackgroundProcess, operator_link, serve_env
from tests.telegram.conftest import ADA, command

UID = "uid-ada-push"
SECRET = "push-test-webhook-secret-0123456789abcdef"
TALK = "Alice: we need to buy milk for the party. Bob: I will get it after work today."


async def test_a_recorded_conversation_is_pushed_to_telegram_through_flood_control(tmp_path, fake_api):
    sandbox = Sandbox()
    omi_url = await sandbox.start("127.0.0.1", 0)
    app = sandbox.create_app(capabilities=ALL_CAPABILITIES)
    sandbox.enable(app.app_id, UID)
    env = serve_env(
        tmp_path,
        omi_url,
        app,
        TELEGRAM_BOT_TOKEN=fake_api.token,
        TELEGRAM_API_BASE_URL=fake_api.base_url,
        OMI_WEBHOOK_SECRET=SECRET,
    )
    await operator_link(f"telegram:{ADA}", UID, cwd=tmp_path, env=env)
    serve = BackgroundProcess("serve", cwd=tmp_path, env=env)
    try:
        url = (await asyncio.to_thread(serve.wait_for, r"serving on (http://\S+)")).group(1)
        sandbox.set_webhook(app.app_id, f"{url}/omi/webhook/{SECRET}")
        await fake_api.push_update(command("notify", args="on", message_id=1))
        await fake_api.wait_for("sendMessage", lambda p: "Omi → chat is on" in p["text"], timeout=10)

        fake_api.fail("sendMessage", retry_after=1)  # Telegram's flood control on the push
        conversation = await sandbox.device_conversation(app.app_id, UID, TALK)
        await sandbox.webhooks_idle()
        [delivery] = sandbox.webhook_deliveries()
        assert delivery["status"] == 200 and delivery["message"] is None  # `{}`: nothing posted into Omi's chat
        calls = await fake_api.wait_for("sendMessage", lambda p: p["text"].startswith("New in Omi"), timeout=15)
        pushed = calls[-1]
        assert pushed["chat_id"] == ADA and pushed["parse_mode"] == "HTML"
        title = conversation["structured"]["title"]
        assert f"<b>{title}</b>" in pushed["text"]
        assert "Action items:" in pushed["text"] and "• " in pushed["text"]
        assert len(calls) == 1  # the refused try is not recorded as sent; one message arrived
        assert await asyncio.to_thread(serve.stop) == 0
    finally:
        serve.kill()
        await sandbox.stop()
        sandbox.close()
    output = "\n".join(serve.rest())
    assert "flood control, waiting 1.0 s" in output  # the 429 was honoured, then the push went through
    assert SECRET not in output and fake_api.token not in output
    assert "Traceback" not in output
