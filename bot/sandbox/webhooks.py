"""What Omi sends to apps: the setup-completed check before enabling, and the memory-creation webhook.

Setup check (§4.3, §9.5): `GET {url}?uid=` — `?uid=` appended even when the url already has a query string — must
answer 200 (redirects are not followed) with a JSON object whose `is_setup_completed` is truthy.
Webhook (§4.6, §9.7): the whole new conversation POSTed as JSON to the app's webhook url with `uid` appended
(`&uid=` when the url has a query) and an `Idempotency-Key` header that stays the same on a redelivery. Omi skips
discarded conversations and delivers to every app the user enabled that has a webhook, the creating app included.
"""

from __future__ import annotations

import uuid
from collections import deque
from collections.abc import Callable
from http import HTTPStatus
from typing import Any

import httpx

from bot.sandbox.store import AppRecord

SETUP_CHECK_TIMEOUT_SECONDS = 5.0
WEBHOOK_TIMEOUT_SECONDS = 10.0
DELIVERY_LOG_SIZE = 10_000
_KEY_NAMESPACE = uuid.UUID("6f6d6962-7269-6467-6500-776562686f6f")


def setup_check_url(url: str, uid: str) -> str:
    """Omi glues `?uid=` on as is (§9.5): a url with a query gets a second `?`."""
    return f"{url}?uid={uid}"


async def setup_completed(url: str, uid: str) -> bool:
    """Omi's enable check: 200 and a JSON object with a truthy `is_setup_completed`; anything else is "not done"."""
    try:
        async with httpx.AsyncClient(timeout=SETUP_CHECK_TIMEOUT_SECONDS, trust_env=False) as client:
            response = await client.get(setup_check_url(url, uid))
        body = response.json() if response.status_code == HTTPStatus.OK else None
    except (httpx.HTTPError, ValueError):
        return False
    return isinstance(body, dict) and bool(body.get("is_setup_completed"))


def webhook_target(url: str, uid: str) -> str:
    separator = "&" if "?" in url else "?"
    return f"{url}{separator}uid={uid}"


def idempotency_key(app_id: str, conversation_id: str) -> str:
    """The same for every delivery of one conversation to one app, so a redelivery can be recognised."""
    return str(uuid.uuid5(_KEY_NAMESPACE, f"{app_id}:{conversation_id}"))


class Webhooks:
    """Delivers conversations to apps' webhooks and keeps a log of every attempt."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._log: deque[dict[str, Any]] = deque(maxlen=DELIVERY_LOG_SIZE)

    def deliveries(self) -> list[dict[str, Any]]:
        """Every attempt, oldest first: app_id, uid, url, conversation_id, idempotency_key, status, error, at."""
        return list(self._log)

    async def deliver(
        self, app: AppRecord, uid: str, conversation: dict[str, Any], *, times: int = 1
    ) -> list[dict[str, Any]]:
        """POST `conversation` to the app's webhook `times` times (a redelivery keeps its Idempotency-Key)."""
        if not app.webhook_url:
            return []
        target = webhook_target(app.webhook_url, uid)
        key = idempotency_key(app.app_id, conversation["id"])
        attempts = []
        async with httpx.AsyncClient(timeout=WEBHOOK_TIMEOUT_SECONDS, trust_env=False) as client:
            for _ in range(times):
                status: int | None = None
                error: str | None = None
                try:
                    response = await client.post(target, json=conversation, headers={"Idempotency-Key": key})
                    status = response.status_code
                except httpx.HTTPError as exc:
                    error = type(exc).__name__
                attempt = {
                    "app_id": app.app_id,
                    "uid": uid,
                    "url": target,
                    "conversation_id": conversation["id"],
                    "idempotency_key": key,
                    "status": status,
                    "error": error,
                    "at": self._clock(),
                }
                self._log.append(attempt)
                attempts.append(attempt)
        return attempts
