"""What one delivery attempt's outcome means for its items (SPEC §7): a pure decision, unit-tested as a table.

`decide_send` reads the answer to a write; `decide_look` reads the result of a look before re-sending. Neither
touches the database, the clock or the network: the worker records and tells what they decide.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from enum import StrEnum

from bot import backoff
from bot.omi import words
from bot.omi.errors import (
    ForbiddenReason,
    OmiError,
    OmiForbidden,
    OmiRateLimited,
    OmiServerError,
    OmiUnknownOutcome,
    RateLimitScope,
)
from bot.omi.models import NewMemories
from bot.store import ItemKind, ItemState, OmiWrite

MAX_AGE_SECONDS = 7 * 24 * 3600
MAX_ATTEMPTS = 20
BACKOFF_BASE_SECONDS = 1.0
BACKOFF_CAP_SECONDS = 600.0
FIRST_LOOK_SECONDS = 120.0
SECOND_LOOK_SECONDS = 600.0
BLOCKED_RETRY_SECONDS = 3600.0
#: A 429 without a usable Retry-After: first hold, doubling per hold of the same scope, up to the cap.
HOLD_FIRST_SECONDS = 1.0
BYOK_FIRST_SECONDS = 30.0
HOLD_CAP_SECONDS = 600.0
#: Explicit memories in one POST at most (the staged Omi implementation silently drops the rest).
MAX_MEMORIES_PER_POST = 100


class Tell(StrEnum):
    NOTHING = "nothing"
    DELIVERED = "delivered"
    WAITING = "waiting"  # once per wait and reason
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class Hold:
    """A 429's hold: `key` is ("kind", uid, kind), ("uid", uid) or ("key",) — whose requests wait."""

    key: tuple[str, ...]
    #: From Retry-After; None: double the previous hold of this key, starting at `first`.
    seconds: float | None
    first: float = HOLD_FIRST_SECONDS
    cap: float = HOLD_CAP_SECONDS


@dataclass(frozen=True, slots=True)
class Decision:
    to: ItemState
    tell: Tell = Tell.NOTHING
    reason: str = ""  # a fixed phrase from `bot.omi.words`
    #: Seconds from now to the next attempt (None: now for PENDING, or the hold's end when `hold` is set).
    retry_in: float | None = None
    count_attempt: bool = False
    hold: Hold | None = None
    #: Entering `unknown`: the look clock starts now.
    unknown: bool = False
    #: Metrics: the result ("delivered", "failed", "unknown") and, for failures, the reason code.
    result: str = ""
    code: str = ""


def _backoff(reason: str, attempts: int, rng: random.Random, *, keep: ItemState = ItemState.PENDING) -> Decision:
    """Back off and try again — or, at the attempt limit, fail for good. `attempts` includes this one."""
    if attempts >= MAX_ATTEMPTS:
        return failed(words.too_many_attempts(reason, attempts), "too_many_attempts", count_attempt=True)
    wait = backoff.delay(attempts - 1, base=BACKOFF_BASE_SECONDS, cap=BACKOFF_CAP_SECONDS, rng=rng)
    return Decision(keep, Tell.WAITING, reason, retry_in=wait, count_attempt=True)


def failed(reason: str, code: str, *, count_attempt: bool = False) -> Decision:
    return Decision(ItemState.FAILED, Tell.FAILED, reason, count_attempt=count_attempt, result="failed", code=code)


def blocked() -> Decision:
    return Decision(ItemState.BLOCKED, Tell.WAITING, words.NOT_ENABLED, retry_in=BLOCKED_RETRY_SECONDS)


def _hold(exc: OmiRateLimited, uid: str, kind: ItemKind) -> Hold:
    # Retry-After: 0 is the end of Omi's window (a Redis TTL): try again after a second, not at once.
    seconds = None if exc.retry_after is None else max(exc.retry_after, 1.0)
    if exc.scope is RateLimitScope.BYOK:
        # The user's own provider key: no Retry-After; back that uid off from 30 s, doubling to 10 min.
        return Hold(("uid", uid), None, first=BYOK_FIRST_SECONDS)
    if exc.scope is RateLimitScope.KEY:
        return Hold(("key",), seconds)
    return Hold(("kind", uid, kind.value), seconds)


