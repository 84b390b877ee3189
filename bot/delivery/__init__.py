"""Delivery to Omi: scheduling and attempts (`worker`), what outcomes mean (`rules`), looks before re-sending
(`looks`)."""

from bot.delivery.rules import (
    BLOCKED_RETRY_SECONDS,
    FIRST_LOOK_SECONDS,
    MAX_AGE_SECONDS,
    MAX_ATTEMPTS,
    SECOND_LOOK_SECONDS,
)
from bot.delivery.worker import MAX_MEMORIES_PER_POST, DeliveryWorker, Outcomes, split_memories

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
