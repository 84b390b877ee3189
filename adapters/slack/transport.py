"""The two ways Slack reaches the bridge: `POST /slack/events` (signed HTTP) and a Socket Mode websocket.

Bolt routes a request by its shape and trips over odd ones (a float where it expects a dict, an event without
its type). What Bolt cannot route — no listener matched, or its helpers raised — goes through Bolt once more as a
stand-in body that only the bridge's lenient intake reads (listeners.py): still signature-checked (over the
bytes Slack sent) and authorized, then stored if it carries a job. So every validly signed request gets its 2xx
and nothing that had words is lost, whatever its shape (SPEC §4)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response
from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler
from slack_bolt.adapter.socket_mode.async_internals import send_async_response
from slack_bolt.adapter.socket_mode.internals import build_headers
from slack_bolt.async_app import AsyncApp
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_bolt.request.internals import parse_body
from slack_bolt.response import BoltResponse
from slack_sdk.socket_mode.async_client import AsyncBaseSocketModeClient
from slack_sdk.socket_mode.request import SocketModeRequest

log = logging.getLogger(__name__)

#: The `type` of the stand-in body; listeners.py takes it in. Slack never sends it (its types have no dot).
UNREADABLE = "omi_bridge.unreadable"
#: Set in a request's context once the bridge's intake has taken it in (stored or found to be ignored).
TAKEN_IN = "omi_bridge_taken_in"


def answered(response: BoltResponse) -> BoltResponse:
    """Bolt's 404 means only "no listener matched" (the signature was already checked): Slack must still get
    its 200, or it retries."""
    if response.status == 404:
        log.info("slack: a request of a kind the bridge ignores was acknowledged")
        return BoltResponse(status=200, body="")
    return response


def stand_in(original: object, crashed: bool) -> dict[str, Any]:
    """The body Bolt routes to the lenient intake: the request as parsed (None when it is no JSON object)."""
    return {"type": UNREADABLE, "original": original if isinstance(original, dict) else None, "crashed": crashed}


async def dispatch(
    app: AsyncApp, build: Callable[[], AsyncBoltRequest], build_stand_in: Callable[[bool], AsyncBoltRequest]
) -> BoltResponse:
    """Bolt as usual; what it could not route, again as a stand-in (see the module's docstring)."""
    crashed = False
    try:
        request = build()
        response = await app.async_dispatch(request)
    except Exception as exc:  # Bolt's request and kwargs helpers assume shapes (TypeError, KeyError, …)
        log.info("slack: Bolt could not read a request (%s); reading it leniently", type(exc).__name__)
        crashed = True
    else:
        if request.context.get(TAKEN_IN) or response.status not in (404, 500):
            return response
        crashed = response.status == 500
    try:
        return answered(await app.async_dispatch(build_stand_in(crashed)))
    except Exception as exc:  # should not happen: the stand-in is a shape Bolt reads
        log.warning("slack: a request could not be read at all (%s); acknowledged and dropped", type(exc).__name__)
        return BoltResponse(status=200, body="")


class EventsRoute:
    """`POST /slack/events`: Bolt checks the signature (bad, missing or stale → 401) and runs the listeners."""

    def __init__(self, app: AsyncApp) -> None:
        self._app = app
        self.closed = False

    async def handle(self, request: web.Request) -> web.Response:
        if self.closed:
            # Stopping: not accepted, so not acknowledged; Slack retries with the next process.
            return web.Response(status=503, text="stopping")
        # Slack signs bytes; a body that is not UTF-8 cannot match its signature (replaced, it gets the 401).
        raw = (await request.read()).decode("utf-8", errors="replace")
        query, headers = request.query_string, dict(request.headers)

        def build() -> AsyncBoltRequest:
            return AsyncBoltRequest(body=raw, query=query, headers=headers)  # type: ignore[arg-type]

        def build_stand_in(crashed: bool) -> AsyncBoltRequest:
            stand = AsyncBoltRequest(body="", query=query, headers=headers)  # type: ignore[arg-type]
            stand.raw_body = raw  # the signature is checked on what Slack sent
            stand.body = stand_in(_parsed(raw, stand.content_type), crashed)
            return stand

        return await to_aiohttp_response(await dispatch(self._app, build, build_stand_in))


def _parsed(raw: str, content_type: str | None) -> object:
    """The body as Bolt reads it (JSON, a form, or a form's `payload` JSON); None when it cannot be read."""
    try:
        return parse_body(raw, content_type)
    except (ValueError, RecursionError):
        return None


class SocketModeIntake(AsyncSocketModeHandler):
    """Socket Mode: an envelope is acknowledged only with a 200 from the listeners (`send_async_response`
    leaves any other status un-acked, so Slack redelivers it)."""

    async def handle(self, client: AsyncBaseSocketModeClient, req: SocketModeRequest) -> None:  # type: ignore[override]
        def build() -> AsyncBoltRequest:
            return AsyncBoltRequest(mode="socket_mode", body=req.payload, headers=build_headers(req))

        def build_stand_in(crashed: bool) -> AsyncBoltRequest:
            body = stand_in(req.payload, crashed)
            return AsyncBoltRequest(mode="socket_mode", body=body, headers=build_headers(req))

        await send_async_response(client, req, await dispatch(self.app, build, build_stand_in), 0.0)
