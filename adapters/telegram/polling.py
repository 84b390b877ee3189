"""Long polling without losing anything: each `getUpdates` batch is accepted (committed) before the next offset
confirms it to Telegram, and the offset is kept in the database so a restart resumes where it stopped."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from telegram.error import Conflict, Forbidden, InvalidToken, NetworkError, RetryAfter, TelegramError

from adapters.telegram.bot_api import POLL_TIMEOUT_SECONDS, IntakeBot
from adapters.telegram.intake import ALLOWED_UPDATES, arrival_for
from adapters.telegram.send import retry_seconds
from bot.backoff import Backoff
from bot.store import Accepted, Arrival, DatabaseUnavailable
from bot.store.values import StoredValues

log = logging.getLogger(__name__)

OFFSET_KEY = "telegram_offset"


class Poller:
    def __init__(
        self,
        bot: IntakeBot,
        accept: Callable[[Arrival], Awaitable[Accepted]],
        values: StoredValues,
        *,
        poll_timeout: int = POLL_TIMEOUT_SECONDS,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        backoff: Backoff | None = None,
    ) -> None:
        self._bot = bot
        self._accept = accept
        self._values = values
        self._poll_timeout = poll_timeout
        self._sleep = sleep
        self._backoff = backoff or Backoff()
        self._task: asyncio.Task[None] | None = None
        self.problem: str | None = None  # what the health check shows while polling fails

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="telegram-polling")

    async def stop(self) -> None:
        """Ends the loop wherever it is: a batch not yet committed is simply asked for again after a restart."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    async def _run(self) -> None:
        offset: int | None = None
        while True:
            try:
                if offset is None:  # read in the loop: a database that is not writable yet is retried too
                    offset = int(await self._values.get(OFFSET_KEY) or 0)
                updates = await self._fetch(offset)
                offset = await self._commit(updates, offset)
            except asyncio.CancelledError:
                raise
            except RetryAfter as exc:
                self._failed("flood control")
                await self._sleep(retry_seconds(exc))
                continue
            except Exception as exc:
                reason = _reason(exc)
                if reason.startswith("unexpected") and reason != self.problem:
                    log.exception("telegram polling: unexpected error")  # once, not on every retry
                self._failed(reason)
                await self._sleep(self._backoff.next_delay())
                continue
            self._backoff.reset()
            self.problem = None

    async def _fetch(self, offset: int) -> list[dict[str, Any]]:
        return await self._bot.get_updates_json(
            offset=offset, timeout=self._poll_timeout, allowed_updates=ALLOWED_UPDATES
        )

    async def _commit(self, updates: list[dict[str, Any]], offset: int) -> int:
        """Accept the whole batch (concurrent accepts share one commit), then store the next offset. Only the
        next getUpdates with that offset tells Telegram it may forget them."""
        if not updates:
            return offset
        await asyncio.gather(*(self._accept(arrival_for(update)) for update in updates))
        ids = [update["update_id"] for update in updates if isinstance(update.get("update_id"), int)]
        next_offset = max([offset - 1, *ids]) + 1
        if next_offset != offset:
            await self._values.set(OFFSET_KEY, str(next_offset))
        return next_offset

    def _failed(self, reason: str) -> None:
        if self.problem != reason:
            log.warning("telegram polling: %s; retrying with backoff", reason)
        self.problem = reason


def _reason(exc: Exception) -> str:
    if isinstance(exc, DatabaseUnavailable):
        return "the database is not writable, updates stay with Telegram"
    if isinstance(exc, Conflict):
        return "another getUpdates or a webhook is active for this bot"
    if isinstance(exc, InvalidToken | Forbidden):
        return "Telegram refused the bot token"
    if isinstance(exc, NetworkError):
        return f"network error ({type(exc).__name__})"
    if isinstance(exc, TelegramError):
        return f"Telegram error ({type(exc).__name__})"
    return f"unexpected error ({type(exc).__name__})"
