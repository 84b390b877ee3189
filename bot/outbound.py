"""Replies leave through the adapter of their platform; the core never imports an adapter."""

from __future__ import annotations

import logging
from typing import Protocol

from bot.events import Platform, Reply

log = logging.getLogger(__name__)


class ReplySender(Protocol):
    """What an adapter offers the core (opsdroid's `send(event)`): show a reply to a user."""

    platform: Platform

    async def send(self, reply: Reply) -> None: ...


class Outbound:
    """Sends each reply through the adapter registered for its platform."""

    def __init__(self) -> None:
        self._senders: dict[Platform, ReplySender] = {}

    def register(self, sender: ReplySender) -> None:
        self._senders[sender.platform] = sender

    def has(self, platform: Platform) -> bool:
        return platform in self._senders

    async def send(self, reply: Reply) -> None:
        sender = self._senders.get(reply.address.platform)
        if sender is None:
            # E.g. an item queued by a Slack user while this process runs without Slack configured.
            log.warning("outbound: no adapter for %s; reply dropped", reply.address.platform.value)
            return
        try:
            await sender.send(reply)
        except Exception:
            log.exception("outbound: sending a %s reply failed", reply.address.platform.value)

    async def send_all(self, replies: list[Reply]) -> None:
        for reply in replies:
            await self.send(reply)
