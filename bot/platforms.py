"""A chat platform's part in `serve`, and its start-up: tried again with capped backoff while the platform cannot
be reached, so one platform that is down neither stops `serve` nor delays the web server or the others."""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from typing import Protocol

from bot.backoff import Backoff
from bot.settings import SettingsError

log = logging.getLogger(__name__)


class Platform(Protocol):
    """A chat platform's running part in `serve`: its transport (polling, webhook routes, Socket Mode)."""

    name: str

    async def start(self) -> None:
        """One try at start-up. Raises `PlatformUnavailable` while the platform cannot be reached (serve tries
        again with backoff, so a second call must work), `SettingsError` for a token the platform refuses."""
        ...

    async def stop(self) -> None:
        """Stop taking in messages (first, at shutdown; also when `start` never succeeded)."""
        ...

    async def close(self) -> None:
        """Release connections (last: replies about deliveries finishing in the grace period still go out)."""
        ...


class PlatformUnavailable(Exception):
    """A platform's start-up could not reach it (network error, timeout, 5xx): `serve` tries again later.
    `reason` is short and safe to log and show in /healthz; `retry_after` is a wait the platform asked for."""

    def __init__(self, reason: str, *, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after


#: Start-up retries: 1 s doubling to at most a minute, with jitter.
START_BACKOFF_BASE, START_BACKOFF_CAP = 1.0, 60.0


def start_backoff() -> Backoff:
    return Backoff(START_BACKOFF_BASE, START_BACKOFF_CAP, rng=random.Random())


async def keep_starting(
    platform: Platform,
    backoff: Backoff,
    *,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    tried: Callable[[], None] | None = None,
) -> None:
    """errbot's reconnect loop for a start-up: try until it works, one WARN line per failed try, waits growing
    to the backoff's cap. A refused token (`SettingsError`) ends it; `tried` is called once the first try is over
    (whether it worked or not)."""
    first_try = True
    while True:
        try:
            await platform.start()
        except PlatformUnavailable as exc:
            reason, wait = exc.reason, max(backoff.next_delay(), exc.retry_after or 0.0)
        except SettingsError:
            raise
        except Exception as exc:  # a bug, not an outage: its traceback once, then it is retried like one
            if backoff.failures == 0:
                log.exception("%s: unexpected error while starting", platform.name)
            reason, wait = f"unexpected error ({type(exc).__name__})", backoff.next_delay()
        else:
            if first_try and tried is not None:
                tried()
            return
        if first_try and tried is not None:
            tried()
        first_try = False
        log.warning("%s: not started (%s); trying again in %.1f s", platform.name, reason, wait)
        await sleep(wait)


class PlatformStartup:
    """Every platform's start-up in its own task, each retried with its own backoff, so one platform that is
    down neither delays the others nor the web server. A refused token is kept in `error` and ends `serve`."""

    def __init__(self, platforms: list[Platform], backoff: Callable[[], Backoff] = start_backoff) -> None:
        self._platforms = platforms
        self._backoff = backoff
        self._tasks: list[asyncio.Task[None]] = []
        self._untried = len(platforms)
        self._settled = asyncio.Event()  # every platform tried once, or one failed for good
        self._failed = asyncio.Event()
        self.error: BaseException | None = None

    def start(self) -> None:
        if not self._platforms:
            self._settled.set()
        for platform in self._platforms:
            task = asyncio.create_task(
                keep_starting(platform, self._backoff(), tried=self._tried), name=f"start-{platform.name}"
            )
            task.add_done_callback(self._ended)
            self._tasks.append(task)

    async def first_tries(self) -> None:
        """Until each platform has tried once (each is running, or retrying in the background)."""
        await self._settled.wait()
        self._raise_error()

    async def failure(self) -> None:
        """Only returns by raising what a platform's start-up ended with (a `SettingsError`)."""
        await self._failed.wait()
        self._raise_error()

    async def stop(self) -> None:
        """Retries end, then every platform stops taking in messages (in reverse order of start)."""
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for platform in reversed(self._platforms):
            await platform.stop()

    def _tried(self) -> None:
        self._untried -= 1
        if self._untried == 0:
            self._settled.set()

    def _ended(self, task: asyncio.Task[None]) -> None:
        if task.cancelled() or task.exception() is None:
            return
        if self.error is None:
            self.error = task.exception()  # a SettingsError: keep_starting retries everything else
        self._settled.set()
        self._failed.set()

    def _raise_error(self) -> None:
        if self.error is not None:
            raise self.error
