"""`POST /omi/webhook/<secret>?uid=U` (SPEC §4, §12): Omi's "memory creation" webhook. The secret is checked first
(constant time; wrong → 404, nothing stored), the event — the uid and the conversation id, nothing else of the body
— is stored, then `200 {}` (a JSON answer with a `message` would be posted into the user's Omi chat). A repeat (a
seen Idempotency-Key or a seen uid and conversation id) is answered the same and handled once."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable

from aiohttp import web

from bot.clock import Clock
from bot.pushes.secret import matches
from bot.store.database import DatabaseUnavailable
from bot.store.pushes import Pushes

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 8 * 1024 * 1024
MAX_ID_CHARS = 200


class OmiWebhookRoute:
    def __init__(self, pushes: Pushes, accepted: list[str], clock: Clock, wake: Callable[[], None]) -> None:
        self._pushes = pushes
        self._accepted = accepted
        self._clock = clock
        self._wake = wake

    async def handle(self, request: web.Request) -> web.Response:
        if not matches(request.match_info.get("secret", ""), self._accepted):
            return web.Response(status=404, text="Not Found")
        if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
            return _answer(413, "body too large")
        body = bytearray()
        while chunk := await request.content.readany():  # past the app's 1 MB limit, up to this route's own
            body += chunk
            if len(body) > MAX_BODY_BYTES:
                return _answer(413, "body too large")
        try:
            payload = json.loads(body.decode())
        except (UnicodeDecodeError, ValueError, RecursionError):
            return _answer(400, "body is not JSON")
        uid = request.query.get("uid", "").strip()
        conversation_id = payload.get("id") if isinstance(payload, dict) else None
        if not uid or not isinstance(conversation_id, str) or not 0 < len(conversation_id) <= MAX_ID_CHARS:
            return _answer(400, "expected a conversation (its id) and ?uid=")
        key = request.headers.get("Idempotency-Key", "").strip()[:200] or None
        try:
            stored = await self._pushes.accept_event(uid[:200], conversation_id, key, self._clock.now())
        except DatabaseUnavailable as exc:
            log.error("omi webhook: could not store the event (%s); answered 503, Omi retries", exc)
            return _answer(503, "storage unavailable")
        if stored is not None:
            self._wake()
        return web.json_response({})


def _answer(status: int, text: str) -> web.Response:
    return web.json_response({"error": text}, status=status)
