"""Delivery to Omi: scheduling (`worker`), one attempt (`attempt`), what its outcome means (`rules`), looks before
re-sending (`looks`), telling users (`notices`). 429 holds and leases live in the store, shared by every
instance."""

from bot.delivery.notices import Outcomes
from bot.delivery.rules import (
    BLOCKED_RETRY_SECONDS,
    FIRST_LOOK_SECONDS,
    MAX_AGE_SECONDS,
    MAX_ATTEMPTS,
    MAX_MEMORIES_PER_POST,
    SECOND_LOOK_SECONDS,
    split_memories,
)
from bot.delivery.worker import DeliveryWorker

__all__ = [
    "BLOCKED_RETRY_SECONDS",
    "FIRST_LOOK_SECONDS",
    "MAX_AGE_SECONDS",
    "MAX_ATTEMPTS",
    "MAX_MEMORIES_PER_POST",
    "SECOND_LOOK_SECONDS",
    "DeliveryWorker",
    "Outcomes",
    "split_memories",
]
