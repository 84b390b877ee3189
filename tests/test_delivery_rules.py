"""What an attempt's outcome means (bot/delivery/rules.py), as a table; and the 429 kinds read off Omi's bodies."""

from __future__ import annotations

import random

import httpx
import pytest

from bot.delivery.rules import (
    BLOCKED_RETRY_SECONDS,
    BYOK_FIRST_SECONDS,
    FIRST_LOOK_SECONDS,
    MAX_ATTEMPTS,
    Tell,
    decide_look,
    decide_send,
    internal_error,
)
from bot.omi import words
from bot.omi.client import _error_for
from bot.omi.errors import (
    ForbiddenReason,
    OmiForbidden,
    OmiNotFound,
    OmiRateLimited,
    OmiServerError,
    OmiUnavailable,
    OmiUnknownOutcome,
    OmiValidationError,
    RateLimitScope,
)
from bot.store import ItemKind, ItemState

C, M, X = ItemKind.CONVERSATION, ItemKind.MEMORIES, ItemKind.EXTRACT
P, U, D, F, B = ItemState.PENDING, ItemState.UNKNOWN, ItemState.DONE, ItemState.FAILED, ItemState.BLOCKED


def forbidden(reason: ForbiddenReason) -> OmiForbidden:
    return OmiForbidden("403", reason=reason, status=403)


def limited(scope: RateLimitScope, retry_after: float | None = None) -> OmiRateLimited:
    return OmiRateLimited("429", retry_after=retry_after, scope=scope, status=429)


SEND_TABLE = [
    # kind, error, state, tell, counts as an attempt
    (C, None, D, Tell.DELIVERED, False),
    (M, None, D, Tell.DELIVERED, False),
    (C, OmiUnknownOutcome("504", status=504), U, Tell.NOTHING, True),
    (M, OmiUnknownOutcome("timeout"), U, Tell.NOTHING, True),
    (X, OmiUnknownOutcome("504", status=504), F, Tell.FAILED, True),  # extraction is never sent twice
    (C, OmiServerError("503", status=503, detail={"code": "provider_unavailable"}), P, Tell.WAITING, True),
    (M, OmiUnavailable("refused"), P, Tell.WAITING, True),
    (C, forbidden(ForbiddenReason.NOT_ENABLED), B, Tell.WAITING, False),
    (C, forbidden(ForbiddenReason.BAD_KEY), F, Tell.FAILED, False),
    (M, forbidden(ForbiddenReason.MISSING_CAPABILITY), F, Tell.FAILED, False),
    (C, OmiValidationError("text: Field required", status=422), F, Tell.FAILED, False),
    (C, OmiNotFound("App not found", status=404), F, Tell.FAILED, False),
    (C, RuntimeError("a bug"), P, Tell.WAITING, True),
    (C, limited(RateLimitScope.QUOTA, 30), P, Tell.WAITING, False),
]


@pytest.mark.parametrize(("kind", "error", "state", "tell", "counted"), SEND_TABLE)
def test_what_a_send_outcome_means(kind, error, state, tell, counted):
    decision = decide_send(kind, "uid-a", error, attempts=0, rng=random.Random(1))
    assert (decision.to, decision.tell, decision.count_attempt) == (state, tell, counted)
    assert "a bug" not in decision.reason and "Field required" not in decision.reason


def test_an_unknown_outcome_looks_after_two_minutes():
    decision = decide_send(C, "uid-a", OmiUnknownOutcome("504"), attempts=0, rng=random.Random(1))
    assert decision.unknown and decision.retry_in == FIRST_LOOK_SECONDS


@pytest.mark.parametrize(
    ("scope", "retry_after", "key", "seconds", "first"),
    [
        (RateLimitScope.QUOTA, 30.0, ("kind", "uid-a", "conversation"), 30.0, 1.0),
        (RateLimitScope.QUOTA, 0.0, ("kind", "uid-a", "conversation"), 1.0, 1.0),  # Retry-After: 0 → 1 s
        (RateLimitScope.QUOTA, None, ("kind", "uid-a", "conversation"), None, 1.0),  # 1 s doubling
        (RateLimitScope.BYOK, None, ("uid", "uid-a"), None, BYOK_FIRST_SECONDS),
        (RateLimitScope.KEY, 5.0, ("key",), 5.0, 1.0),
        (RateLimitScope.KEY, None, ("key",), None, 1.0),
    ],
)
def test_the_three_kinds_of_429_hold_different_scopes(scope, retry_after, key, seconds, first):
    decision = decide_send(C, "uid-a", limited(scope, retry_after), attempts=3, rng=random.Random(1))
    assert decision.hold is not None
    assert (decision.hold.key, decision.hold.seconds, decision.hold.first) == (key, seconds, first)
    assert not decision.count_attempt


