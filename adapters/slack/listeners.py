"""Bolt listeners: every request is stored as a job (or found to be ignored) and acknowledged, nothing more.

`process_before_response=True` makes the answer wait for the listener, so "acknowledged" always follows
"accepted"; the core's workers do the rest after the ack."""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable
from typing import Any

from slack_bolt.async_app import AsyncApp, AsyncBoltContext
from slack_bolt.context.ack.async_ack import AsyncAck
from slack_bolt.response import BoltResponse

from adapters.slack.jobs import job_for
from bot.store import Accepted, Arrival
from bot.store.database import DatabaseUnavailable

log = logging.getLogger(__name__)

Accept = Callable[[Arrival], Awaitable[Accepted]]
ANYTHING = re.compile(r".*", re.DOTALL)


def register_listeners(app: AsyncApp, accept: Accept) -> None:
    """One intake for every kind of request; `job_for` decides what is kept. Listening to every command,
    shortcut, action, view, options request and event means no signed request falls through to Bolt's 404
    (which makes Slack retry, and can get the event subscription disabled)."""

    async def intake(body: dict[str, Any], ack: AsyncAck, context: AsyncBoltContext) -> BoltResponse | None:
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
        except Exception:
            # Nothing a retry could fix (a payload we cannot read): acknowledge anyway, never Bolt's 3-s 404.
            log.exception("slack: a request could not be taken in; acknowledged and dropped")
        await ack()
        return None

    app.command(ANYTHING)(intake)
    app.shortcut(ANYTHING)(intake)
    app.action(ANYTHING)(intake)
    app.view(ANYTHING)(intake)
    app.view({"type": "view_closed", "callback_id": ANYTHING})(intake)
    app.options(ANYTHING)(intake)
    app.event(ANYTHING)(intake)
