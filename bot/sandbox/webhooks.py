"""What Omi sends to apps: the setup-completed check before enabling, and the memory-creation webhook.

Setup check (§4.3, §9.5): `GET {url}?uid=` — `?uid=` appended even when the url already has a query string — must
answer 200 (redirects are not followed) with a JSON object whose `is_setup_completed` is truthy.
Webhook (§4.6, §9.7): the whole new conversation POSTed as JSON to the app's webhook url with `uid` appended
(`&uid=` when the url has a query) and an `Idempotency-Key` header that stays the same on a retry or redelivery. Omi
skips discarded conversations and delivers to every app the user enabled that has a webhook, the creating app
included. Deliveries run in the background (the create's answer never waits for them); connection errors and 5xx
answers are retried after each of `retry_delays`; an answer `{"message": "…"}` (which Omi would store as a chat
message from the app) is kept in the delivery log.
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from http import HTTPStatus
from typing import Any

import httpx

from bot.sandbox.store import AppRecord

log = logging.getLogger("bot.sandbox")

SETUP_CHECK_TIMEOUT_SECONDS = 5.0
WEBHOOK_TIMEOUT_SECONDS = 10.0
#: Seconds to wait before the 2nd and 3rd try of a delivery that met a connection error or a 5xx.
RETRY_DELAYS = (0.2, 0.5)
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


def check_webhook_url(url: str | None) -> str | None:
    """An app's webhook url: None (no webhook) or an absolute http(s) url; ValueError otherwise."""
    if url is None:
        return None
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL:
        parsed = None
    if parsed is None or parsed.scheme not in ("http", "https") or not parsed.host:
        raise ValueError(f"the webhook url must be an absolute http(s) url, not {url!r}")
    return url


def webhook_target(url: str, uid: str) -> str:
    separator = "&" if "?" in url else "?"
    return f"{url}{separator}uid={uid}"


def idempotency_key(app_id: str, conversation_id: str) -> str:
    """One per delivery event (a conversation to an app): the same on every retry and redelivery of it."""
    return str(uuid.uuid5(_KEY_NAMESPACE, f"{app_id}:{conversation_id}"))


def _answer_message(response: httpx.Response) -> str | None:
    try:
        body = response.json()
    except ValueError:
        return None
    message = body.get("message") if isinstance(body, dict) else None
    return message if isinstance(message, str) else None


class Webhooks:
    """Delivers conversations to apps' webhooks in the background and keeps a log of every attempt."""

    def __init__(self, clock: Callable[[], float], retry_delays: Sequence[float] = RETRY_DELAYS) -> None:
        self._clock = clock
        self._retry_delays = tuple(retry_delays)
        self._log: deque[dict[str, Any]] = deque(maxlen=DELIVERY_LOG_SIZE)
        self._tasks: set[asyncio.Task[None]] = set()

    def deliveries(self) -> list[dict[str, Any]]:
        """Every attempt, oldest first: app_id, uid, url, conversation_id, idempotency_key, attempt (1, 2, …),
        status (None when no answer came), error (the exception's name, or None), message (an answer's
        `"message"`, or None), at."""
        return list(self._log)

    def in_flight(self) -> int:
        return sum(not task.done() for task in self._tasks)

    def fire(self, apps: Iterable[AppRecord], uid: str, conversation: dict[str, Any], *, times: int = 1) -> int:
        """Start delivering `conversation` to each app with a webhook url (`times` > 1 redelivers it after each
        delivery, keeping its Idempotency-Key, as Omi's at-least-once delivery may). Returns how many apps.

        Discarded conversations are skipped, as Omi does. Needs a running event loop.
        """
        if conversation.get("discarded"):
            return 0
        body = json.dumps(conversation, ensure_ascii=False, separators=(",", ":")).encode()
        loop = asyncio.get_running_loop()
        started = 0
        for app in apps:
            if not app.webhook_url:
                continue
            task = loop.create_task(self._deliver(app, uid, conversation["id"], body, times))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
            started += 1
        return started

    async def idle(self) -> None:
        """Return once no delivery is in flight (deliveries started while waiting are waited for too)."""
        while pending := [task for task in self._tasks if not task.done()]:
            await asyncio.wait(pending)

    async def close(self) -> None:
        """Cancel the deliveries still in flight (a stopping sandbox does not wait out their retries)."""
        tasks = [task for task in self._tasks if not task.done()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _deliver(self, app: AppRecord, uid: str, conversation_id: str, body: bytes, times: int) -> None:
        assert app.webhook_url
        target = webhook_target(app.webhook_url, uid)
        key = idempotency_key(app.app_id, conversation_id)
        headers = {"Idempotency-Key": key, "Content-Type": "application/json"}
        attempt = {
            "app_id": app.app_id,
            "uid": uid,
            "url": target,
            "conversation_id": conversation_id,
            "idempotency_key": key,
        }
        try:
            async with httpx.AsyncClient(timeout=WEBHOOK_TIMEOUT_SECONDS, trust_env=False) as client:
                for _ in range(times):
                    await self._with_retries(client, target, body, headers, attempt)
        except Exception:  # a bug here must not vanish silently in a background task
            log.exception("sandbox webhook delivery to %s failed", target)

    async def _with_retries(
        self,
        client: httpx.AsyncClient,
        target: str,
        body: bytes,
        headers: dict[str, str],
        attempt: dict[str, Any],
    ) -> None:
        delays = (*self._retry_delays, None)
        for number, delay in enumerate(delays, start=1):
            status: int | None = None
            error: str | None = None
            message: str | None = None
            try:
                response = await client.post(target, content=body, headers=headers)
                status = response.status_code
                message = _answer_message(response)
            except httpx.HTTPError as exc:
                error = type(exc).__name__
            self._log.append(
                attempt | {"attempt": number, "status": status, "error": error, "message": message, "at": self._clock()}
            )
            log.debug("sandbox webhook %s try %d -> %s", target, number, status or error)
            if status is not None and status < HTTPStatus.INTERNAL_SERVER_ERROR:
                return
            if delay is not None:
                await asyncio.sleep(delay)
