"""What a speech-to-text answer means for the job that asked for it (SPEC §11): try again later, or fail for good.

One pure decision, `classify`, turns an HTTP status and the parsed JSON body into one of two errors:

- `TranscriptionRetry` — 408, 429 rate limits, 5xx, timeouts, connection errors. `retry_after` is the server's
  `Retry-After` in seconds when it sent one (else None: the policy's backoff picks the wait).
- `TranscriptionFailed` — every other 4xx, and OpenAI's `insufficient_quota` / `invalid_api_key` *whatever the
  status*: OpenAI answers an exhausted quota with **429**, which must not be retried like a rate limit.

`reason` is a short fixed phrase fit to show the user (it ends up in `[voice message 0:42, not transcribed: reason]`):
it never carries the key, the URL or the service's own message — at most the status code.
"""

from __future__ import annotations

import email.utils
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

# --- the fixed phrases --------------------------------------------------------------------------------------------
OUT_OF_QUOTA = "the transcription service is out of quota"
BAD_KEY = "the transcription service refused the API key"
UNREADABLE = "the transcription service gave an unreadable answer"
TIMED_OUT = "the transcription service did not answer in time"
UNREACHABLE = "the transcription service could not be reached"
BAD_ADDRESS = "the transcription service address is not usable"

#: Error codes (OpenAI's `error.code`, else `error.type`) that are permanent whatever the status says.
_QUOTA_CODES = frozenset({"insufficient_quota", "billing_hard_limit_reached", "billing_not_active"})
_KEY_CODES = frozenset({"invalid_api_key", "account_deactivated"})


class TranscriptionError(Exception):
    """A transcription that did not produce text. `reason`: the user-safe phrase; `status`: HTTP status or None."""

    def __init__(self, reason: str, *, status: int | None = None, code: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status
        self.code = code


class TranscriptionRetry(TranscriptionError):
    """Worth trying again: after `retry_after` seconds when the service said so, else after the policy's backoff."""

    def __init__(
        self, reason: str, *, retry_after: float | None = None, status: int | None = None, code: str | None = None
    ) -> None:
        super().__init__(reason, status=status, code=code)
        self.retry_after = retry_after


class TranscriptionFailed(TranscriptionError):
    """Failed for good: trying again would get the same answer (or cost money for nothing)."""


def error_code(body: Any) -> str | None:
    """OpenAI's `{"error": {"code": …, "type": …}}` → the code (else the type), lower-case; None for other shapes.
    Also reads a flat `{"code": …}` / `{"error": "insufficient_quota"}`, which some compatible servers send."""
    if not isinstance(body, Mapping):
        return None
    error = body.get("error")
    candidates: list[Any] = []
    if isinstance(error, Mapping):
        candidates = [error.get("code"), error.get("type")]
    elif isinstance(error, str):
        candidates = [error]
    candidates.append(body.get("code"))
    for candidate in candidates:
        if isinstance(candidate, str) and candidate.strip():
            return candidate.strip().lower()
    return None


def _permanent_code(body: Any) -> tuple[str, str] | None:
    """(reason, code) when any of the body's code/type names a permanent condition."""
    if not isinstance(body, Mapping):
        return None
    error = body.get("error")
    seen = [error.get("code"), error.get("type")] if isinstance(error, Mapping) else [error]
    seen.append(body.get("code"))
    for value in seen:
        if not isinstance(value, str):
            continue
        code = value.strip().lower()
        if code in _QUOTA_CODES:
            return OUT_OF_QUOTA, code
        if code in _KEY_CODES:
            return BAD_KEY, code
    return None


def parse_retry_after(headers: Mapping[str, str], *, now: datetime | None = None) -> float | None:
    """Seconds to wait from `retry-after-ms` (OpenAI sends it), else `Retry-After` (seconds or an HTTP date);
    None when absent or unreadable. `headers` must look names up case-insensitively (httpx.Headers does)."""
    millis = headers.get("retry-after-ms")
    if millis:
        try:
            return max(0.0, float(millis.strip()) / 1000)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())
    if seconds != seconds or seconds in (float("inf"), float("-inf")):  # NaN / inf: not a wait
        return None
    return max(0.0, seconds)


def classify(status: int, body: Any, retry_after: float | None = None) -> TranscriptionError:
    """The error a non-success answer means. `body`: the parsed JSON (None when it was not JSON); `retry_after`:
    from `parse_retry_after`. Pure: the same inputs always give the same decision."""
    permanent = _permanent_code(body)
    if permanent is not None:  # before the status: OpenAI's out-of-quota is a 429
        reason, code = permanent
        return TranscriptionFailed(f"{reason} ({status})", status=status, code=code)
    code = error_code(body)
    if status == 429:
        return TranscriptionRetry(
            "the transcription service is rate limiting (429)", retry_after=retry_after, status=status, code=code
        )
    if status == 408:
        return TranscriptionRetry(f"{TIMED_OUT} (408)", retry_after=retry_after, status=status, code=code)
    if status >= 500:
        return TranscriptionRetry(
            f"the transcription service had an error ({status})", retry_after=retry_after, status=status, code=code
        )
    if status in (401, 403):
        return TranscriptionFailed(f"{BAD_KEY} ({status})", status=status, code=code)
    if status == 404:
        return TranscriptionFailed(
            "the transcription service has no such endpoint or model (404)", status=status, code=code
        )
    if status == 413:
        return TranscriptionFailed(
            "the file is too large for the transcription service (413)", status=status, code=code
        )
    if 400 <= status < 500:
        return TranscriptionFailed(f"the transcription service refused the file ({status})", status=status, code=code)
    if 300 <= status < 400:  # httpx does not follow redirects here: a moved or mistyped TRANSCRIBE_URL
        return TranscriptionFailed(f"the transcription service redirected elsewhere ({status})", status=status)
    return TranscriptionFailed(f"{UNREADABLE} ({status})", status=status, code=code)
