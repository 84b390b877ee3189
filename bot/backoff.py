"""Exponential backoff with jitter and a cap, for anything that retries a failing service (errbot's reconnect loop)."""

from __future__ import annotations

import random

#: 2**62 s is far past any cap: the exponent stops growing there, so a long outage cannot overflow the float.
_MAX_EXPONENT = 62


def delay(attempt: int, *, base: float, cap: float, rng: random.Random) -> float:
    """The wait before retry number `attempt` (0 = after the first failure): drawn from [ceiling/2, ceiling],
    where the ceiling is `base` doubled per attempt and never above `cap`. Half the ceiling is always waited, so a
    retry never comes at once; the other half is jitter, so many clients that failed together do not retry together."""
    if attempt < 0:
        raise ValueError(f"attempt must be >= 0, not {attempt}")
    ceiling = min(cap, base * 2 ** min(attempt, _MAX_EXPONENT))
    return rng.uniform(ceiling / 2, ceiling)


class Backoff:
    """The waits of one retry loop: `next_delay()` after each failure, `reset()` after a success."""

    def __init__(self, base: float = 1.0, cap: float = 60.0, *, rng: random.Random | None = None) -> None:
        if not 0 < base <= cap:
            raise ValueError(f"backoff needs 0 < base <= cap, not base={base}, cap={cap}")
        self.base = base
        self.cap = cap
        self._rng = rng if rng is not None else random.Random()
        self._attempt = 0

    @property
    def failures(self) -> int:
        """Failures in a row since the last `reset()`."""
        return self._attempt

    def next_delay(self) -> float:
        wait = delay(self._attempt, base=self.base, cap=self.cap, rng=self._rng)
        self._attempt += 1
        return wait

    def reset(self) -> None:
        self._attempt = 0
