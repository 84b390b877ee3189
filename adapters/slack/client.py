"""The Slack Web API client as configured (any base URL, rate-limit retries), and its errors as plain codes."""

from __future__ import annotations

import aiohttp
from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.http_retry.builtin_async_handlers import (
    AsyncConnectionErrorRetryHandler,
    AsyncRateLimitErrorRetryHandler,
)
from slack_sdk.web.async_client import AsyncWebClient

#: What a Web API call can raise: Slack's `ok: false`, a transport error, a timeout.
CALL_ERRORS = (SlackClientError, aiohttp.ClientError, TimeoutError)
TIMEOUT_SECONDS = 30
#: auth.test errors that mean the bot token itself is wrong (not Slack being unreachable).
BAD_TOKEN_ERRORS = ("invalid_auth", "not_authed", "account_inactive", "token_revoked", "token_expired")


def web_client(token: str, base_url: str) -> AsyncWebClient:
    """`base_url` must end in `/` (urljoin drops the last path segment otherwise: `…/api` → `…/`)."""
    return AsyncWebClient(
        token=token,
        base_url=base_url if base_url.endswith("/") else base_url + "/",
        timeout=TIMEOUT_SECONDS,
        # Slack answers bursts of calls with 429 + Retry-After; waiting that long once or twice beats failing.
        retry_handlers=[AsyncConnectionErrorRetryHandler(), AsyncRateLimitErrorRetryHandler(max_retry_count=2)],
    )


def shared_session() -> aiohttp.ClientSession:
    """The session the Web API client and the response_url replies share (in the running loop): no proxies from
    the environment, the calls' own timeout."""
    return aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=TIMEOUT_SECONDS), trust_env=False)


def api_error(exc: BaseException) -> str:
    """Slack's error code (`not_in_channel`, `ratelimited`, …) or the exception's type: safe to log and show."""
    if isinstance(exc, SlackApiError):
        return str(exc.response.get("error") or "unknown_error")
    return type(exc).__name__
