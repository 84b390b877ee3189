"""The Slack adapter the core sees: a parser for stored jobs (run after the ack), a reply sender, a time zone."""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import tzinfo
from typing import Any

from slack_sdk.web.async_client import AsyncWebClient

from adapters.slack import convert
from adapters.slack.channels import ChannelDirectory
from adapters.slack.client import CALL_ERRORS, api_error
from adapters.slack.home import home_view
from adapters.slack.jobs import SAVE_THREAD, JobKind, as_dict, as_str
from adapters.slack.people import Directory
from adapters.slack.send import SlackSender
from adapters.slack.threads import ThreadUnreadable, fetch_thread, unreadable_text
from bot.bridge import AccountSummary
from bot.clock import Clock
from bot.events import InboundMessage, Platform, Reply
from bot.store import InboxRow

log = logging.getLogger(__name__)

Summary = Callable[[str], Awaitable[AccountSummary]]


class SlackAdapter:
    platform = Platform.SLACK

    def __init__(self, client: AsyncWebClient, clock: Clock, summary: Summary) -> None:
        self._client = client
        self._summary = summary
        self.people = Directory(client, clock)
        self.channels = ChannelDirectory(client, clock)
        self.sender = SlackSender(client, clock)

    # --- the core's hooks -----------------------------------------------------------------------------

    async def send(self, reply: Reply) -> None:
        await self.sender.send(reply)

    def timezone(self, message: InboundMessage) -> tzinfo | None:
        """The user's own zone from `users.info` (cached when their message was parsed)."""
        person = self.people.known(message.sender_id)
        return person.zone if person is not None else None

    async def parse(self, row: InboxRow) -> InboundMessage | None:
        """A stored job as a message; `UnreadableJob` (logged once by processing) when its shape lacks what its
        kind needs."""
        body = json.loads(row.payload)
        if not isinstance(body, dict):
            raise convert.UnreadableJob("not a JSON object")
        kind = JobKind(row.kind)
        if kind is JobKind.COMMAND:
            return await convert.command_message(body, row.received_at, self.people, self.channels)
        if kind is JobKind.ACTION:
            return await convert.action_message(body, row.received_at, self.people)
        if kind is JobKind.EVENT:
            return await convert.direct_message(body, self.people, self.channels, row.received_at)
        if kind is JobKind.SHORTCUT:
            invoker = await convert.shortcut_invoker(body, row.received_at, self.people)
            if body.get("callback_id") == SAVE_THREAD:
                return await self._with_thread(invoker, body)
            channel = as_str(as_dict(body.get("channel")).get("id"))
            target = await convert.channel_message(as_dict(body.get("message")), channel, self.people, self.channels)
            return replace(invoker, reply_to=target)
        if not as_str(body.get("user")):
            raise convert.UnreadableJob("no user")
        await self._publish_home(as_str(body.get("user")))
        return None

    # --- work that needs Slack after the ack ------------------------------------------------------------

    async def _with_thread(self, invoker: InboundMessage, body: dict[str, Any]) -> InboundMessage | None:
        channel = as_dict(body.get("channel"))
        channel_id = as_str(channel.get("id"))
        thread_ts = convert.parse_ts(body.get("thread_ts"))
        if thread_ts is None:
            raise convert.UnreadableJob("a thread reference without its ts")
        try:
            raw = await fetch_thread(self._client, channel_id, thread_ts)
        except ThreadUnreadable as exc:
            log.info("slack: could not read a thread (%s)", exc.error)
            text = unreadable_text(exc.error, as_str(channel.get("name")) or None)
            await self.sender.send(Reply(invoker.address(), text=text, ephemeral=True))
            return None
        attached = [await convert.channel_message(message, channel_id, self.people, self.channels) for message in raw]
        return replace(invoker, attached=tuple(attached))

    async def _publish_home(self, user_id: str) -> None:
        summary = await self._summary(f"{Platform.SLACK.value}:{user_id}")
        try:
            await self._client.views_publish(user_id=user_id, view=home_view(summary))
        except CALL_ERRORS as exc:
            log.warning("slack: views.publish failed (%s)", api_error(exc))
