"""Omi's error answers: the exact strings, and the two body shapes (`{"detail": …}` and API core's `{"error": …}`)."""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

from aiohttp import web

from bot.sandbox.validation import json_response

AUTH_DETAIL = "Missing or invalid Authorization header. Must be 'Bearer API_KEY'"
NOT_FOUND_DETAIL = "App not found"
NOT_ENABLED_DETAIL = "App is not enabled for this user"
NOT_INSTALLED_DETAIL = "User does not have this app installed"
EMPTY_MEMORIES_DETAIL = "Either text or explicit memories(facts) are required and cannot be empty"
SETUP_NOT_COMPLETED_DETAIL = "App setup is not completed"
CONVERSATION_FAILED_DETAIL = "Error processing conversation, please try again later"

# The three 503s of the newest memories POST (behaviour notes §9.2); the last comes after the write was stored.
MEMORY_WRITES_PAUSED = "Memory writes are globally paused"
MEMORY_WRITE_CONTROL_INVALID = "Memory write control is invalid"
MEMORY_READBACK_UNAVAILABLE = "Canonical memory write readback unavailable"

# API core's plain-string 422s (§9.6). Only the first three are documented; the rest follow their pattern.
INVALID_CONVERSATION = "Invalid conversation"
INVALID_PAGINATION = "Invalid pagination"
INVALID_MEMORIES = "Invalid memories"
INVALID_SEARCH = "Invalid search"
INVALID_NOTIFICATION = "Invalid notification"
INVALID_UID = "Invalid uid"
INVALID_APP_ID = "Invalid app_id"
TOO_MANY_STATUSES = "Too many statuses"


def bad_date_detail(name: str) -> str:
    return f"Invalid {name} format. Use ISO format (YYYY-MM-DDTHH:MM:SS.sssZ) or YYYY-MM-DD"


def retry_in_detail(seconds: int) -> str:
    """The FastAPI limiter's 429 text (§2)."""
    return f"Rate limit exceeded. Try again in {seconds}s."


def notifications_maximum_detail(maximum: int) -> str:
    """The FastAPI notification route's 429 text (§8)."""
    return f"Rate limit exceeded. Maximum {maximum} notifications per hour."


def requests_maximum_detail(maximum: int) -> str:
    """API core's 429 text (§9.6), the same for every limited route."""
    return f"Rate limit exceeded. Maximum {maximum} requests per hour."


def detail_response(status: int, detail: Any, headers: dict[str, str] | None = None) -> web.Response:
    """FastAPI's error body: `{"detail": …}` (a string, a pydantic list, or an object)."""
    return json_response({"detail": detail}, status, headers)


def error_response(status: int, message: str, headers: dict[str, str] | None = None) -> web.Response:
    """API core's infrastructure error body: `{"error": …}` and no `detail` key."""
    return json_response({"error": message}, status, headers)


def status_phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


class OmiError(Exception):
    """An answer Omi gives instead of doing the work: raised anywhere in a route, answered by its route wrapper."""

    def __init__(self, status: int, detail: Any, headers: dict[str, str] | None = None) -> None:
        super().__init__(f"{status}: {detail}")
        self.status = status
        self.detail = detail
        self.headers = dict(headers or {})

    def response(self) -> web.Response:
        return detail_response(self.status, self.detail, self.headers)


class InfrastructureError(OmiError):
    """API core's 5xx: `{"error": …}` instead of `{"detail": …}`."""

    def response(self) -> web.Response:
        return error_response(self.status, str(self.detail), self.headers)


class PlainTextError(OmiError):
    """An answer from in front of Omi (its load balancer): plain text, no Omi JSON `detail` at all."""

    def response(self) -> web.Response:
        return web.Response(status=self.status, text=str(self.detail), headers=self.headers)
