"""`POST /telegram/webhook` (SPEC §4): secret first, then size, JSON, storage; 200 only once the update is accepted."""

from __future__ import annotations

import hmac
import json
import logging
from collections.abc import Awaitable, Callable

from aiohttp import web

from adapters.telegram.intake import arrival_for
from bot.store import Accepted, Arrival, DatabaseUnavailable

log = logging.getLogger(__name__)

PATH = "/telegram/webhook"
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"  # noqa: S105 - a header name
MAX_BODY_BYTES = 1024 * 1024


class WebhookRoute:
    """The route is always there while Telegram is configured; it takes updates only while `open`."""

    def __init__(self, accept: Callable[[Arrival], Awaitable[Accepted]]) -> None:
        self._accept = accept
        self._secret: bytes | None = None
        self.open = False

    def enable(self, secret: str) -> None:
        self._secret = secret.encode()
        self.open = True

    async def handle(self, request: web.Request) -> web.Response:
        given = request.headers.get(SECRET_HEADER, "").encode()
        # Constant time, and checked before anything else: a stranger learns nothing and stores nothing.
        if self._secret is None or not hmac.compare_digest(given, self._secret):
            return _answer(403, "forbidden")
        if not self.open:
            return _answer(503, "not taking updates right now")  # stopping: Telegram retries later
        if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
            return _answer(413, "body too large")
        try:
            body = await request.read()
        except web.HTTPRequestEntityTooLarge:
            return _answer(413, "body too large")
        if len(body) > MAX_BODY_BYTES:
            return _answer(413, "body too large")
        try:
            text = body.decode()
            payload = json.loads(text)
        except (UnicodeDecodeError, json.JSONDecodeError):
            return _answer(400, "body is not JSON")
        except (ValueError, RecursionError):
            # JSON, but not for Python to hold (nested thousands deep, a number of 5,000 digits): no usable
            # update, so stored as it came and answered 200 like any other (SPEC §4).
            payload = None
        try:
            await self._accept(arrival_for(payload, text))
        except DatabaseUnavailable as exc:
            log.error("telegram webhook: could not store the update (%s); answered 503, Telegram retries", exc)
            return _answer(503, "storage unavailable")
        return _answer(200, "ok")


def _answer(status: int, text: str) -> web.Response:
    return web.Response(status=status, text=text)
