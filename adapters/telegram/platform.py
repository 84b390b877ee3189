"""Telegram in `omi-bridge serve`: the adapter registered with the bridge, and its transport (webhook or polling)."""

from __future__ import annotations

import logging
import secrets

from telegram import BotCommand
from telegram.constants import BotCommandLimit
from telegram.error import BadRequest, InvalidToken, NetworkError, RetryAfter, TelegramError

from adapters.telegram.adapter import TelegramAdapter
from adapters.telegram.bot_api import make_bot
from adapters.telegram.exports import TelegramExports
from adapters.telegram.files import TelegramAudio
from adapters.telegram.intake import ALLOWED_UPDATES, session_hint
from adapters.telegram.polling import LEASE_NAME, LEASE_SECONDS, Poller
from adapters.telegram.send import TelegramSender, retry_seconds
from adapters.telegram.webhook import PATH, WebhookRoute
from bot.bridge import Bridge
from bot.commands import REGISTRY
from bot.leasing import HeldLease
from bot.platforms import PlatformUnavailable
from bot.settings import Settings, SettingsError
from bot.web.server import WebServer

log = logging.getLogger(__name__)

SECRET_KEY = "telegram_webhook_secret"  # noqa: S105 - the name it is stored under
#: What of a Bot API error text /healthz and the log show at most.
REASON_LENGTH = 120


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
        bot = make_bot(settings)
        # Telegram's send limits hold across instances: each message's slot is reserved in the shared database.
        self.adapter = TelegramAdapter(bot, TelegramSender(bot, reserve=bridge.store.pacing.telegram))
        bridge.register_adapter(
            self.adapter,
            self.adapter.parse,
            session_hint=session_hint,
            exports=TelegramExports(bot),
            audio=TelegramAudio(bot),
        )
        self.webhook_url = settings.TELEGRAM_WEBHOOK_URL
        # Served in polling mode too, where no secret is right: 403, like any request without the secret.
        self.route = WebhookRoute(bridge.accept)
        web.app.router.add_post(PATH, self.route.handle)
        self.poller: Poller | None = None
        if self.webhook_url is None:
            # One instance polls at a time (SPEC §13): the holder of the polling lease, named like the delivery
            # worker's leases. With SQLite (one process per file) this instance always holds it.
            lease = HeldLease(bridge.store.db, LEASE_NAME, bridge.worker.instance, LEASE_SECONDS)
            self.poller = Poller(self.adapter.bot, bridge.accept, bridge.store.values, lease)
        web.components[self.name] = self.health
        self._secret: str | None = None
        self._username: str | None = None
        self._state = "starting"

    async def start(self) -> None:
        """One try: getMe, the command menu, then the webhook set (or removed, for polling) and intake running.
        While the Bot API cannot be reached, `PlatformUnavailable` (serve tries again); a refused token or
        webhook URL, `SettingsError`."""
        if self.webhook_url is not None and self._secret is None:
            # The secret needs no network: updates are taken in (and wait for getMe) while the Bot API is down.
            self._secret = await self._webhook_secret()
            self.route.enable(self._secret)
        try:
            username = await self._start_bot()
        except InvalidToken:  # its text holds the token: never shown
            raise SettingsError("invalid setting TELEGRAM_BOT_TOKEN: Telegram rejected it") from None
        except RetryAfter as exc:
            raise self._down("the Bot API asks to wait (flood control)", retry_after=retry_seconds(exc)) from None
        except TelegramError as exc:  # network errors, timeouts, 5xx; a 4xx here is the Bot API's trouble too
            raise self._down(f"cannot reach the Bot API ({self._describe(exc)})") from None
        mode = "webhook" if self.poller is None else "polling"
        self._username = username
        self._state = f"ok: {mode} as @{username}"
        log.info("telegram: started as @%s (%s)", username, mode)

    async def _start_bot(self) -> str:
        bot = self.adapter.bot
        username = await self.adapter.start()
        self._web.options.telegram_username = username
        try:
            await bot.set_my_commands(bot_commands())
        except NetworkError:
            raise
        except TelegramError as exc:
            log.warning("telegram: setting the command menu failed (%s); the commands still work", exc)
        if self.poller is None:
            assert self.webhook_url is not None
            try:
                await bot.set_webhook(
                    self.webhook_url, secret_token=self._secret, allowed_updates=list(ALLOWED_UPDATES)
                )
            except BadRequest as exc:
                raise SettingsError(f"invalid setting TELEGRAM_WEBHOOK_URL: Telegram refused it ({exc})") from None
        else:
            # Pending updates stay with Telegram: they are fetched (and committed) by the first polls.
            await bot.delete_webhook(drop_pending_updates=False)
            await self.poller.start()
        return username

    def _down(self, reason: str, *, retry_after: float | None = None) -> PlatformUnavailable:
        self._state = f"down: {reason}; retrying"
        return PlatformUnavailable(reason, retry_after=retry_after)

    def _describe(self, exc: TelegramError) -> str:
        """The error's type and text, without the token (a Bot API URL contains it), short enough for a line."""
        text = str(exc).replace(self.adapter.bot.token, "***")
        text = text if len(text) <= REASON_LENGTH else text[: REASON_LENGTH - 1] + "…"
        return f"{type(exc).__name__}: {text}" if text else type(exc).__name__

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
        if self.poller is not None and self.poller.standing_by and self._state.startswith("ok:"):
            # Not a problem: another instance holds the polling lease; this one takes over if that one dies.
            return f"ok: standby as @{self._username} (polling runs on another instance)"
        return self._state

    async def _webhook_secret(self) -> str:
        if self._settings.TELEGRAM_WEBHOOK_SECRET is not None:
            return self._settings.TELEGRAM_WEBHOOK_SECRET.get_secret_value()
        return await self._bridge.store.values.get_or_create(SECRET_KEY, lambda: secrets.token_urlsafe(32))
