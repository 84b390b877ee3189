"""What users are told about Omi's answers: the one mapping from Omi errors to fixed phrases.

A phrase shown to a user (or stored as an item's reason) never holds exception text, which can carry URLs with
tokens or the user's own content echoed back by a validation error.
"""

from __future__ import annotations

from bot.omi.errors import (
    ForbiddenReason,
    OmiError,
    OmiForbidden,
    OmiNotFound,
    OmiRateLimited,
    OmiUnauthorized,
    OmiValidationError,
    RateLimitScope,
)

# --- waiting (the item is kept and retried) ---------------------------------------------------------------
RATE_LIMITED = "Omi's rate limit"
BYOK_RATE_LIMITED = "your own AI provider key (set in the Omi app) is rate-limited at your provider"
OMI_BUSY = "Omi is busy right now"
UNAVAILABLE = "Omi is unavailable"
NO_ANSWER = "Omi did not answer in time"
NOT_ENABLED = "the omi-bridge app is not enabled in your Omi app"
INTERNAL = "an internal error"

# --- failed for good --------------------------------------------------------------------------------------
TOO_OLD = "it could not be delivered for 7 days"
UNREADABLE = "the bridge could not read its stored copy"
UNCONFIRMED_CONVERSATION = (
    "Omi did not confirm it and this bridge cannot read conversations to check, so it may not be saved;"
    " send it again if it is missing in Omi"
)
UNCONFIRMED_MEMORIES = (
    "Omi did not confirm them and this bridge cannot read memories to check, so they may not be saved;"
    " send them again if they are missing in Omi"
)
UNCONFIRMED_EXTRACT = (
    "Omi did not confirm it, and asking Omi to extract again could save the same memories twice, so it may not be"
    " saved; check your memories in Omi and send it again if they are missing"
)
PRIVATE_APP = "this omi-bridge's Omi app is private: ask its operator to add you as a tester or publish it"


def too_many_attempts(reason: str, attempts: int) -> str:
    return f"{reason}, and it failed {attempts} times"


def write_refused(exc: OmiError) -> str:
    """Why Omi refused a write for good, in plain words."""
    if isinstance(exc, OmiForbidden):
        return {
            ForbiddenReason.BAD_KEY: "the bridge's Omi key was refused (the operator must fix OMI_API_KEY)",
            ForbiddenReason.MISSING_CAPABILITY: "the Omi app is not allowed to do this (missing capability)",
            ForbiddenReason.NOT_ENABLED: NOT_ENABLED,
            ForbiddenReason.NOT_INSTALLED: NOT_ENABLED,
        }.get(exc.reason, "Omi refused it")
    if isinstance(exc, OmiUnauthorized):
        return "the bridge is not authorised with Omi (the operator must fix OMI_API_KEY)"
    if isinstance(exc, OmiNotFound):
        return "Omi does not know this app (the operator must check OMI_APP_ID)"
    if isinstance(exc, OmiValidationError):
        return "Omi rejected the content as invalid"
    return "Omi refused it"


def waiting_for(exc: OmiRateLimited) -> str:
    """Why an item waits after a 429."""
    return {RateLimitScope.BYOK: BYOK_RATE_LIMITED, RateLimitScope.KEY: OMI_BUSY}.get(exc.scope, RATE_LIMITED)


def read_failed(exc: OmiError) -> str:
    """A read (`/recent`, `/memories`, `/search`, App Home) that Omi did not answer."""
    if isinstance(exc, OmiForbidden):
        if exc.reason in (ForbiddenReason.NOT_ENABLED, ForbiddenReason.NOT_INSTALLED):
            return "Omi says the omi-bridge app is not enabled for your account: enable it in the Omi app."
        if exc.reason is ForbiddenReason.MISSING_CAPABILITY:
            return "This Omi app is not allowed to read that (missing capability); ask the operator."
        return "Omi refused the request (the bridge's key may be wrong); ask the operator."
    if isinstance(exc, OmiRateLimited):
        return "Omi is rate-limiting right now; try again in a minute."
    return "Omi did not answer; try again in a minute."


def code_refused(exc: OmiError) -> str:
    """Omi refused to show a linking code, for good."""
    if isinstance(exc, OmiNotFound):
        return f"I could not send your code: {PRIVATE_APP}."
    return f"I could not send your code: {write_refused(exc)}. Ask the operator."
