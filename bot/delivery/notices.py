"""Telling users about deliveries, in the background and in order per account; a wait is told once per reason."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Sequence
from typing import Protocol

from bot.store import OutboxItem

log = logging.getLogger(__name__)


class Outcomes(Protocol):
    """Where delivery results go: back to the user through the adapter that brought the message."""

    async def delivered(self, items: Sequence[OutboxItem], *, discarded: bool = False) -> None: ...

    async def waiting(self, item: OutboxItem, reason: str, retry_at: float) -> None: ...

    async def failed(self, item: OutboxItem, reason: str) -> None: ...


class Notices:
    """A slow chat platform must not hold a delivery slot: each message goes out as a task, after the one before
    to the same account."""

    def __init__(self, outcomes: Outcomes) -> None:
        self._outcomes = outcomes
        self._telling: dict[str, asyncio.Task[None]] = {}  # account -> its latest message
        self._told_waiting: set[tuple[str, str]] = set()  # (account, reason) told once per wait

    def delivered(self, items: Sequence[OutboxItem], *, discarded: bool = False) -> None:
        items = [item for item in items if item.import_id is None]
        if not items:
            return  # an import's items are told as one progress, never one by one (SPEC §10)
        account = items[0].account
        self._told_waiting = {key for key in self._told_waiting if key[0] != account}  # the wait is over
        self._tell(account, self._outcomes.delivered(items, discarded=discarded))

    def waiting(self, item: OutboxItem, reason: str, retry_at: float) -> None:
        if item.import_id is not None:
            return
        key = (item.account, reason)
        if key not in self._told_waiting:
            self._told_waiting.add(key)
            self._tell(item.account, self._outcomes.waiting(item, reason, retry_at))

    def failed(self, item: OutboxItem, reason: str) -> None:
        if item.import_id is not None:
            return  # listed by `omi-bridge import` and the import's progress message
        self._tell(item.account, self._outcomes.failed(item, reason))

    def in_flight(self) -> list[asyncio.Task[None]]:
        return list(self._telling.values())

    def _tell(self, account: str, awaitable: Awaitable[None]) -> None:
        previous = self._telling.get(account)

        async def tell() -> None:
            if previous is not None:
                await asyncio.gather(previous, return_exceptions=True)
            try:
                await awaitable
            except Exception:
                log.exception("delivery: telling the user failed (the item itself is settled)")

        task = asyncio.create_task(tell(), name=f"tell:{account}")
        self._telling[account] = task
        task.add_done_callback(
            lambda done: self._telling.pop(account, None) if self._telling.get(account) is done else None
        )
