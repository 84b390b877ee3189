"""The two ways Slack reaches the bridge: `POST /slack/events` (signed HTTP) and a Socket Mode websocket.

Bolt routes a request by its shape and trips over odd ones (a float where it expects a dict, an event without
its type). What Bolt cannot route — no listener matched, or its helpers raised — goes through Bolt once more as a
stand-in body that only the bridge's lenient intake reads (listeners.py): still signature-checked (over the
bytes Slack sent) and authorized, then stored if it carries a job. So every validly signed request gets its 2xx
and nothing that had words is lost, whatever its shape (SPEC §4)."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any
from urllib.parse import parse_qsl

from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response
from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler
from slack_bolt.adapter.socket_mode.async_internals import send_async_response
from slack_bolt.adapter.socket_mode.internals import build_headers
from slack_bolt.async_app import AsyncApp
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_bolt.request.internals import parse_body
from slack_bolt.response import BoltResponse
from slack_sdk.signature import SignatureVerifier
from slack_sdk.socket_mode.async_client import AsyncBaseSocketModeClient
from slack_sdk.socket_mode.request import SocketModeRequest

from adapters.slack.jobs import job_for
from bot.store import Accepted, Arrival
from bot.store.database import DatabaseUnavailable

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


class SlashCommands:
    """The fast path for `/omi …` (the request Slack's users wait on most, BENCHMARKS.md §4): a slash command whose
    signature is valid is taken in here — slack_sdk's `SignatureVerifier` (constant time, 5-minute window), the
    body read as Bolt reads it, the same `job_for`, stored, then 200 — without Bolt's request objects, middleware
    chain and listener matching, which cost half of each acknowledgement. It decides nothing Bolt would decide
    otherwise: Bolt's only listener for commands stores the same job and acks with an empty 200, and this app's
    authorization never refuses a request. A bad, missing or stale signature is answered 401 here (for every kind
    of request); other signed requests go to Bolt as before."""

    def __init__(self, signing_secret: str, accept: Callable[[Arrival], Awaitable[Accepted]]) -> None:
        self._verifier = SignatureVerifier(signing_secret)
        self._accept = accept

    def signed(self, raw: str, headers: Mapping[str, str]) -> bool:
        """Slack's signature over these bytes, within 5 minutes. Checked here for every request, so one whose
        timestamp is no number gets its 401 too (Bolt's own check raises on it, and answered 500)."""
        try:
            return self._verifier.is_valid(
                raw, headers.get("X-Slack-Request-Timestamp"), headers.get("X-Slack-Signature")
            )
        except (TypeError, ValueError):
            return False

    async def take(self, raw: str) -> web.Response | None:
        """A signed request's answer when it is a slash command; None when Bolt is to handle it."""
        if "command=" not in raw or raw.startswith("{") or "payload=" in raw:
            return None
        body = dict(parse_qsl(raw, keep_blank_values=True))  # slack_bolt.request.internals.parse_body for forms
        job = job_for(body, None) if body.get("command") and not body.get("ssl_check") else None
        if job is None:
            return None
        try:
            accepted = await self._accept(job.arrival())
        except DatabaseUnavailable as exc:
            log.error("slack: could not store a request (%s); Slack will retry it", exc)
            return web.Response(status=503, text="")
        if accepted.duplicate:
            log.info("slack: %s already accepted (a retry); acknowledged again", job.kind.value)
        return web.Response(status=200, text="")


class EventsRoute:
    """`POST /slack/events`: the signature is checked (bad, missing or stale → 401), slash commands take the fast
    path (`SlashCommands`), Bolt runs the listeners for the rest (and checks the signature again)."""

    def __init__(self, app: AsyncApp, commands: SlashCommands | None = None) -> None:
        self._app = app
        self._commands = commands
        self.closed = False

    async def handle(self, request: web.Request) -> web.Response:
        if self.closed:
            # Stopping: not accepted, so not acknowledged; Slack retries with the next process.
            return web.Response(status=503, text="stopping")
        # Slack signs bytes; a body that is not UTF-8 cannot match its signature (replaced, it gets the 401).
        raw = (await request.read()).decode("utf-8", errors="replace")
        if self._commands is not None:
            if not self._commands.signed(raw, request.headers):
                return web.json_response({"error": "invalid request"}, status=401)
            if (taken := await self._commands.take(raw)) is not None:
                return taken
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
