"""Slack in `serve`: the Bolt app, its transport (HTTP route or Socket Mode), the adapter, the health check."""

from __future__ import annotations

import asyncio
import logging

from slack_bolt.async_app import AsyncApp
from slack_bolt.authorization import AuthorizeResult
from slack_sdk.errors import SlackApiError

from adapters.slack.adapter import SlackAdapter
from adapters.slack.client import BAD_TOKEN_ERRORS, CALL_ERRORS, api_error, shared_session, web_client
from adapters.slack.files import SlackAudio
from adapters.slack.jobs import session_hint
from adapters.slack.listeners import register_listeners
from adapters.slack.transport import EventsRoute, SlashCommands, SocketModeIntake
from bot.bridge import Bridge
from bot.platforms import PlatformUnavailable
from bot.settings import Settings, SettingsError
from bot.web.server import WebServer

log = logging.getLogger(__name__)

EVENTS_PATH = "/slack/events"
BOLT_APP_NAME = "slack_bolt.omi-bridge"
#: apps.connections.open errors that mean the app-level token is wrong (a bot token given there, for one).
BAD_APP_TOKEN_ERRORS = (*BAD_TOKEN_ERRORS, "not_allowed_token_type")
#: How long one try at opening the Socket Mode websocket may take.
SOCKET_CONNECT_SECONDS = 20.0


class _TokenFromClientNotice(logging.Filter):
    """Bolt reads SLACK_BOT_TOKEN from os.environ on its own and warns that it is unused (a client is given) or
    ignored (an `authorize` is given). Both on purpose; the warnings would only puzzle operators."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return "`token` will be unused" not in message and "will be ignored" not in message


class _ReconnectLine(logging.Filter):
    """The Socket Mode client logs each failed (re)connection, every 10 s while Slack is away, with a traceback:
    one WARN line says the same."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and record.getMessage().startswith("Failed to connect"):
            record.exc_info, record.exc_text = None, None
            record.levelno, record.levelname = logging.WARNING, logging.getLevelName(logging.WARNING)
        return True


