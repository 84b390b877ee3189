"""Optional pacing of every request made with the one app key (SPEC §7, `OMI_MAX_REQUESTS_PER_MINUTE`)."""

from __future__ import annotations

from bot.clock import Clock


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

    async def wait(self) -> None:
        slot = max(self._clock.now(), self._next_slot)
        self._next_slot = slot + self._interval
        await self._clock.sleep_until(slot)
