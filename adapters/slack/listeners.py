"""Bolt listeners: every request is stored as a job (or found to be ignored) and acknowledged, nothing more.

`process_before_response=True` makes the answer wait for the listener, so "acknowledged" always follows
"accepted"; the core's workers do the rest after the ack. Requests Bolt cannot route come back as a stand-in
body (transport.py) and are taken in by the lenient intake here, with the same `job_for`."""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable
from typing import Any

from slack_bolt.async_app import AsyncApp, AsyncBoltContext
from slack_bolt.context.ack.async_ack import AsyncAck
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_bolt.response import BoltResponse

from adapters.slack.jobs import job_for
from adapters.slack.transport import TAKEN_IN, UNREADABLE
from bot.store import Accepted, Arrival
from bot.store.database import DatabaseUnavailable

log = logging.getLogger(__name__)

Accept = Callable[[Arrival], Awaitable[Accepted]]
ANYTHING = re.compile(r".*", re.DOTALL)


class _UnhandledNotice(logging.Filter):
    """Bolt warns "Unhandled request (…)" with parts of the body for what no listener matched; the bridge reads
    those requests itself (the lenient intake), and message content has no place in the log (SPEC §9)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("Unhandled request")


def register_listeners(app: AsyncApp, accept: Accept) -> None:
    """One intake for every kind of request; `job_for` decides what is kept. Listening to every command,
    shortcut, action, view, options request and event means no signed request falls through to Bolt's 404
    (which makes Slack retry, and can get the event subscription disabled)."""

    async def take_in(body: object, context: AsyncBoltContext) -> BoltResponse | None:
        """Store the request's job; a `BoltResponse` when Slack must not get its 2xx (retry later)."""
        try:
            job = job_for(body, context.bot_user_id)
            if job is not None:
                accepted = await accept(job.arrival())
                if accepted.duplicate:
                    log.info("slack: %s already accepted (a retry); acknowledged again", job.kind.value)
        except DatabaseUnavailable as exc:
            # Not acknowledged: HTTP answers 503 and a Socket Mode envelope stays un-acked, so Slack retries.
            log.error("slack: could not store a request (%s); Slack will retry it", exc)
            return BoltResponse(status=503, body="")
        except Exception as exc:
            # Nothing a retry could fix: acknowledge anyway, never Bolt's 3-s 404; one line, no traceback.
            log.warning("slack: a request could not be taken in (%s); acknowledged and dropped", type(exc).__name__)
        context[TAKEN_IN] = True
        return None

    async def intake(body: dict[str, Any], ack: AsyncAck, context: AsyncBoltContext) -> BoltResponse | None:
        refused = await take_in(body, context)
        if refused is not None:
            return refused
        await ack()
        return None

    async def lenient_intake(
        req: AsyncBoltRequest, context: AsyncBoltContext, next: Callable[[], Awaitable[BoltResponse]]
    ) -> BoltResponse:
        """The stand-in for a request Bolt could not route: signature and authorization were checked as for
        any other; the request as sent is read with the same `job_for`."""
        body = req.body
        if not isinstance(body, dict) or body.get("type") != UNREADABLE:
            return await next()
        original = body.get("original")
        if body.get("crashed") and (not isinstance(original, dict) or job_for(original, context.bot_user_id) is None):
            log.warning("slack: a request of a shape the bridge cannot read was acknowledged and dropped")
        refused = await take_in(original, context)
        return refused if refused is not None else BoltResponse(status=200, body="")

    async def quiet_error(error: Exception) -> None:
        """Bolt's own handlers log a traceback for every request of an odd shape; the bridge reads those
        requests leniently instead (transport.py), so a line is enough."""
        log.info("slack: Bolt could not handle a request (%s)", type(error).__name__)

    if not any(isinstance(f, _UnhandledNotice) for f in app.logger.filters):
        app.logger.addFilter(_UnhandledNotice())
    app.error(quiet_error)
    app.middleware(lenient_intake)
    app.command(ANYTHING)(intake)
    app.shortcut(ANYTHING)(intake)
    app.action(ANYTHING)(intake)
    app.view(ANYTHING)(intake)
    app.view({"type": "view_closed", "callback_id": ANYTHING})(intake)
    app.options(ANYTHING)(intake)
    app.event(ANYTHING)(intake)
