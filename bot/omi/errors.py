"""One exception per class of Omi answer, so callers decide by type and never parse strings twice."""

from __future__ import annotations

from enum import StrEnum
from typing import Any


class OmiError(Exception):
    """Base of every Omi failure. `detail` is Omi's own `detail` (string or pydantic list), never our secrets."""

    #: Could sending the same request again later succeed?
    retryable: bool = False

    def __init__(self, message: str, *, status: int | None = None, detail: Any = None, route: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.detail = detail
        self.route = route

    def __repr__(self) -> str:
        return f"{type(self).__name__}(status={self.status!r}, route={self.route!r}, message={str(self)!r})"


class OmiValidationError(OmiError):
    """422 (pydantic list or Omi's own string) or 400 (bad date): the request itself is wrong."""


class OmiUnauthorized(OmiError):
    """401: the Authorization header was missing or malformed."""


class ForbiddenReason(StrEnum):
    BAD_KEY = "bad_key"
    NOT_ENABLED = "not_enabled"
    NOT_INSTALLED = "not_installed"
    MISSING_CAPABILITY = "missing_capability"
    OTHER = "other"


class OmiForbidden(OmiError):
    """403, with the reason read once from Omi's per-route wording."""

    def __init__(self, message: str, *, reason: ForbiddenReason, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.reason = reason


class OmiNotFound(OmiError):
    """404: `App not found`, or a route that does not exist (e.g. the removed `/user/facts`)."""


class RateLimitScope(StrEnum):
    """Whose limit a 429 is about (SPEC §7 "Kinds of 429")."""

    QUOTA = "quota"  # Omi's per-(app, uid) quota of one route: holds that uid's writes of that kind
    BYOK = "byok"  # the user's own AI provider key is rate-limited at their provider: backs that uid off
    KEY = "key"  # no Omi detail at all (a load balancer's cap per key): holds every uid of the key


class OmiRateLimited(OmiError):
    """429: try again after `retry_after` seconds (from `Retry-After`, else None: the caller picks)."""

    retryable = True

    def __init__(
        self,
        message: str,
        *,
        retry_after: float | None,
        scope: RateLimitScope = RateLimitScope.QUOTA,
        limit: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(message, **kwargs)
        self.retry_after = retry_after
        self.scope = scope
        self.limit = limit  # X-RateLimit-Limit: the sends a window allows (Omi's own quota only)


class OmiServerError(OmiError):
    """500/502/503, or a network failure before the request was sent: nothing was written, try again."""

    retryable = True


class OmiUnavailable(OmiServerError):
    """The request never reached Omi (connection refused, DNS, connect timeout, pool exhausted)."""


class OmiUnknownOutcome(OmiError):
    """504, a client timeout, or the connection lost after sending: Omi may still have done the write."""

    retryable = True


def forbidden_reason(detail: Any) -> ForbiddenReason:
    """Map Omi's 403 wording (which differs per route, typo included) onto one reason."""
    text = detail if isinstance(detail, str) else ""
    lowered = text.lower()
    if lowered.startswith("invalid") and "key" in lowered:
        return ForbiddenReason.BAD_KEY
    if "not enabled" in lowered:
        return ForbiddenReason.NOT_ENABLED
    if "not have this app installed" in lowered:
        return ForbiddenReason.NOT_INSTALLED
    if "capability" in lowered:
        return ForbiddenReason.MISSING_CAPABILITY
    return ForbiddenReason.OTHER


#: A memories-POST 503 that comes after the write: the memories may be stored (behaviour notes §9.2).
READBACK_UNAVAILABLE = "Canonical memory write readback unavailable"


def rate_limit_scope(body: Any) -> RateLimitScope:
    """Which 429 this is, from its body: Omi's quota says `Rate limit exceeded…` in `detail` (or, on the staged
    implementation, `error`); a BYOK one has `detail.code == "byok_rate_limit"`; anything else is not Omi's."""
    if not isinstance(body, dict):
        return RateLimitScope.KEY
    detail = body.get("detail")
    if isinstance(detail, dict) and detail.get("code") == "byok_rate_limit":
        return RateLimitScope.BYOK
    for text in (detail, body.get("error")):
        if isinstance(text, str) and text.startswith("Rate limit exceeded"):
            return RateLimitScope.QUOTA
    return RateLimitScope.KEY
