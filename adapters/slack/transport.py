"""The two ways Slack reaches the bridge: `POST /slack/events` (signed HTTP) and a Socket Mode websocket."""

from __future__ import annotations

import logging

from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response, to_bolt_request
from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler
from slack_bolt.adapter.socket_mode.async_internals import run_async_bolt_app, send_async_response
from slack_bolt.async_app import AsyncApp
from slack_bolt.response import BoltResponse
from slack_sdk.socket_mode.async_client import AsyncBaseSocketModeClient
from slack_sdk.socket_mode.request import SocketModeRequest

log = logging.getLogger(__name__)


def answered(response: BoltResponse) -> BoltResponse:
    """Bolt's 404 means only "no listener matched" (the signature was already checked): a request type the
    listeners do not cover, e.g. `app_rate_limited`. Slack must still get its 200, or it retries."""
    if response.status == 404:
        log.info("slack: a request of a kind the bridge ignores was acknowledged")
        return BoltResponse(status=200, body="")
    return response


class EventsRoute:
    """`POST /slack/events`: Bolt checks the signature (bad, missing or stale → 401) and runs the listeners."""

    def __init__(self, app: AsyncApp) -> None:
        self._app = app
        self.closed = False

    async def handle(self, request: web.Request) -> web.Response:
        if self.closed:
            # Stopping: not accepted, so not acknowledged; Slack retries with the next process.
            return web.Response(status=503, text="stopping")
        response = answered(await self._app.async_dispatch(await to_bolt_request(request)))
        return await to_aiohttp_response(response)


class SocketModeIntake(AsyncSocketModeHandler):
    """Socket Mode: an envelope is acknowledged only with a 200 from the listeners (`send_async_response`
    leaves any other status un-acked, so Slack redelivers it)."""

    async def handle(self, client: AsyncBaseSocketModeClient, req: SocketModeRequest) -> None:  # type: ignore[override]
        response = answered(await run_async_bolt_app(self.app, req))
        await send_async_response(client, req, response, 0.0)
