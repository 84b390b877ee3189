"""Helpers for the sandbox tests: a running sandbox with one enabled app and an httpx client speaking raw HTTP."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx

from bot.sandbox import Sandbox, SandboxApp

UID = "user-1"
START = 1_710_460_800.0  # 2024-03-15T00:00:00Z

#: (method, path after /v2/integrations/{app_id}, a valid JSON body or None) for each integration route.
ROUTE_CALLS: dict[str, tuple[str, str, Any]] = {
    "create_conversation": (
        "POST",
        "/user/conversations",
        {"text": "We planned the quarterly project review meeting for Friday."},
    ),
    "create_memories": ("POST", "/user/memories", {"text": None, "memories": [{"content": "User likes green tea"}]}),
    "read_conversations": ("GET", "/conversations", None),
    "read_memories": ("GET", "/memories", None),
    "search_conversations": ("POST", "/search/conversations", {"query": ""}),
    "notification": ("POST", "/notification", None),
}


class FakeClock:
    """Epoch seconds that move only when a test says so."""

    def __init__(self, now: float = START) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class Omi:
    """A started sandbox, an app enabled for `UID` with every capability, and a client."""

    sandbox: Sandbox
    http: httpx.AsyncClient
    app: SandboxApp
    clock: FakeClock

    async def call(
        self,
        route: str,
        *,
        uid: str | None = UID,
        key: str | None = None,
        app_id: str | None = None,
        json: Any = ...,
        params: Any = None,
        headers: dict[str, str] | None = None,
    ) -> httpx.Response:
        """One request to an integration route; `key=""` sends no Authorization header, `json=...` the valid body."""
        method, path, body = ROUTE_CALLS[route]
        query: list[tuple[str, str]] = [] if uid is None else [("uid", uid)]
        if route == "notification":
            query.append(("message", "hello from the app"))
        query += list(params.items() if isinstance(params, dict) else params or [])
        sent_headers = dict(headers or {})
        api_key = self.app.api_key if key is None else key
        if api_key:
            sent_headers.setdefault("Authorization", f"Bearer {api_key}")
        return await self.http.request(
            method,
            f"/v2/integrations/{app_id or self.app.app_id}{path}",
            params=query,
            json=body if json is ... else json,
            headers=sent_headers,
        )

    async def create(self, text: str, **fields: Any) -> httpx.Response:
        response = await self.call("create_conversation", json={"text": text, **fields})
        assert response.status_code == 200, response.text
        return response

    async def remember(self, body: dict[str, Any], uid: str = UID) -> httpx.Response:
        response = await self.call("create_memories", json=body, uid=uid)
        assert response.status_code == 200, response.text
        return response


@contextlib.asynccontextmanager
async def running_omi(**options: Any) -> AsyncIterator[Omi]:
    clock = options.pop("clock", None) or FakeClock()
    sandbox = Sandbox(clock=clock, **options)
    base_url = await sandbox.start("127.0.0.1", 0)
    app = sandbox.create_app()
    sandbox.enable(app.app_id, UID)
    try:
        async with httpx.AsyncClient(base_url=base_url, trust_env=False, timeout=10) as http:
            yield Omi(sandbox, http, app, clock)
    finally:
        await sandbox.stop()
        sandbox.close()


def detail(response: httpx.Response) -> Any:
    return response.json()["detail"]
