"""Bursts: what one chat user sends in one chat with short gaps becomes one unit (SPEC §6)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field, replace

from bot.clock import Clock
from bot.events import InboundMessage

log = logging.getLogger(__name__)

MAX_MESSAGES = 100
MAX_AGE_SECONDS = 300.0


@dataclass
class Burst:
    session_key: str
    first_arrival: float
    last_arrival: float
    messages: dict[str, InboundMessage] = field(default_factory=dict)  # by message_id: edits replace
    row_ids: list[int] = field(default_factory=list)  # every inbox row it holds, edits included

    @property
    def ordered(self) -> list[InboundMessage]:
        return sorted(self.messages.values(), key=lambda message: message.sequence)


BurstClosed = Callable[[Burst], Awaitable[None]]


class BurstCollector:
    """Collects messages per session; closes a burst `window` seconds after its last arrival, at
    `MAX_MESSAGES`, or `MAX_AGE_SECONDS` after its first arrival — all on the injected clock."""

    def __init__(
        self,
        clock: Clock,
        window: float,
        on_close: BurstClosed,
        *,
        behind: Callable[[str, float], bool] | None = None,
        progress: Callable[[], Awaitable[None]] | None = None,
        before_close: Callable[[str, float], Awaitable[bool]] | None = None,
        waiting: Callable[[Iterable[InboundMessage]], asyncio.Event | None] | None = None,
    ) -> None:
        self._clock = clock
        self._window = window
        self._on_close = on_close
        # Processing may lag behind intake; a burst due to close waits until rows received before its deadline
        # have been seen (`behind`), waking on each row handled (`progress`).
        self._behind = behind
        self._progress = progress
        # With several instances, rows of the session accepted elsewhere by the deadline join the burst first
        # (`bot.sessions.SharedSessions.before_close`: True when it found some).
        self._before_close = before_close
        # A burst with voice messages waits for their transcripts (SPEC §11): an event set at the next outcome,
        # None when every one has its outcome (`bot.transcribe.jobs.TranscriptionJobs.outstanding`).
        self._waiting = waiting
        self._open: dict[str, Burst] = {}
        self._timers: dict[str, asyncio.Task[None]] = {}
        self._closing: set[asyncio.Task[None]] = set()

    @property
    def open_count(self) -> int:
        return len(self._open)

    def is_open(self, session_key: str) -> bool:
        return session_key in self._open

    async def add(self, message: InboundMessage, row_id: int | None) -> bool:
        """Add a message (or apply an edit). False when it is an edit of nothing open: ignored, per SPEC."""
        key = message.session_key
        burst = self._open.get(key)
        now = message.received_at or self._clock.now()  # the receive clock, even when processing lags
        if burst is not None and now >= self._deadline(burst):
            # Its time is up even if the timer has not run yet: this message starts the next burst.
            await self._close(key)
            burst = None
        if message.edited:
            if burst is None or message.message_id not in burst.messages:
                return False
            original = burst.messages[message.message_id]
            burst.messages[message.message_id] = replace(original, text=message.text, location=message.location)
            if row_id is not None:
                burst.row_ids.append(row_id)
            return True
        if burst is None:
            burst = Burst(session_key=key, first_arrival=now, last_arrival=now)
            self._open[key] = burst
        burst.messages[message.message_id] = message
        if row_id is not None:
            burst.row_ids.append(row_id)
        burst.last_arrival = now
        if len(burst.messages) >= MAX_MESSAGES:
            await self._close(key)
        else:
            self._arm(key)
        return True

    async def close(self, session_key: str) -> None:
        """Close one session's burst now (its user asked to read: show them what they just sent) — unless it waits
        for a transcript: then it closes when that is known, as it would have anyway."""
        burst = self._open.get(session_key)
        if burst is not None and not self._transcribing(burst):
            await self._close(session_key)

    def _transcribing(self, burst: Burst) -> bool:
        return self._waiting is not None and self._waiting(burst.messages.values()) is not None

    async def close_all(self) -> None:
        """Close every open burst now (console EOF, shutdown) and wait for their hand-off."""
        for key in list(self._open):
            await self._close(key)
        if self._closing:
            await asyncio.gather(*self._closing, return_exceptions=True)

    async def stop(self) -> None:
        """Forget open bursts without closing them: their rows stay queued and replay at the next start."""
        for task in self._timers.values():
            task.cancel()
        self._timers.clear()
        self._open.clear()

    def _deadline(self, burst: Burst) -> float:
        return min(burst.last_arrival + self._window, burst.first_arrival + MAX_AGE_SECONDS)

    def _arm(self, key: str) -> None:
        if key not in self._timers:
            self._timers[key] = asyncio.create_task(self._timer(key), name=f"burst-timer:{key}")

    async def _timer(self, key: str) -> None:
        try:
            while (burst := self._open.get(key)) is not None:
                deadline = self._deadline(burst)
                if self._clock.now() < deadline:
                    await self._clock.sleep_until(deadline)
                elif self._behind is not None and self._progress is not None and self._behind(key, deadline):
                    await self._progress()
                elif self._waiting is not None and (event := self._waiting(burst.messages.values())) is not None:
                    await event.wait()
                elif self._before_close is not None and await self._found_more(key, deadline):
                    continue
                else:
                    break
        except asyncio.CancelledError:
            return
        self._timers.pop(key, None)
        if key in self._open:
            task = asyncio.create_task(self._close(key))
            self._closing.add(task)
            task.add_done_callback(self._closing.discard)

    async def _found_more(self, key: str, deadline: float) -> bool:
        assert self._before_close is not None
        try:
            return await self._before_close(key, deadline)
        except Exception as exc:  # the database is away: close with what is here; later rows start the next
            log.warning("bursts: could not look for the session's other messages (%s)", type(exc).__name__)
            return False

    async def _close(self, key: str) -> None:
        burst = self._open.pop(key, None)
        timer = self._timers.pop(key, None)
        if timer is not None and timer is not asyncio.current_task():
            timer.cancel()
        if burst is None:
            return
        try:
            await self._on_close(burst)
        except Exception:
            # Its rows stay 'new' in the inbox: they are replayed at the next start, nothing is lost.
            log.exception("bursts: handing a closed burst on failed; its messages stay queued")
