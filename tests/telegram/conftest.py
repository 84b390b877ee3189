"""Telegram test fixtures: the fake Bot API, recorded updates, and the real adapter on the in-process bridge."""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from adapters.telegram.adapter import TelegramAdapter
from adapters.telegram.bot_api import make_bot
from adapters.telegram.exports import TelegramExports
from adapters.telegram.intake import arrival_for
from adapters.telegram.platform import TelegramPlatform
from bot.metrics import Metrics
from bot.settings import Settings
from bot.web.server import WebServer
from tests.harness import Env
from tests.telegram.fake_bot_api import FakeBotApi

FIXTURES = Path(__file__).parent / "fixtures"
ADA = 1001  # the user in every fixture's private chat
GROUP = -1001234567890


def recorded(name: str) -> Any:
    """A recorded update (or a list of them) from fixtures/, as a fresh copy to modify."""
    return copy.deepcopy(json.loads((FIXTURES / f"{name}.json").read_text()))


def telegram_settings(api: FakeBotApi, **extra: Any) -> Settings:
    values = {"TELEGRAM_BOT_TOKEN": api.token, "TELEGRAM_API_BASE_URL": api.base_url, **extra}
    return Settings(_env_file=None, **values)


@pytest.fixture
async def fake_api():
    api = await FakeBotApi().start()
    try:
        yield api
    finally:
        await api.stop()


@dataclass
class TelegramChat:
    """The bridge of the `env` fixture with the real Telegram adapter, talking to the fake Bot API."""

    env: Env
    api: FakeBotApi
    adapter: TelegramAdapter

    async def receive(self, *updates: dict[str, Any]) -> list[bool]:
        """Updates as a transport hands them over (accepted, then processed); False for a duplicate."""
        fresh = []
        for update in updates:
            accepted = await self.env.bridge.accept(arrival_for(update))
            fresh.append(not accepted.duplicate)
        await self.env.bridge.processor.wait_idle()
        return fresh

    async def link(self, user_id: int = ADA) -> None:
        await self.env.store.links.link_verified(f"telegram:{user_id}", self.env.uid)

    async def deliver(self) -> None:
        """The burst window passes and the delivery worker does its work."""
        await self.env.close_bursts()
        await self.env.settle()

    async def reply(self, chat_id: int = ADA, count: int = 1) -> str:
        """The `count`-th message the bot sent to `chat_id` (waits for it)."""
        calls = await self.api.wait_for("sendMessage", lambda p: str(p["chat_id"]) == str(chat_id), count=count)
        return calls[count - 1]["text"]

    def conversations(self) -> list[dict[str, Any]]:
        return self.env.sandbox.conversations(self.env.uid)


@pytest.fixture
async def telegram(env, fake_api):
    adapter = TelegramAdapter(make_bot(telegram_settings(fake_api)), download_retry_wait=0.01)
    # Replaces the harness's chat adapter for Telegram (and fetches exports sent to import, SPEC §10).
    env.bridge.register_adapter(adapter, adapter.parse, exports=TelegramExports(adapter.bot, retry_wait=0.01))
    await adapter.start()
    try:
        yield TelegramChat(env, fake_api, adapter)
    finally:
        await adapter.close()


@dataclass
class Transport:
    """Starts TelegramPlatforms (webhook or polling, by settings) on the `env` bridge; stops them all at the end."""

    env: Env
    api: FakeBotApi
    running: list[tuple[TelegramPlatform, WebServer]]

    async def start(self, **settings: Any) -> tuple[TelegramPlatform, WebServer]:
        web = WebServer(self.env.bridge, Metrics())
        platform = TelegramPlatform(telegram_settings(self.api, **settings), self.env.bridge, web)
        await platform.start()
        self.running.append((platform, web))
        return platform, web

    async def stop(self, platform: TelegramPlatform) -> None:
        for entry in list(self.running):
            if entry[0] is platform:
                self.running.remove(entry)
                await platform.stop()
                await entry[1].stop()
                await platform.close()


@pytest.fixture
async def transport(env, fake_api):
    made = Transport(env, fake_api, [])
    try:
        yield made
    finally:
        for platform, web in reversed(made.running):
            await web.stop()
            await platform.stop()
            await platform.close()


def command(name: str, *, user_id: int = ADA, message_id: int = 500, args: str = "") -> dict[str, Any]:
    """A private-chat command as Telegram sends it (the update_id is left to the fake)."""
    update = recorded("command_start")
    del update["update_id"]
    message = update["message"]
    message["message_id"] = message_id
    message["text"] = f"/{name} {args}".strip()
    message["entities"][0]["length"] = len(name) + 1
    if user_id != ADA:
        message["from"] = {"id": user_id, "is_bot": False, "first_name": "Charles", "last_name": "Babbage"}
        message["chat"] = {"id": user_id, "first_name": "Charles", "last_name": "Babbage", "type": "private"}
    return update
