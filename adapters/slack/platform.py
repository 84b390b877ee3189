"""Slack in `serve`: the Bolt app, its transport (HTTP route or Socket Mode), the adapter, the health check."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from slack_bolt.async_app import AsyncApp
from slack_sdk.errors import SlackApiError

from adapters.slack.adapter import SlackAdapter
from adapters.slack.client import BAD_TOKEN_ERRORS, CALL_ERRORS, api_error, web_client
from adapters.slack.jobs import session_hint
from adapters.slack.listeners import register_listeners
from adapters.slack.transport import EventsRoute, SocketModeIntake
from bot.bridge import Bridge
from bot.settings import Settings, SettingsError
from bot.web.server import WebServer

log = logging.getLogger(__name__)

EVENTS_PATH = "/slack/events"
BOLT_APP_NAME = "slack_bolt.omi-bridge"


class _TokenFromClientNotice(logging.Filter):
    """Bolt reads SLACK_BOT_TOKEN from os.environ on its own and warns that it is unused when a client is given.
    It is unused on purpose (the client carries it); the warning would only puzzle operators."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "`token` will be unused" not in record.getMessage()


def bolt_logger() -> logging.Logger:
    """Bolt's loggers, under `slack_bolt` (quiet below WARNING, see bot/logs.py). A logger named after the app
    gets its level pinned by Bolt, so the app's name is kept inside that tree too."""
    logger = logging.getLogger(BOLT_APP_NAME)
    if not any(isinstance(f, _TokenFromClientNotice) for f in logger.filters):
        logger.addFilter(_TokenFromClientNotice())
    return logger


class SlackPlatform:
    name = "slack"

    def __init__(self, settings: Settings, bridge: Bridge, web: WebServer) -> None:
        assert settings.SLACK_BOT_TOKEN is not None
        self._app_token = settings.SLACK_APP_TOKEN.get_secret_value() if settings.SLACK_APP_TOKEN else None
        secret = settings.SLACK_SIGNING_SECRET.get_secret_value() if settings.SLACK_SIGNING_SECRET else None
        if self._app_token is None and secret is None:
            raise SettingsError(
                "invalid setting SLACK_SIGNING_SECRET: required for Slack's HTTP mode"
                " (or set SLACK_APP_TOKEN to use Socket Mode)"
            )
        self.client = web_client(settings.SLACK_BOT_TOKEN.get_secret_value(), settings.SLACK_API_URL)
        # The token goes in through `client=` only; "" keeps Bolt from reading a signing secret from os.environ.
        self.app = AsyncApp(
            name=BOLT_APP_NAME,
            logger=bolt_logger(),
            client=self.client,
            signing_secret=secret or "",
            process_before_response=True,
        )
        register_listeners(self.app, bridge.accept)
        self.adapter = SlackAdapter(self.client, bridge.clock, bridge.account_summary)
        bridge.register_adapter(
            self.adapter, self.adapter.parse, timezone=self.adapter.timezone, session_hint=session_hint
        )
        self.route = EventsRoute(self.app)
        if self._app_token is None:
            web.app.router.add_post(EVENTS_PATH, self.route.handle)  # in Socket Mode the path stays a 404
        web.components["slack"] = self.health
        web.options.slack = True
        self.socket: SocketModeIntake | None = None
        self._connecting: asyncio.Task[None] | None = None
        self.identity: str | None = None
        self._problem: str | None = None

    @property
    def socket_mode(self) -> bool:
        return self._app_token is not None

    async def _sign_in(self) -> None:
        """auth.test: who the bot is, or why Slack could not say (kept for the health check)."""
        try:
            answer = await self.client.auth_test()
        except SlackApiError as exc:
            self._problem = api_error(exc)
            if self._problem in BAD_TOKEN_ERRORS:  # a wrong token: `serve` stops with one line naming it
                raise SettingsError(f"invalid setting SLACK_BOT_TOKEN: Slack refused it ({self._problem})") from None
        except CALL_ERRORS as exc:
            self._problem = api_error(exc)
        else:
            self.identity, self._problem = f"@{answer.get('user')} in {answer.get('team')}", None

    async def start(self) -> None:
        await self._sign_in()
        if self._problem is not None:
            log.warning("slack: auth.test failed (%s); requests are taken in and Slack is tried again", self._problem)
        else:
            log.info("slack: signed in as %s (%s)", self.identity, "Socket Mode" if self.socket_mode else "HTTP")
        if self._app_token is not None:
            self.socket = SocketModeIntake(self.app, self._app_token)
            # In the background: the library retries an unreachable Slack forever, and the web server must come up.
            self._connecting = asyncio.create_task(self.socket.connect_async(), name="slack-socket-mode")

    async def stop(self) -> None:
        """Intake first: no new requests or envelopes; the core's workers finish what was accepted."""
        self.route.closed = True
        if self._connecting is not None:
            self._connecting.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._connecting
        if self.socket is not None:
            await self.socket.close_async()

    async def close(self) -> None:
        """Nothing to release: the Web API client opens a session per call, so replies work until the end."""

    async def health(self) -> str:
        if self.socket is not None:
            return "ok (Socket Mode)" if await self.socket.client.is_connected() else "connecting (Socket Mode)"
        if self._problem is not None:
            with contextlib.suppress(SettingsError):  # a token revoked since start shows as the problem
                await self._sign_in()
        return "ok" if self._problem is None else f"auth.test failed: {self._problem}"
