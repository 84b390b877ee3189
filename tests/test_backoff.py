"""Backoff: waits double from the base up to the cap, with jitter from the injected random source, and restart."""

from __future__ import annotations

import random

import pytest

from bot.backoff import Backoff, delay


class Extremes(random.Random):
    """A random source that always draws the lowest (or the highest) value of a range."""

    def __init__(self, high: bool) -> None:
        super().__init__(0)
        self.high = high

    def uniform(self, a: float, b: float) -> float:
        return b if self.high else a


def test_the_ceiling_doubles_from_the_base_and_stops_at_the_cap():
    ceilings = [delay(n, base=1.0, cap=60.0, rng=Extremes(high=True)) for n in range(9)]
    assert ceilings == [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 60.0, 60.0, 60.0]


def test_at_least_half_the_ceiling_is_always_waited():
    floors = [delay(n, base=1.0, cap=60.0, rng=Extremes(high=False)) for n in range(8)]
    assert floors == [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0]


def test_jitter_spreads_retries_that_failed_together():
    rng = random.Random(7)
    waits = [delay(5, base=1.0, cap=60.0, rng=rng) for _ in range(200)]
    assert all(16.0 <= wait <= 32.0 for wait in waits)
    assert len({round(wait, 3) for wait in waits}) > 150  # not all at one moment


def test_the_same_seed_gives_the_same_waits():
    first = Backoff(0.5, 10.0, rng=random.Random(42))
    second = Backoff(0.5, 10.0, rng=random.Random(42))
    assert [first.next_delay() for _ in range(6)] == [second.next_delay() for _ in range(6)]


def test_a_long_outage_never_waits_past_the_cap_nor_overflows():
    assert delay(10_000, base=1.0, cap=60.0, rng=Extremes(high=True)) == 60.0
    backoff = Backoff(rng=random.Random(1))
    assert max(backoff.next_delay() for _ in range(2_000)) <= 60.0


def test_reset_after_a_success_starts_again_from_the_base():
    backoff = Backoff(1.0, 60.0, rng=Extremes(high=True))
    assert [backoff.next_delay() for _ in range(4)] == [1.0, 2.0, 4.0, 8.0]
    assert backoff.failures == 4
    backoff.reset()
    assert backoff.failures == 0
    assert backoff.next_delay() == 1.0


def test_tests_can_make_it_short():
    backoff = Backoff(base=0.01, cap=0.04, rng=Extremes(high=True))
    assert [backoff.next_delay() for _ in range(4)] == [0.01, 0.02, 0.04, 0.04]


@pytest.mark.parametrize(("base", "cap"), [(0.0, 1.0), (-1.0, 1.0), (2.0, 1.0)])
def test_a_base_that_is_not_positive_or_above_the_cap_is_refused(base, cap):
    with pytest.raises(ValueError, match="0 < base <= cap"):
        Backoff(base, cap)


def test_a_negative_attempt_is_refused():
    with pytest.raises(ValueError, match="attempt"):
        delay(-1, base=1.0, cap=2.0, rng=random.Random())
