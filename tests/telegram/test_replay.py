"""A crash between accepting an update and handling it loses nothing: the row is replayed at the next start."""

from __future__ import annotations

from adapters.telegram.adapter import TelegramAdapter
from adapters.telegram.bot_api import make_bot
from adapters.telegram.intake import arrival_for
from bot.bridge import Bridge
from bot.clock import ManualClock
from bot.omi.client import OmiClient
from bot.store import Store
from tests.telegram.conftest import ADA, command, telegram_settings


async def test_an_update_accepted_before_a_crash_is_answered_after_the_restart(tmp_path, fake_api):
    path = str(tmp_path / "bridge.db")
    before = await Store.open(path, ManualClock())
    await before.inbox.accept(arrival_for({**command("help"), "update_id": 31337}))  # acknowledged to Telegram
    await before.close()  # ...and the process dies before handling it

    store = await Store.open(path, ManualClock())
    omi = OmiClient("http://127.0.0.1:9", "app", "sk_unused")  # /help needs no Omi
    bridge = Bridge(store, omi, ManualClock())
    adapter = TelegramAdapter(make_bot(telegram_settings(fake_api)))
    bridge.register_adapter(adapter, adapter.parse)
    try:
        await bridge.start()  # replays the row; serve starts the platform (getMe) only after this
        await adapter.start()

        [reply] = await fake_api.wait_for("sendMessage")
        assert reply["chat_id"] == ADA and reply["text"].startswith("I save what you send me")
        assert [call.method for call in fake_api.calls] == ["getMe", "sendMessage"]  # parsing waited for getMe
        await bridge.processor.wait_idle()
        assert await store.inbox.pending_count() == 0
    finally:
        await bridge.stop(grace=1.0)
        await adapter.close()
        await store.close()
        await omi.aclose()
