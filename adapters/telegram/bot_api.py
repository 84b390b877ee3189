"""The python-telegram-bot `Bot`, pointed at the configured Bot API server (api.telegram.org or a self-hosted one)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from telegram import Bot
from telegram.request import HTTPXRequest

from bot.settings import Settings

#: Sends run concurrently across chat users; PTB's default pool of one connection would make them queue and time out.
SEND_CONNECTIONS = 32
#: Long polls hold the connection this long at most (Telegram's own upper bound is 50 s). SPEC §13: at most 10 s, so
#: a poll in flight ends well within the 15 s polling lease (`adapters.telegram.polling`).
POLL_TIMEOUT_SECONDS = 10


class IntakeBot(Bot):
    """A `Bot` that can hand over `getUpdates` as the JSON Telegram sent."""

    async def get_updates_json(
        self, *, offset: int, timeout: int, allowed_updates: Sequence[str]
    ) -> list[dict[str, Any]]:
        """`Bot.get_updates` parses the batch first, and one update this library version cannot parse would fail
        every poll from then on. The bridge stores the JSON and parses each row later, alone."""
        data = {"offset": offset, "timeout": timeout, "allowed_updates": list(allowed_updates)}
        result = await self._post("getUpdates", data, read_timeout=timeout + 10)
        return [update for update in result if isinstance(update, dict)] if isinstance(result, list) else []


def make_bot(settings: Settings) -> IntakeBot:
    assert settings.TELEGRAM_BOT_TOKEN is not None
    return IntakeBot(
        settings.TELEGRAM_BOT_TOKEN.get_secret_value(),
        base_url=settings.TELEGRAM_API_BASE_URL.rstrip("/"),
        base_file_url=settings.telegram_file_base_url,
        request=HTTPXRequest(connection_pool_size=SEND_CONNECTIONS, read_timeout=15.0, pool_timeout=10.0),
        # One long poll at a time; its read timeout is extended by the poll timeout on each request.
        get_updates_request=HTTPXRequest(connection_pool_size=1, read_timeout=10.0),
    )
