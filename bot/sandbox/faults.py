"""Injected misbehaviour per route: a status, one of Omi's real error shapes (`kind`), a delay, a dropped connection.

A fault answers before validation and auth, except an `after_write` one, which lets the route do its work first
(the write is stored) and then answers the fault instead. Kinds (behaviour notes §9.2–9.4):

- `byok_rate_limit`: 429 `{"detail": {"code": "byok_rate_limit", "message": …}}`, no `Retry-After`, no
  `X-RateLimit-*` (the user's own LLM key is limited at their provider, not the app's quota);
- `provider_unavailable`: 503 `{"detail": {"code": "provider_unavailable", "message": …}}`;
- `memory_writes_paused`, `memory_write_control_invalid`: 503 with those details, before the write (memories only);
- `memory_readback_unavailable`: 503 `Canonical memory write readback unavailable` *after* the write (memories only);
- `load_balancer_429`: a 429 from in front of Omi: plain text `Too Many Requests` (or `body`), no Omi detail,
  `Retry-After` only when `retry_after` is given.

On the API core flavor every 5xx answers `{"error": …}` without `detail`, as its infrastructure errors do.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

from aiohttp import web

from bot.sandbox.exceptions import (
    CONVERSATION_FAILED_DETAIL,
    MEMORY_READBACK_UNAVAILABLE,
    MEMORY_WRITE_CONTROL_INVALID,
    MEMORY_WRITES_PAUSED,
    detail_response,
    error_response,
    notifications_maximum_detail,
    requests_maximum_detail,
    retry_in_detail,
    status_phrase,
)
from bot.sandbox.urls import CREATE_ROUTES, ROUTES
from bot.sandbox.validation import json_response


@dataclass(frozen=True)
class FaultKind:
    """One of Omi's real error answers, injectable by name."""

    status: int
    detail: Any
    routes: tuple[str, ...] = ROUTES
    after_write: bool = False
    retry_after_allowed: bool = False


FAULT_KINDS: dict[str, FaultKind] = {
    "byok_rate_limit": FaultKind(
        429,
        {"code": "byok_rate_limit", "message": "Your LLM provider rate-limited your API key. Try again later."},
        CREATE_ROUTES,
    ),
    "provider_unavailable": FaultKind(
        503,
        {"code": "provider_unavailable", "message": "The LLM provider is unavailable. Try again later."},
        CREATE_ROUTES,
    ),
    "memory_writes_paused": FaultKind(503, MEMORY_WRITES_PAUSED, ("create_memories",)),
    "memory_write_control_invalid": FaultKind(503, MEMORY_WRITE_CONTROL_INVALID, ("create_memories",)),
    "memory_readback_unavailable": FaultKind(503, MEMORY_READBACK_UNAVAILABLE, ("create_memories",), after_write=True),
    "load_balancer_429": FaultKind(429, None, retry_after_allowed=True),
}


@dataclass
class Fault:
    """A misbehaviour to inject on one route, consumed `times` times (None: until cleared).

    `body`, when set, is the whole answer body (a str is sent as text/plain, anything else as JSON).
    """

    route: str
    status: int | None = None
    detail: Any = None
    delay: float = 0.0
    drop: bool = False
    after_write: bool = False
    retry_after: float | None = None
    times: int | None = 1
    kind: str | None = None
    body: Any = None

    @property
    def answers(self) -> bool:
        """Whether the fault replaces the route's answer (rather than only delaying it)."""
        return self.drop or self.status is not None


