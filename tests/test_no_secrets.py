"""No secret leaks: a whole link-and-save flow through `omi-bridge serve` (debug JSON logs), then the log, the
pages, /metrics and /healthz are searched for the API key, the bot token, the signing secret, the app token and
the webhook secret."""

from __future__ import annotations

import asyncio
import json
import re

import httpx

from bot.sandbox import ALL_CAPABILITIES, Sandbox
from tests.processes import BackgroundProcess, clean_env, free_port
from tests.slack.fake_slack import APP_TOKEN, FakeSlack
from tests.slack.workspace import SIGNING_SECRET
from tests.telegram.conftest import command, recorded
from tests.telegram.fake_bot_api import FakeBotApi

UID = "uid-secret-keeper"
WEBHOOK_SECRET = "webhook-secret-that-must-not-leak-7f3a"


async def test_no_secret_in_logs_pages_metrics_or_health(tmp_path):
    sandbox = Sandbox()
    omi_url = await sandbox.start("127.0.0.1", 0)
    app = sandbox.create_app(capabilities=ALL_CAPABILITIES)
    codes: asyncio.Queue[str] = asyncio.Queue()
    sandbox.on_notification = lambda note: codes.put_nowait(re.search(r"\b(\d{6})\b", note["message"]).group(1))
    telegram = await FakeBotApi().start()
    slack = FakeSlack()
    await slack.start()
    port = free_port()
    secrets = [app.api_key, telegram.token, SIGNING_SECRET, APP_TOKEN, WEBHOOK_SECRET]
    env = clean_env(
        OMI_API_BASE_URL=omi_url,
        OMI_APP_ID=app.app_id,
        OMI_API_KEY=app.api_key,
        TELEGRAM_BOT_TOKEN=telegram.token,
        TELEGRAM_API_BASE_URL=telegram.base_url,
        TELEGRAM_WEBHOOK_URL=f"http://127.0.0.1:{port}/telegram/webhook",
        TELEGRAM_WEBHOOK_SECRET=WEBHOOK_SECRET,
        SLACK_BOT_TOKEN="xoxb-fake-bot-token",
        SLACK_SIGNING_SECRET=SIGNING_SECRET,
        SLACK_APP_TOKEN=APP_TOKEN,
        SLACK_API_URL=slack.api_url,
        BATCH_WINDOW_SECONDS="0.3",
        HOST="127.0.0.1",
        PORT=str(port),
        DATABASE_URL=f"sqlite:///{tmp_path / 'bridge.db'}",
        LOG_LEVEL="DEBUG",
        LOG_FORMAT="json",
    )
    serve = BackgroundProcess("serve", cwd=tmp_path, env=env)
    seen: list[str] = []
    try:
        url = (await asyncio.to_thread(serve.wait_for, r"serving on (http://\S+)")).group(1)
        async with httpx.AsyncClient(base_url=url) as web:

            async def update(body: dict, update_id: int) -> None:
                answer = await web.post(
                    "/telegram/webhook",
                    json={**body, "update_id": update_id},
                    headers={"X-Telegram-Bot-Api-Secret-Token": WEBHOOK_SECRET},
                )
                assert answer.status_code == 200

            setup = await web.get("/omi/setup", params={"uid": UID})
            [token] = re.findall(r"start=([A-Za-z0-9_-]+)", setup.text)
            await update(command("start", args=token, message_id=1), 1)
            await telegram.wait_for("sendMessage", lambda p: "Almost linked" in p["text"], timeout=10)
            sandbox.set_setup_completed_url(app.app_id, f"{url}/omi/setup-completed")
            assert await sandbox.enable_checked(app.app_id, UID)
            code = await asyncio.wait_for(codes.get(), timeout=15)  # the code retry reaches the app now
            await update(command("verify", args=code, message_id=3), 3)
            await telegram.wait_for("sendMessage", lambda p: p["text"].startswith("Verified"), timeout=10)
            forward = recorded("forward_user")
            forward.pop("update_id", None)
            forward["message"]["message_id"] = 4
            await update(forward, 4)
            await telegram.wait_for("setMessageReaction", timeout=10)
            assert len(sandbox.conversations(UID)) == 1

            for path, params in (
                ("/omi/setup", {"uid": UID}),
                ("/omi/home", {"uid": UID}),
                ("/omi/setup-completed", {"uid": UID}),
                ("/healthz", {}),
                ("/metrics", {}),
            ):
                answer = await web.get(path, params=params)
                assert answer.status_code == 200, path
                seen.append(answer.text)
            metrics = seen[-1]
            assert re.search(r"omi_bridge_updates_received_total\{platform=\"telegram\"\} [3-9]", metrics)
            assert 'omi_bridge_items_queued_total{kind="conversation"} 1.0' in metrics
            assert 'omi_bridge_items_delivered_total{kind="conversation"} 1.0' in metrics
            assert (
                'omi_bridge_omi_request_duration_seconds_count{route="create_conversation",status="200"} 1.0' in metrics
            )
            health = (await web.get("/healthz")).json()
            assert health["components"]["telegram"] and health["components"]["slack"]
        assert serve.stop() == 0
    finally:
        serve.kill()
        await slack.stop()
        await telegram.stop()
        await sandbox.stop()
        sandbox.close()
    log = serve.rest()
    assert any(json.loads(line).get("level") == "DEBUG" for line in log if line.startswith("{"))
    everything = "\n".join(log + seen)
    for secret in secrets:
        assert secret not in everything
    assert "algebraic patterns" not in "\n".join(line for line in log if '"level": "INFO"' in line)