def internal_error(state: ItemState, attempts: int, rng: random.Random) -> Decision:
    """A bug of ours during an attempt: it counts as an attempt (so the limit holds); an unknown item stays one."""
    keep = ItemState.UNKNOWN if state is ItemState.UNKNOWN else ItemState.PENDING
    return _backoff(words.INTERNAL, attempts + 1, rng, keep=keep)


def unreadable() -> Decision:
    return failed(words.UNREADABLE, "invalid_payload")


def decide_send(
    kind: ItemKind, uid: str, error: BaseException | None, *, attempts: int, rng: random.Random
) -> Decision:
    """The answer to sending an item (or one uid's combined memories). `attempts`: failed attempts so far."""
    if error is None:
        return Decision(ItemState.DONE, Tell.DELIVERED, result="delivered")
    if isinstance(error, OmiRateLimited):
        return Decision(ItemState.PENDING, Tell.WAITING, words.waiting_for(error), hold=_hold(error, uid, kind))
    if isinstance(error, OmiUnknownOutcome):
        if kind is ItemKind.EXTRACT:
            # Extraction is not idempotent (source_id does not dedupe it): never send it twice.
            return failed(words.UNCONFIRMED_EXTRACT, "unconfirmed", count_attempt=True)
        return Decision(
            ItemState.UNKNOWN, retry_in=FIRST_LOOK_SECONDS, count_attempt=True, unknown=True, result="unknown"
        )
    if isinstance(error, OmiServerError):  # 500/502/503 (provider_unavailable too), or never reached Omi
        return _backoff(words.UNAVAILABLE, attempts + 1, rng)
    if isinstance(error, OmiForbidden):
        if error.reason in (ForbiddenReason.NOT_ENABLED, ForbiddenReason.NOT_INSTALLED):
            return blocked()
        return failed(words.write_refused(error), f"forbidden_{error.reason.value}")
    if isinstance(error, OmiError):
        return failed(words.write_refused(error), f"http_{error.status or 'error'}")
    return _backoff(words.INTERNAL, attempts + 1, rng)


def decide_look(
    kind: ItemKind,
    error: BaseException | None,
    *,
    found: bool,
    looks_done: int,
    attempts: int,
    rng: random.Random,
) -> Decision:
    """The result of looking for an item whose outcome is unknown: found → done; not found → look again at 10
    minutes (conversations), then re-send; a look that failed → try the look again later."""
    if error is None:
        if found:
            return Decision(ItemState.DONE, Tell.DELIVERED, result="delivered")
        if kind is ItemKind.CONVERSATION and looks_done == 0:
            return Decision(ItemState.UNKNOWN)  # the worker sets the second look's time
        return Decision(ItemState.PENDING)  # not in Omi: send (what is missing) again
    if isinstance(error, OmiForbidden):
        if error.reason is ForbiddenReason.MISSING_CAPABILITY:
            reason = words.UNCONFIRMED_CONVERSATION if kind is ItemKind.CONVERSATION else words.UNCONFIRMED_MEMORIES
            return failed(reason, "unconfirmed")
        if error.reason in (ForbiddenReason.NOT_ENABLED, ForbiddenReason.NOT_INSTALLED):
            # Stay unknown (a blocked item would be re-sent without a look): look again in an hour.
            return Decision(ItemState.UNKNOWN, Tell.WAITING, words.NOT_ENABLED, retry_in=BLOCKED_RETRY_SECONDS)
        return failed(words.write_refused(error), f"forbidden_{error.reason.value}")
    if isinstance(error, OmiError):
        return _backoff(words.UNAVAILABLE, attempts + 1, rng, keep=ItemState.UNKNOWN)
    return _backoff(words.INTERNAL, attempts + 1, rng, keep=ItemState.UNKNOWN)


def split_memories(write: OmiWrite) -> list[OmiWrite]:
    """An explicit-memories write as items of at most `MAX_MEMORIES_PER_POST` memories each."""
    if not isinstance(write, NewMemories) or len(write.memories) <= MAX_MEMORIES_PER_POST:
        return [write]
    return [
        write.model_copy(update={"memories": write.memories[start : start + MAX_MEMORIES_PER_POST]})
        for start in range(0, len(write.memories), MAX_MEMORIES_PER_POST)
    ]