def make_fault(
    route: str,
    *,
    status: int | None = None,
    detail: Any = None,
    delay: float = 0.0,
    drop: bool = False,
    after_write: bool = False,
    retry_after: float | None = None,
    times: int | None = 1,
    kind: str | None = None,
    body: Any = None,
) -> Fault:
    """A checked Fault; ValueError names what is wrong."""
    if route not in ROUTES:
        raise ValueError(f"unknown route {route!r}; routes: {', '.join(ROUTES)}")
    if times is not None and times < 1:
        raise ValueError("times must be 1 or more (None: until cleared)")
    if delay < 0:
        raise ValueError("delay must not be negative")
    if status is not None and not 100 <= status <= 599:
        raise ValueError("status must be an HTTP status code")
    if kind is not None:
        shape = FAULT_KINDS.get(kind)
        if shape is None:
            raise ValueError(f"unknown fault kind {kind!r}; kinds: {', '.join(FAULT_KINDS)}")
        if route not in shape.routes:
            raise ValueError(f"fault kind {kind!r} happens on {', '.join(shape.routes)} only")
        if status is not None and status != shape.status:
            raise ValueError(f"fault kind {kind!r} answers {shape.status}, not {status}")
        if retry_after is not None and not shape.retry_after_allowed:
            raise ValueError(f"Omi sends no Retry-After with {kind!r}")
        status = shape.status
        after_write = after_write or shape.after_write
    return Fault(route, status, detail, delay, drop, after_write, retry_after, times, kind, body)


class FaultBook:
    """The faults waiting on each route, used in the order they were added."""

    def __init__(self) -> None:
        self._faults: dict[str, deque[Fault]] = {route: deque() for route in ROUTES}

    def add(self, fault: Fault) -> Fault:
        self._faults[fault.route].append(fault)
        return fault

    def clear(self) -> None:
        for faults in self._faults.values():
            faults.clear()

    def take(self, route: str) -> Fault | None:
        faults = self._faults[route]
        if not faults:
            return None
        fault = faults[0]
        if fault.times is not None:
            fault.times -= 1
            if fault.times == 0:
                faults.popleft()
        return fault


def fault_response(fault: Fault, *, plain_infrastructure_errors: bool, limit: int) -> web.Response:
    """The answer a fault gives; `limit` is the route's configured hourly limit (for the default 429 text)."""
    status = fault.status or HTTPStatus.GATEWAY_TIMEOUT
    if fault.body is not None:
        if isinstance(fault.body, str):
            return web.Response(status=status, text=fault.body, headers=_retry_after(fault))
        return json_response(fault.body, status, _retry_after(fault))
    if fault.kind == "load_balancer_429":
        return web.Response(status=status, text=fault.detail or "Too Many Requests", headers=_retry_after(fault))
    if status == HTTPStatus.GATEWAY_TIMEOUT and fault.detail is None:
        return web.Response(status=status)  # Omi's request timeout answers with an empty body
    detail = fault.detail
    if detail is None:
        detail = (
            FAULT_KINDS[fault.kind].detail
            if fault.kind
            else _default_detail(fault, status, plain_infrastructure_errors, limit)
        )
    if plain_infrastructure_errors and status >= 500:
        message = detail.get("message", status_phrase(status)) if isinstance(detail, dict) else str(detail)
        return error_response(status, message)
    headers: dict[str, str] = {}
    if status == HTTPStatus.TOO_MANY_REQUESTS and fault.kind is None:
        headers = {"X-RateLimit-Remaining": "0"} | _retry_after(fault)
    return detail_response(status, detail, headers)


def _retry_after(fault: Fault) -> dict[str, str]:
    return {} if fault.retry_after is None else {"Retry-After": str(math.ceil(fault.retry_after))}


def _default_detail(fault: Fault, status: int, api_core: bool, limit: int) -> str:
    if status == HTTPStatus.TOO_MANY_REQUESTS:
        if api_core:
            return requests_maximum_detail(limit or 10)
        if fault.route == "notification":
            return notifications_maximum_detail(limit + 1 if limit else 10)
        if fault.retry_after is not None:
            return retry_in_detail(math.ceil(fault.retry_after))
        return "Rate limit exceeded."
    if status == HTTPStatus.INTERNAL_SERVER_ERROR and fault.route == "create_conversation" and not api_core:
        return CONVERSATION_FAILED_DETAIL
    return status_phrase(status)
