"""Telegram's send limits held by several instances together (SPEC §13): every message waits for a slot reserved
in the shared database before it goes, so two senders on one database never pass 1 a second to a chat."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest

from adapters.telegram.adapter import TelegramAdapter
from adapters.telegram.bot_api import make_bot
from adapters.telegram.send import TelegramSender
from bot.clock import ManualClock
from bot.events import Address, Platform, Reply
from bot.store import DatabaseUnavailable, Store
from bot.store.pacing import TELEGRAM_CHAT_GAP, telegram_limits
from tests.telegram.conftest import ADA, telegram_settings

#: Every test here runs on SQLite and on PostgreSQL (tests/conftest.py).
BOTH_ENGINES = True

PRIVATE = Address(Platform.TELEGRAM, chat_id=str(ADA), user_id=str(ADA))


@dataclass
class Paced:
    """One instance's Telegram sender: the slots it reserved and the waits it made (none really slept)."""

    store: Store
    adapter: TelegramAdapter | None = None
    slots: list[tuple[str, float]] = field(default_factory=list)
    waits: list[float] = field(default_factory=list)

    async def reserve(self, chat: str) -> float:
        slot = await self.store.pacing.reserve(telegram_limits(chat))
        self.slots.append((chat, slot.at))
        return slot.wait

    async def wait(self, seconds: float) -> None:
        self.waits.append(seconds)


@pytest.fixture
async def instances(database, fake_api) -> AsyncIterator[list[Paced]]:
    made = []
    for _ in range(2):
        paced = Paced(await Store.open(database, ManualClock()))
        bot = make_bot(telegram_settings(fake_api))
        paced.adapter = TelegramAdapter(bot, TelegramSender(bot, reserve=paced.reserve, wait=paced.wait))
        await paced.adapter.start()
        made.append(paced)
    try:
        yield made
    finally:
        for paced in made:
            await paced.adapter.close()
            await paced.store.close()


async def test_two_senders_on_one_database_keep_a_chat_to_one_message_a_second(instances, fake_api):
    long_text = "\n".join(f"line {n} " + "x" * 90 for n in range(60))  # over 4096 characters: two messages
    replies = [Reply(PRIVATE, text=f"reply {n}") for n in range(3)] + [Reply(PRIVATE, text=long_text)]
    await asyncio.gather(*(paced.adapter.send(reply) for paced in instances for reply in replies))

    sent = await fake_api.wait_for("sendMessage", count=10)
    assert len(sent) == 10
    slots = sorted(at for paced in instances for chat, at in paced.slots if chat == str(ADA))
    assert len(slots) == 10  # one reservation for each message, parts of a long reply included
    assert min(later - earlier for earlier, later in itertools.pairwise(slots)) >= TELEGRAM_CHAT_GAP - 1e-6
    # Each sender waited for its slots: the first message of all went at once, every later one waited.
    waits = sorted(wait for paced in instances for wait in paced.waits)
    assert len(waits) == 9 and waits[0] > 0


async def test_a_message_goes_without_a_slot_when_the_database_is_away(fake_api):
    async def unavailable(chat: str) -> float:
        raise DatabaseUnavailable("server closed the connection")

    waits: list[float] = []

    async def wait(seconds: float) -> None:
        waits.append(seconds)

    bot = make_bot(telegram_settings(fake_api))
    adapter = TelegramAdapter(bot, TelegramSender(bot, reserve=unavailable, wait=wait))
    await adapter.start()
    try:
        await adapter.send(Reply(PRIVATE, text="Saved 1 message."))
        [sent] = await fake_api.wait_for("sendMessage")
        assert sent["text"] == "Saved 1 message." and waits == []
    finally:
        await adapter.close()
