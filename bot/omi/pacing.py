"""Optional pacing of every request made with the one app key (SPEC §7, `OMI_MAX_REQUESTS_PER_MINUTE`)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from bot.clock import Clock

log = logging.getLogger(__name__)


class RequestPacer:
    """At most `per_minute` requests a minute, evenly spaced: each request takes the next free slot and waits
    for it. Without a pacer the bridge reacts to 429s only."""

    def __init__(self, per_minute: int, clock: Clock) -> None:
        if per_minute < 1:
            raise ValueError("per_minute must be at least 1")
        self.per_minute = per_minute
        self._interval = 60.0 / per_minute
        self._clock = clock
        self._next_slot = 0.0
        self._shared: Callable[[float], Awaitable[float]] | None = None

    @property
    def interval(self) -> float:
        return self._interval

    def share(self, reserve: Callable[[float], Awaitable[float]]) -> None:
        """Pace together with every instance on the database (SPEC §13: the cap is the key's, not a process's):
        `reserve(interval)` takes the key's next slot there and returns the seconds to wait for it."""
        self._shared = reserve

    async def wait(self) -> None:
        if self._shared is not None:
            try:
                delay = await self._shared(self._interval)
            except Exception as exc:  # the database is away: pace this process alone meanwhile
                log.warning("omi: pacing with other instances failed (%s); pacing alone", type(exc).__name__)
            else:
                if delay > 0:
                    await asyncio.sleep(delay)  # the database's clock: real seconds
                return
        slot = max(self._clock.now(), self._next_slot)
        self._next_slot = slot + self._interval
        await self._clock.sleep_until(slot)