def test_backoff_grows_and_the_twentieth_failure_is_final():
    rng = random.Random(7)
    waits = [decide_send(C, "u", OmiServerError("500"), attempts=n, rng=rng).retry_in for n in range(12)]
    assert waits[0] <= 1.0 and all(w is not None and w <= 600 for w in waits) and waits[11] >= 300
    last = decide_send(C, "u", OmiServerError("500"), attempts=MAX_ATTEMPTS - 1, rng=rng)
    assert last.to is F and last.code == "too_many_attempts"


@pytest.mark.parametrize(
    ("kind", "error", "found", "looks_done", "state"),
    [
        (C, None, True, 0, D),
        (C, None, False, 0, U),  # look again at 10 minutes
        (C, None, False, 1, P),  # then send again
        (M, None, False, 0, P),  # memories: one look, then send what is missing
        (C, forbidden(ForbiddenReason.MISSING_CAPABILITY), False, 0, F),
        (M, forbidden(ForbiddenReason.MISSING_CAPABILITY), False, 0, F),
        (C, forbidden(ForbiddenReason.NOT_ENABLED), False, 0, U),  # never blocked: that would skip the look
        (C, OmiServerError("503"), False, 0, U),
    ],
)
def test_what_a_look_means(kind, error, found, looks_done, state):
    decision = decide_look(kind, error, found=found, looks_done=looks_done, attempts=0, rng=random.Random(1))
    assert decision.to is state


def test_a_look_that_finds_nothing_to_read_says_so_in_words():
    c = decide_look(
        C, forbidden(ForbiddenReason.MISSING_CAPABILITY), found=False, looks_done=0, attempts=0, rng=random.Random(1)
    )
    m = decide_look(
        M, forbidden(ForbiddenReason.MISSING_CAPABILITY), found=False, looks_done=0, attempts=0, rng=random.Random(1)
    )
    assert (c.reason, m.reason) == (words.UNCONFIRMED_CONVERSATION, words.UNCONFIRMED_MEMORIES)
    assert (
        decide_look(
            C, forbidden(ForbiddenReason.NOT_ENABLED), found=False, looks_done=0, attempts=0, rng=random.Random(1)
        ).retry_in
        == BLOCKED_RETRY_SECONDS
    )


def test_an_internal_error_keeps_an_unknown_item_unknown():
    assert internal_error(U, 0, random.Random(1)).to is U
    assert internal_error(ItemState.SENDING, 0, random.Random(1)).to is P


def response(status: int, body: object = None, *, text: str | None = None, headers: dict | None = None):
    if text is not None:
        return httpx.Response(status, text=text, headers=headers)
    return httpx.Response(status, json=body, headers=headers)


@pytest.mark.parametrize(
    ("answer", "scope", "retry_after"),
    [
        (response(429, {"detail": "Rate limit exceeded. Try again in 42s."}), RateLimitScope.QUOTA, 42.0),
        (
            response(429, {"detail": "Rate limit exceeded. Try again in 0s."}, headers={"Retry-After": "0"}),
            RateLimitScope.QUOTA,
            0.0,
        ),
        (
            response(
                429, {"error": "Rate limit exceeded. Maximum 10 requests per hour."}, headers={"Retry-After": "9"}
            ),
            RateLimitScope.QUOTA,
            9.0,
        ),
        (response(429, {"detail": {"code": "byok_rate_limit", "message": "slow down"}}), RateLimitScope.BYOK, None),
        (response(429, text="<html>429 Too Many Requests</html>"), RateLimitScope.KEY, None),
        (response(429, {}, headers={"Retry-After": "3"}), RateLimitScope.KEY, 3.0),
    ],
)
def test_429_bodies_say_which_kind_they_are(answer, scope, retry_after):
    error = _error_for(answer, "create_conversation")
    assert isinstance(error, OmiRateLimited)
    assert (error.scope, error.retry_after) == (scope, retry_after)


def test_the_readback_503_is_an_unknown_outcome_and_other_503s_are_server_errors():
    after = _error_for(response(503, {"detail": "Canonical memory write readback unavailable"}), "create_memories")
    assert isinstance(after, OmiUnknownOutcome)
    for detail in (
        "Memory writes are globally paused",
        "Memory write control is invalid",
        {"code": "provider_unavailable", "message": "down"},
    ):
        assert type(_error_for(response(503, {"detail": detail}), "create_memories")) is OmiServerError
    staged = _error_for(response(502, {"error": "upstream failed"}), "create_conversation")
    assert type(staged) is OmiServerError