def bolt_logger() -> logging.Logger:
    """Bolt's loggers, under `slack_bolt` (quiet below WARNING, see bot/logs.py). A logger named after the app
    gets its level pinned by Bolt, so the app's name is kept inside that tree too. The Socket Mode client logs
    through it as well."""
    logger = logging.getLogger(BOLT_APP_NAME)
    for kind in (_TokenFromClientNotice, _ReconnectLine):
        if not any(isinstance(f, kind) for f in logger.filters):
            logger.addFilter(kind())
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
        self._bot_token = settings.SLACK_BOT_TOKEN.get_secret_value()
        self.client = web_client(self._bot_token, settings.SLACK_API_URL)
        #: Who the bot is, from auth.test at sign-in; until then Bolt is told the token alone (`_authorize`).
        self._signed_in: AuthorizeResult | None = None
        # The token goes in through `client=` only; "" keeps Bolt from reading a signing secret from os.environ.
        self.app = AsyncApp(
            name=BOLT_APP_NAME,
            logger=bolt_logger(),
            client=self.client,
            signing_secret=secret or "",
            process_before_response=True,
            # A plain function: Bolt passes arguments by the callable's parameter names (a method's `self` too).
            authorize=lambda enterprise_id, team_id: self._authorize(enterprise_id, team_id),
        )
        register_listeners(self.app, bridge.accept)
        self.adapter = SlackAdapter(self.client, bridge.clock, bridge.account_summary)
        bridge.register_adapter(
            self.adapter,
            self.adapter.parse,
            timezone=self.adapter.timezone,
            session_hint=session_hint,
            audio=SlackAudio(self.client, self._bot_token),  # audio files in DMs, for transcription (SPEC §11)
        )
        self.route = EventsRoute(self.app, SlashCommands(secret, bridge.accept) if secret else None)
        if self._app_token is None:
            web.app.router.add_post(EVENTS_PATH, self.route.handle)  # in Socket Mode the path stays a 404
        web.components["slack"] = self.health
        web.options.slack = True
        self.socket: SocketModeIntake | None = None
        self.identity: str | None = None
        self._state = "starting"

    @property
    def socket_mode(self) -> bool:
        return self._app_token is not None

    async def start(self) -> None:
        """One try: auth.test (who the bot is), and in Socket Mode the websocket. While Slack cannot be reached,
        `PlatformUnavailable` (serve tries again; the HTTP route stays open meanwhile); a token Slack refuses,
        `SettingsError`."""
        if self.client.session is None or self.client.session.closed:
            # One session (and its kept-alive connections) for every call and reply: slack_sdk otherwise opens a
            # session and a connection per call. Made here, inside the running loop; closed by `close()`.
            self.client.session = shared_session()
        self.identity = await self._sign_in()
        if self._app_token is not None:
            await self._open_socket(self._app_token)
        self._state = "ok"
        log.info("slack: signed in as %s (%s)", self.identity, "Socket Mode" if self.socket_mode else "HTTP")

    async def _authorize(self, enterprise_id: str | None, team_id: str | None) -> AuthorizeResult:
        """Bolt's authorization of each request, without a call to Slack. Bolt's own single-workspace check calls
        auth.test on the first request and, when Slack answers an error, acknowledges the request with an apology
        and drops it; a validly signed request must be stored instead (its bot's own messages are recognised by
        `bot_id`, so the bot's user id is not needed to take it in)."""
        if self._signed_in is not None:
            return self._signed_in
        return AuthorizeResult(enterprise_id=enterprise_id, team_id=team_id, bot_token=self._bot_token)

    async def _sign_in(self) -> str:
        try:
            answer = await self.client.auth_test()
        except SlackApiError as exc:
            error = api_error(exc)
            if error in BAD_TOKEN_ERRORS:  # a wrong token: `serve` stops with one line naming it
                raise SettingsError(f"invalid setting SLACK_BOT_TOKEN: Slack refused it ({error})") from None
            raise self._down(f"auth.test failed: {error}", exc) from None
        except CALL_ERRORS as exc:
            raise self._down(f"auth.test failed: {api_error(exc)}", exc) from None
        self._signed_in = AuthorizeResult.from_auth_test_response(auth_test_response=answer, bot_token=self._bot_token)
        return f"@{answer.get('user')} in {answer.get('team')}"

    async def _open_socket(self, app_token: str) -> None:
        """apps.connections.open here (so a refused app token is told apart from an outage), then the websocket.
        Once it is up, the client reconnects on its own whenever Slack drops it."""
        if self.socket is None:
            self.socket = SocketModeIntake(self.app, app_token)
        try:
            opened = await self.client.apps_connections_open(app_token=app_token)
        except SlackApiError as exc:
            error = api_error(exc)
            if error in BAD_APP_TOKEN_ERRORS:
                raise SettingsError(f"invalid setting SLACK_APP_TOKEN: Slack refused it ({error})") from None
            raise self._down(f"apps.connections.open failed: {error}", exc) from None
        except CALL_ERRORS as exc:
            raise self._down(f"apps.connections.open failed: {api_error(exc)}", exc) from None
        self.socket.client.wss_uri = opened["url"]
        try:
            await asyncio.wait_for(self.socket.connect_async(), SOCKET_CONNECT_SECONDS)
        except TimeoutError:
            self.socket.client.wss_uri = None  # the next try asks for a fresh URL
            raise self._down("the Socket Mode websocket did not open") from None

    def _down(self, reason: str, exc: BaseException | None = None) -> PlatformUnavailable:
        self._state = f"down: {reason}; retrying"
        return PlatformUnavailable(reason, retry_after=_retry_after(exc))

    async def stop(self) -> None:
        """Intake first: no new requests or envelopes; the core's workers finish what was accepted."""
        self.route.closed = True
        self._state = "stopped"
        if self.socket is not None:
            await self.socket.close_async()

    async def close(self) -> None:
        """The Web API session goes last (the core's workers have finished), so replies work until the end."""
        session, self.client.session = self.client.session, None
        if session is not None:
            await session.close()

    async def health(self) -> str:
        if self._state != "ok":
            return self._state
        if self.socket is not None:
            return "ok (Socket Mode)" if await self.socket.client.is_connected() else "connecting (Socket Mode)"
        return "ok"


def _retry_after(exc: BaseException | None) -> float | None:
    """Slack's Retry-After on a `ratelimited` answer (the client already waited it out twice)."""
    if not isinstance(exc, SlackApiError):
        return None
    try:
        return float(exc.response.headers.get("Retry-After", ""))
    except (TypeError, ValueError, AttributeError):
        return None
