"""The python-telegram-bot `Bot`, pointed at the configured Bot API server (api.telegram.org or a self-hosted one)."""

from __future__ import annotations

from telegram import Bot
from telegram.request import HTTPXRequest

from bot.settings import Settings

#: Sends run concurrently across chat users; PTB's default pool of one connection would make them queue and time out.
SEND_CONNECTIONS = 32
#: Long polls hold the connection this long at most (Telegram's own upper bound is 50 s).
POLL_TIMEOUT_SECONDS = 25


def make_bot(settings: Settings) -> Bot:
    assert settings.TELEGRAM_BOT_TOKEN is not None
    return Bot(
        settings.TELEGRAM_BOT_TOKEN.get_secret_value(),
        base_url=settings.TELEGRAM_API_BASE_URL.rstrip("/"),
        base_file_url=settings.telegram_file_base_url,
        request=HTTPXRequest(connection_pool_size=SEND_CONNECTIONS, read_timeout=15.0, pool_timeout=10.0),
        # A long poll is one connection; its read timeout is extended by the poll timeout per request.
        get_updates_request=HTTPXRequest(connection_pool_size=1, read_timeout=10.0),
    )
