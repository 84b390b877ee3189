"""429 holds (SPEC §7): whose requests wait, and until when — one (uid, kind), one uid, or the whole key."""

from __future__ import annotations

from bot.delivery.rules import Hold


class Holds:
    def __init__(self) -> None:
        self._until: dict[tuple[str, ...], float] = {}  # hold key (see rules.Hold) -> until
        self._lengths: dict[tuple[str, ...], float] = {}  # the last hold of a key without Retry-After

    def hold(self, hold: Hold, now: float) -> float:
        """Hold `hold.key` until Retry-After, else for double its last such hold (from `first`); the end."""
        if hold.seconds is not None:
            seconds = hold.seconds
        else:
            last = self._lengths.get(hold.key)
            seconds = hold.first if last is None else min(hold.cap, last * 2)
            self._lengths[hold.key] = seconds
        self._until[hold.key] = max(now + seconds, self._until.get(hold.key, 0.0))
        return self._until[hold.key]

    def held(self, uid: str, kind: str, now: float) -> bool:
        return any(self._until.get(key, 0.0) > now for key in _keys(uid, kind))

    def delivered(self, uid: str, kind: str) -> None:
        """A write went through: the next hold of these keys starts from the beginning again."""
        for key in _keys(uid, kind):
            self._lengths.pop(key, None)

    def next_end(self, now: float) -> float | None:
        ends = [until for until in self._until.values() if until > now]
        return min(ends) if ends else None


def _keys(uid: str, kind: str) -> tuple[tuple[str, ...], ...]:
    return (("kind", uid, kind), ("uid", uid), ("key",))
