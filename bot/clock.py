"""Time as a parameter: the real clock in production, a manual one in tests (no sleeps, no patching)."""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from typing import Protocol


class Clock(Protocol):
    #: How many of this clock's seconds pass per real second: 1, except on the test-only time scale
    #: (`OMI_BRIDGE_TIME_SCALE`), where durations handed to the database's clock (leases) are divided by it.
    scale: float

    def now(self) -> float:
        """Seconds since the epoch."""
        ...

    async def sleep_until(self, deadline: float) -> None:
        """Return once `now() >= deadline` (at once if it already is)."""
        ...


class SystemClock:
    scale = 1.0

    def now(self) -> float:
        return time.time()

    async def sleep_until(self, deadline: float) -> None:
        delay = deadline - time.time()
        if delay > 0:
            await asyncio.sleep(delay)


class ScaledClock:
    """Test-only (`OMI_BRIDGE_TIME_SCALE`, refused unless Omi is on loopback): real time sped up `scale` times from
    `origin`, so the 2- and 10-minute looks of SPEC §7 pass in seconds in multi-process tests. Processes given the
    same origin and scale agree on the time."""

    def __init__(self, scale: float, origin: float) -> None:
        self.scale = scale
        self._origin = origin

    def now(self) -> float:
        return self._origin + (time.time() - self._origin) * self.scale

    async def sleep_until(self, deadline: float) -> None:
        delay = (deadline - self.now()) / self.scale
        if delay > 0:
            await asyncio.sleep(delay)


class ManualClock:
    """A clock that moves only when a test calls `advance`; sleepers wake in deadline order."""

    scale = 1.0

    def __init__(self, start: float = 1_780_000_000.0) -> None:
        self._now = start
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._counter = itertools.count()
        self._sleeping = asyncio.Event()

    def now(self) -> float:
        return self._now

    async def sleep_until(self, deadline: float) -> None:
        if deadline <= self._now:
            await asyncio.sleep(0)
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (deadline, next(self._counter), future))
        self._sleeping.set()
        await future

    def advance(self, seconds: float) -> None:
        self.set(self._now + seconds)

    def set(self, moment: float) -> None:
        self._now = max(self._now, moment)
        while self._sleepers and self._sleepers[0][0] <= self._now:
            _, _, future = heapq.heappop(self._sleepers)
            if not future.done():
                future.set_result(None)

    async def next_sleeper(self, before: float = float("inf"), timeout: float = 5.0) -> float:
        """Wait until some task sleeps on this clock until a deadline earlier than `before`; that deadline."""
        async with asyncio.timeout(timeout):
            while (deadline := self.next_deadline) is None or deadline >= before:
                self._sleeping.clear()
                await self._sleeping.wait()
        return deadline

    @property
    def next_deadline(self) -> float | None:
        live = [d for d, _, f in self._sleepers if not f.done()]
        return min(live) if live else None
