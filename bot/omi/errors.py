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


class OmiRateLimited(OmiError):
    """429: try again after `retry_after` seconds (from `Retry-After`, else None: the caller picks)."""

    retryable = True

    def __init__(self, message: str, *, retry_after: float | None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.retry_after = retry_after


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
