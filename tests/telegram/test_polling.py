"""Long polling: a batch is committed before the next offset confirms it; a restart resumes from the stored offset."""

from __future__ import annotations

from adapters.telegram.polling import OFFSET_KEY
from bot.commands import REGISTRY
from tests.telegram.conftest import ADA, command

CHARLES = 2002


async def test_polling_sets_the_menu_and_keeps_the_updates_waiting_at_telegram(transport, fake_api):
    fake_api.webhook["url"] = "https://old.example.com/telegram/webhook"  # left over from a webhook deployment
    await fake_api.push_update(command("help"))  # sent while the bridge was down

    platform, web = await transport.start()

    assert fake_api.calls_to("deleteWebhook") == [{"drop_pending_updates": False}]
    [menu] = fake_api.calls_to("setMyCommands")
    assert [c["command"] for c in menu["commands"]] == [spec.name for spec in REGISTRY.listed()]
    assert all(0 < len(c["description"]) <= 256 for c in menu["commands"])
    assert web.options.telegram_username == "omibridge_bot"  # the setup page's t.me link
    assert await platform.health() == "ok: polling as @omibridge_bot"
    [help_reply] = await fake_api.wait_for("sendMessage")
    assert help_reply["text"].startswith("I save what you send me")


async def test_the_offset_is_stored_and_a_restart_resumes_after_it(transport, fake_api, env):
    platform, _ = await transport.start()
    first = await fake_api.push_update(command("help", message_id=501))
    # The next poll asks from past the update: it was committed first, and that poll confirms it to Telegram.
    await fake_api.wait_for("getUpdates", lambda p: p["offset"] == first["update_id"] + 1)
    assert await env.store.values.get(OFFSET_KEY) == str(first["update_id"] + 1)
    await fake_api.wait_for("sendMessage")
    await transport.stop(platform)

    second = await fake_api.push_update(command("status", message_id=502))
    polls_before = len(fake_api.calls_to("getUpdates"))
    await transport.start()

    polls = await fake_api.wait_for("getUpdates", count=polls_before + 1)
    assert polls[polls_before]["offset"] == first["update_id"] + 1
    await fake_api.wait_for("sendMessage", count=2)
    await env.bridge.processor.wait_idle()
    assert len(fake_api.sent_texts(ADA)) == 2  # help once, status once: nothing processed twice
    assert await env.store.values.get(OFFSET_KEY) == str(second["update_id"] + 1)


async def test_updates_fetched_but_not_committed_are_fetched_again_after_a_restart(transport, fake_api, env):
    platform, _ = await transport.start()
    await env.store.db.conn.execute("PRAGMA query_only = ON")  # the disk refuses writes
    pending = await fake_api.push_update(command("help", message_id=503))

    # Fetched, not committed: the loop backs off and asks again from the same offset.
    await fake_api.wait_for("getUpdates", lambda p: p["offset"] <= pending["update_id"], count=2)
    assert (await platform.health()).startswith("degraded: the database is not writable")
    await transport.stop(platform)
    assert fake_api.sent_texts() == []

    await env.store.db.conn.execute("PRAGMA query_only = OFF")
    await transport.start()

    [reply] = await fake_api.wait_for("sendMessage")
    assert reply["text"].startswith("I save what you send me")
    assert await env.store.values.get(OFFSET_KEY) == str(pending["update_id"] + 1)


async def test_waiting_out_flood_control_does_not_hold_up_other_users(transport, fake_api):
    await transport.start()
    fake_api.fail("sendMessage", retry_after=1)
    await fake_api.push_update(command("help", message_id=504))
    await fake_api.wait_for("sendMessage")  # refused: Ada's reply waits a second

    await fake_api.push_update(command("help", user_id=CHARLES, message_id=505))

    await fake_api.wait_for("sendMessage", lambda p: p["chat_id"] == ADA, count=2)
    order = [call.params["chat_id"] for call in fake_api.calls if call.method == "sendMessage"]
    assert order == [ADA, CHARLES, ADA]
