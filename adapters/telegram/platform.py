"""Telegram in `omi-bridge serve`: the adapter registered with the bridge, and its transport (webhook or polling)."""

from __future__ import annotations

import asyncio
import logging
import secrets

from telegram import BotCommand
from telegram.constants import BotCommandLimit
from telegram.error import BadRequest, InvalidToken, NetworkError, TelegramError

from adapters.telegram.adapter import TelegramAdapter
from adapters.telegram.bot_api import make_bot
from adapters.telegram.intake import ALLOWED_UPDATES, session_hint
from adapters.telegram.polling import Backoff, Poller
from adapters.telegram.webhook import PATH, WebhookRoute
from bot.bridge import Bridge
from bot.commands import REGISTRY
from bot.settings import Settings, SettingsError
from bot.web.server import WebServer

log = logging.getLogger(__name__)

SECRET_KEY = "telegram_webhook_secret"  # noqa: S105 - the name it is stored under
#: How often `start` tries to reach the Bot API before giving up (the process manager then restarts us).
CONNECT_ATTEMPTS = 6


def bot_commands() -> list[BotCommand]:
    """The command menu: every listed command with its help, within Telegram's description limit."""
    limit = BotCommandLimit.MAX_DESCRIPTION
    commands = []
    for spec in REGISTRY.listed():
        text = spec.help if len(spec.help) <= limit else spec.help[: limit - 1] + "…"
        commands.append(BotCommand(spec.name, text))
    return commands


class TelegramPlatform:
    name = "telegram"

    def __init__(self, settings: Settings, bridge: Bridge, web: WebServer) -> None:
        self._settings = settings
        self._bridge = bridge
        self._web = web
        self.adapter = TelegramAdapter(make_bot(settings))
        bridge.register_adapter(self.adapter, self.adapter.parse, session_hint=session_hint)
        self.webhook_url = settings.TELEGRAM_WEBHOOK_URL
        # Served in polling mode too, where no secret is right: 403, like any request without the secret.
        self.route = WebhookRoute(bridge.accept)
        web.app.router.add_post(PATH, self.route.handle)
        self.poller: Poller | None = None
        if self.webhook_url is None:
            self.poller = Poller(self.adapter.bot, bridge.accept, bridge.store.settings)
        web.components[self.name] = self.health
        self._state = "starting"

    async def start(self) -> None:
        bot = self.adapter.bot
        username = await self._connect()
        self._web.options.telegram_username = username
        try:
            await bot.set_my_commands(bot_commands())
        except TelegramError as exc:
            log.warning("telegram: setting the command menu failed (%s); the commands still work", exc)
        if self.webhook_url is not None:
            secret = await self._webhook_secret()
            self.route.enable(secret)
            try:
                await bot.set_webhook(self.webhook_url, secret_token=secret, allowed_updates=list(ALLOWED_UPDATES))
            except BadRequest as exc:
                raise SettingsError(f"invalid setting TELEGRAM_WEBHOOK_URL: Telegram refused it ({exc})") from None
            self._state = f"ok: webhook as @{username}"
        else:
            assert self.poller is not None
            # Pending updates stay with Telegram: they are fetched (and committed) by the first polls.
            await bot.delete_webhook(drop_pending_updates=False)
            self.poller.start()
            self._state = f"ok: polling as @{username}"
        log.info("telegram: started as @%s (%s)", username, "polling" if self.poller is not None else "webhook")

    async def stop(self) -> None:
        """Intake only: the route answers 503 and polling ends. Replies still go out until `close()`."""
        self.route.open = False
        if self.poller is not None:
            await self.poller.stop()
        self._state = "stopped"

    async def close(self) -> None:
        """After the delivery worker's grace: the Bot's connections."""
        await self.adapter.close()

    async def health(self) -> str:
        if self.poller is not None and self.poller.problem is not None:
            return f"degraded: {self.poller.problem}"
        return self._state

    async def _connect(self) -> str:
        """getMe, retried with backoff while the network fails; a refused token is a settings error."""
        backoff = Backoff(cap=10.0)
        for attempt in range(1, CONNECT_ATTEMPTS + 1):
            try:
                return await self.adapter.start()
            except InvalidToken:
                raise SettingsError("invalid setting TELEGRAM_BOT_TOKEN: Telegram rejected it") from None
            except NetworkError as exc:
                if attempt == CONNECT_ATTEMPTS:
                    raise
                log.warning("telegram: cannot reach the Bot API (%s); retrying", type(exc).__name__)
                await asyncio.sleep(backoff.next())
        raise AssertionError("unreachable")

    async def _webhook_secret(self) -> str:
        if self._settings.TELEGRAM_WEBHOOK_SECRET is not None:
            return self._settings.TELEGRAM_WEBHOOK_SECRET.get_secret_value()
        return await self._bridge.store.settings.get_or_create(SECRET_KEY, lambda: secrets.token_urlsafe(32))
