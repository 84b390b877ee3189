"""Omi's rate limits: Redis fixed windows on the FastAPI creates, clock-hour buckets on notifications and API core.

- FastAPI creates (§2): INCR + EXPIRE on the first hit, so a fixed window opening at the first request; every request
  past the key check counts; `Retry-After` is the key's Redis TTL, which rounds to whole seconds and can be 0 (§9.3).
- FastAPI notifications (§8, §9.1): a counter per UTC clock hour that starts at 1 and is then incremented, so one
  send fewer than Omi's maximum passes. Here `notifications_per_hour` is what passes (9); the headers and the 429
  text name Omi's maximum (one more), as the real ones do.
- API core (§9.6): buckets on the UTC hour, exact counts, only accepted requests count.
- The load balancer in front of Omi (§9.4, reported): requests per `Authorization` header per minute, off by default.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from bot.sandbox.exceptions import (
    OmiError,
    PlainTextError,
    notifications_maximum_detail,
    requests_maximum_detail,
    retry_in_detail,
)

WINDOW_SECONDS = 3600
HOUR_SECONDS = 3600
MINUTE_SECONDS = 60
_MAX_KEYS = 50_000  # old windows are dropped past this many, so a long run does not grow without bound

POLICIES = ("conversations", "memories", "notifications")


class _FixedWindows:
    """Counters that open a window of `length` seconds at their first hit."""

    def __init__(self, length: float) -> None:
        self._length = length
        self._windows: dict[tuple[str, ...], tuple[float, int]] = {}

    def hit(self, key: tuple[str, ...], now: float) -> tuple[int, float]:
        """Count one request; (its number in the window, seconds until the window ends)."""
        start, count = self._windows.get(key, (now, 0))
        if now >= start + self._length:
            start, count = now, 0
        self._windows[key] = (start, count + 1)
        if len(self._windows) > _MAX_KEYS:
            self._windows = {k: v for k, v in self._windows.items() if now < v[0] + self._length}
        return count + 1, start + self._length - now


class _HourBuckets:
    """Counters per UTC clock hour."""

    def __init__(self) -> None:
        self._counts: dict[tuple[str, ...], int] = {}

    def count(self, key: tuple[str, ...], now: float) -> int:
        return self._counts.get((*key, str(int(now // HOUR_SECONDS))), 0)

    def add(self, key: tuple[str, ...], now: float) -> None:
        hour = str(int(now // HOUR_SECONDS))
        if len(self._counts) > _MAX_KEYS:
            self._counts = {k: v for k, v in self._counts.items() if k[-1] == hour}
        bucket = (*key, hour)
        self._counts[bucket] = self._counts.get(bucket, 0) + 1


def redis_ttl(seconds: float) -> int:
    """What Redis `TTL` reports for a key expiring in `seconds`: milliseconds rounded to the nearest second."""
    return max(0, (round(seconds * 1000) + 500) // 1000)


def seconds_to_next_hour(now: float) -> int:
    return HOUR_SECONDS - int(now) % HOUR_SECONDS


class RateLimits:
    """The configured per-hour limits (0 = off) and the counters behind them."""

    def __init__(
        self,
        clock: Callable[[], float],
        *,
        conversations_per_hour: int,
        memories_per_hour: int,
        notifications_per_hour: int,
        requests_per_minute: int = 0,
    ) -> None:
        self._clock = clock
        self._limits = {"conversations": 0, "memories": 0, "notifications": 0, "requests_per_minute": 0}
        self.set(
            conversations_per_hour=conversations_per_hour,
            memories_per_hour=memories_per_hour,
            notifications_per_hour=notifications_per_hour,
            requests_per_minute=requests_per_minute,
        )
        self._windows = _FixedWindows(WINDOW_SECONDS)
        self._minutes = _FixedWindows(MINUTE_SECONDS)
        self._hours = _HourBuckets()

    def set(
        self,
        *,
        conversations_per_hour: int | None = None,
        memories_per_hour: int | None = None,
        notifications_per_hour: int | None = None,
        requests_per_minute: int | None = None,
    ) -> dict[str, int]:
        """Change any of the limits (0 turns one off); returns them all."""
        for name, value in (
            ("conversations", conversations_per_hour),
            ("memories", memories_per_hour),
            ("notifications", notifications_per_hour),
            ("requests_per_minute", requests_per_minute),
        ):
            if value is not None:
                if value < 0:
                    label = name if name == "requests_per_minute" else f"{name}_per_hour"
                    raise ValueError(f"{label} must be 0 (off) or more")
                self._limits[name] = value
        return self.as_dict()

    def as_dict(self) -> dict[str, int]:
        limits = {f"{policy}_per_hour": self._limits[policy] for policy in POLICIES}
        return limits | {"requests_per_minute": self._limits["requests_per_minute"]}

    def limit(self, policy: str) -> int:
        return self._limits[policy]

    def count_fixed_window(self, policy: str, app_id: str, uid: str) -> None:
        """The FastAPI limiter on a create: counts this request, raises the 429 when it is over the limit."""
        limit = self._limits[policy]
        if limit <= 0:
            return
        number, left = self._windows.hit((policy, app_id, uid), self._clock())
        if number <= limit:
            return
        ttl = redis_ttl(left)
        headers = {"Retry-After": str(ttl), "X-RateLimit-Limit": str(limit), "X-RateLimit-Remaining": "0"}
        raise OmiError(429, retry_in_detail(ttl), headers)

    def notification_quota(self, app_id: str, uid: str, *, off_by_one: bool) -> dict[str, str]:
        """Count one notification in its clock hour; the `X-RateLimit-*` headers for the answer, or the 429."""
        passes = self._limits["notifications"]
        if passes <= 0:
            return {}
        now = self._clock()
        maximum = passes + 1 if off_by_one else passes
        reset = seconds_to_next_hour(now)
        headers = {"X-RateLimit-Limit": str(maximum), "X-RateLimit-Reset": str(reset)}
        sent = self._hours.count(("notifications", app_id, uid), now)
        if sent >= passes:
            headers |= {"X-RateLimit-Remaining": "0", "Retry-After": str(reset)}
            detail = notifications_maximum_detail(maximum) if off_by_one else requests_maximum_detail(maximum)
            raise OmiError(429, detail, headers)
        self._hours.add(("notifications", app_id, uid), now)
        return headers | {"X-RateLimit-Remaining": str(passes - sent - 1)}

    def count_hourly(self, policy: str, app_id: str, uid: str) -> None:
        """API core's limiter on a create: the 429 when this hour's accepted requests reached the limit."""
        limit = self._limits[policy]
        if limit <= 0:
            return
        now = self._clock()
        if self._hours.count((policy, app_id, uid), now) >= limit:
            raise OmiError(429, requests_maximum_detail(limit), {"Retry-After": str(seconds_to_next_hour(now))})
        self._hours.add((policy, app_id, uid), now)

    def count_key_minute(self, authorization: str | None) -> None:
        """The load balancer's cap per `Authorization` header: a plain-text 429 without any Omi detail."""
        limit = self._limits["requests_per_minute"]
        if limit <= 0 or not authorization:
            return
        number, left = self._minutes.hit(("key", authorization), self._clock())
        if number > limit:
            raise PlainTextError(429, "Too Many Requests", {"Retry-After": str(max(1, math.ceil(left)))})
