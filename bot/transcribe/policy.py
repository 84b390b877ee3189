"""When a durable transcription job tries again, and when it gives up (SPEC §11): pure, so the job table only stores
`attempts` and `first_attempt_at` and asks this after each failure.

- `TranscriptionFailed` → give up at once, with its reason.
- `TranscriptionRetry` → retry at `now + Retry-After` when the service named a wait, else after `bot.backoff.delay`
  (exponential, jittered from the injected `random.Random`) — unless that was attempt `MAX_ATTEMPTS` or the retry
  would start later than `MAX_AGE` seconds after the first attempt: then give up, with the last error's reason.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from bot import backoff
from bot.transcribe.errors import TranscriptionError, TranscriptionFailed, TranscriptionRetry

MAX_ATTEMPTS = 5
MAX_AGE = 600.0  # seconds since the first attempt
#: Waits between attempts: [1, 2] s, then [2, 4], [4, 8], [8, 16] — a voice burst waits for its transcript, so a
#: short outage costs seconds, not minutes; a longer one is what Retry-After and the 10-minute bound are for.
BACKOFF_BASE = 2.0
BACKOFF_CAP = 60.0


@dataclass(frozen=True)
class Retry:
    """Try again at `at` (same clock as `now`); `reason`: why the last attempt failed (for logs)."""

    at: float
    reason: str


@dataclass(frozen=True)
class GiveUp:
    """Failed for good: `reason` is the fixed user-safe phrase for the placeholder and the reply."""

    reason: str


def next_step(
    attempts: int,
    first_attempt_at: float,
    now: float,
    error: TranscriptionError,
    *,
    rng: random.Random,
    max_attempts: int = MAX_ATTEMPTS,
    max_age: float = MAX_AGE,
    base: float = BACKOFF_BASE,
    cap: float = BACKOFF_CAP,
) -> Retry | GiveUp:
    """After failed attempt number `attempts` (1 = the first one failed), what the job does next."""
    if attempts < 1:
        raise ValueError(f"attempts counts the failed attempts so far, so it is >= 1, not {attempts}")
    if isinstance(error, TranscriptionFailed) or not isinstance(error, TranscriptionRetry):
        return GiveUp(error.reason)
    if attempts >= max_attempts:
        return GiveUp(error.reason)
    if error.retry_after is not None:
        wait = error.retry_after
    else:
        wait = backoff.delay(attempts - 1, base=base, cap=cap, rng=rng)
    at = now + wait
    if at - first_attempt_at > max_age:
        return GiveUp(error.reason)
    return Retry(at=at, reason=error.reason)
