"""httpx transports for tests that must control when (or whether) Omi's answers reach the bridge."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import httpx


def creates_conversations(request: httpx.Request) -> bool:
    return request.method == "POST" and request.url.path.endswith("/user/conversations")


def creates_memories(request: httpx.Request) -> bool:
    return request.method == "POST" and request.url.path.endswith("/user/memories")


class HeldResponses(httpx.AsyncBaseTransport):
    """A real transport whose answers to matching requests (conversation creates by default) are held until
    `release()`: the request reaches Omi, which may write, but the bridge hears back only when the test says so."""

    def __init__(self, matches: Callable[[httpx.Request], bool] = creates_conversations) -> None:
        self._inner = httpx.AsyncHTTPTransport()
        self._matches = matches
        self._gate = asyncio.Event()
        self.arrived = asyncio.Event()

    def release(self) -> None:
        self._gate.set()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self._inner.handle_async_request(request)
        if self._matches(request):
            body = await response.aread()
            self.arrived.set()
            await self._gate.wait()
            return httpx.Response(response.status_code, headers=response.headers, content=body)
        return response

    async def aclose(self) -> None:
        await self._inner.aclose()


class Recording(httpx.AsyncBaseTransport):
    """A real transport that records every request's path, JSON body and the moment (on `now`) it went out."""

    def __init__(self, now: Callable[[], float]) -> None:
        self._inner = httpx.AsyncHTTPTransport()
        self._now = now
        self.sent: list[tuple[str, str, Any, float]] = []  # (method, path, body, at)
        self._changed = asyncio.Condition()

    def posts(self) -> int:
        return sum(1 for method, *_ in self.sent if method == "POST")

    async def until(self, predicate: Callable[[], bool], timeout: float = 5.0) -> None:
        """Wait (at most `timeout`) until `predicate()` holds, re-checked after each recorded request."""
        async with asyncio.timeout(timeout), self._changed:
            await self._changed.wait_for(predicate)

    def bodies(self, matches: Callable[[httpx.Request], bool] = creates_memories) -> list[Any]:
        return [body for method, path, body, _ in self.sent if matches(httpx.Request(method, "http://x" + path))]

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        raw = request.content
        self.sent.append((request.method, request.url.path, json.loads(raw) if raw else None, self._now()))
        async with self._changed:
            self._changed.notify_all()
        return await self._inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self._inner.aclose()


class Exploding(httpx.AsyncBaseTransport):
    """Every request fails with an error no Omi client maps: the bridge's own bug, say."""

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        raise RuntimeError("a bug, not an Omi answer")
