"""End to end: `omi-bridge serve` as a process, polling the fake Bot API, saving into the sandbox."""

from __future__ import annotations

import asyncio
import re

import httpx

from bot.sandbox import ALL_CAPABILITIES, Sandbox
from tests.processes import BackgroundProcess, serve_env
from tests.telegram.conftest import ADA, command, recorded

UID = "uid-ada-e2e"


def forward(message_id: int, text: str, author: str) -> dict:
    update = recorded("forward_user")
    del update["update_id"]
    message = update["message"]
    first, last = author.split()
    message.update(message_id=message_id, text=text)
    message["forward_origin"]["sender_user"].update(first_name=first, last_name=last)
    message["forward_origin"]["date"] += message_id * 60
    return update


async def test_link_with_the_deep_link_and_code_then_a_burst_of_forwards_is_one_conversation(tmp_path, fake_api):
    sandbox = Sandbox()
    omi_url = await sandbox.start("127.0.0.1", 0)
    app = sandbox.create_app(capabilities=ALL_CAPABILITIES)
    codes: asyncio.Queue[str] = asyncio.Queue()
    sandbox.on_notification = lambda note: codes.put_nowait(re.search(r"\b(\d{6})\b", note["message"]).group(1))
    env = serve_env(
        tmp_path,
        omi_url,
        app,
        TELEGRAM_BOT_TOKEN=fake_api.token,
        TELEGRAM_API_BASE_URL=fake_api.base_url,
        BATCH_WINDOW_SECONDS="0.3",
    )
    serve = BackgroundProcess("serve", cwd=tmp_path, env=env)
    try:
        # The fakes live in this event loop: wait for the process's output in a thread.
        url = (await asyncio.to_thread(serve.wait_for, r"serving on (http://\S+)")).group(1)
        assert fake_api.calls_to("deleteWebhook") == [{"drop_pending_updates": False}]
        assert fake_api.calls_to("setMyCommands")

        # The Omi app opens the setup page; its Telegram button is the deep link with a fresh token.
        async with httpx.AsyncClient(base_url=url) as web:
            page = await web.get("/omi/setup", params={"uid": UID})
        [token] = re.findall(r"https://t\.me/omibridge_bot\?start=([A-Za-z0-9_-]+)", page.text)

        await fake_api.push_update(command("start", args=token, message_id=1))
        [claimed] = await fake_api.wait_for("sendMessage", lambda p: "Almost linked" in p["text"], timeout=10)
        assert claimed["chat_id"] == ADA

        # Omi enables the app (after asking our setup-completed route); then the code reaches the Omi app.
        sandbox.set_setup_completed_url(app.app_id, f"{url}/omi/setup-completed")
        assert await sandbox.enable_checked(app.app_id, UID)
        code = await asyncio.wait_for(codes.get(), timeout=15)

        await fake_api.push_update(command("verify", args=code, message_id=2))
        await fake_api.wait_for("sendMessage", lambda p: p["text"].startswith("Verified"), timeout=10)

        for message_id, text, author in [
            (5, "and a mill for the arithmetic", "Charles Babbage"),
            (3, "We need a store for the numbers", "Ada Lovelace"),
            (4, "Punched cards can hold the program", "Mary Somerville"),
        ]:
            await fake_api.push_update(forward(message_id, text, author))

        [saved] = await fake_api.wait_for("setMessageReaction", timeout=10)
        assert saved["message_id"] == 5 and saved["reaction"] == [{"type": "emoji", "emoji": "👍"}]
        [conversation] = sandbox.conversations(UID)
        assert conversation["external_data"]["text"] == (
            "Ada Lovelace: We need a store for the numbers\n\n"
            "Mary Somerville: Punched cards can hold the program\n\n"
            "Charles Babbage: and a mill for the arithmetic"
        )

        assert await asyncio.to_thread(serve.stop) == 0
    finally:
        serve.kill()
        await sandbox.stop()
        sandbox.close()
    output = "\n".join(serve.rest())
    assert fake_api.token not in output and app.api_key not in output
    assert "Traceback" not in output
