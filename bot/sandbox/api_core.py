"""Validation as the staged "API core" implementation does it (behaviour notes §9.6): plain-string 422s, its limits.

Still before auth, as on FastAPI. Documented: `Invalid conversation`, `Invalid pagination` and the empty-memories text;
text 1–100,000 characters and not blank; `text_source` any string ≤ 64 (default `audio`); `finished_at` not before
`started_at`; body under 1 MB; uid/app_id ≤ 256 characters without `/` or `\\`; at most 100 memories per request
(the rest silently dropped), content ≤ 50,000 characters, ≤ 100 tags of ≤ 256 characters; search `per_page` ≤ 100,
`query` ≤ 500 characters and ≤ 20 terms, more than 20 `statuses` → 400; notification `message` required, ≤ 2,000.
The wording of the other refusals (`Invalid uid`, `Invalid memories`, …) is this sandbox's guess in the same style.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

from aiohttp import web
from pydantic import BaseModel, Field, ValidationError, model_validator

from bot.sandbox.exceptions import (
    EMPTY_MEMORIES_DETAIL,
    INVALID_APP_ID,
    INVALID_CONVERSATION,
    INVALID_MEMORIES,
    INVALID_NOTIFICATION,
    INVALID_PAGINATION,
    INVALID_SEARCH,
    INVALID_UID,
    TOO_MANY_STATUSES,
    OmiError,
)
from bot.sandbox.validation import (
    FASTAPI_REQUESTS,
    Call,
    ConversationIn,
    ExplicitMemoryIn,
    MemoriesIn,
    SearchIn,
    validate_query,
)

MAX_BODY_BYTES = 1024 * 1024
MAX_ID_CHARS = 256
MAX_MEMORIES_PER_REQUEST = 100
MAX_MESSAGE_CHARS = 2000
MAX_QUERY_TERMS = 20
MAX_STATUSES = 20
DEFAULT_TEXT_SOURCE = "audio"


class ApiCoreConversationIn(ConversationIn):
    text: Annotated[str, Field(min_length=1, max_length=100_000)]
    text_source: Annotated[str, Field(max_length=64)] = DEFAULT_TEXT_SOURCE  # type: ignore[assignment]
    source: str | None = None  # type: ignore[assignment]

    @model_validator(mode="after")
    def _text_and_times(self) -> ApiCoreConversationIn:
        if not self.text.strip():
            raise ValueError("text is blank")
        if self.started_at and self.finished_at and self.finished_at < self.started_at:
            raise ValueError("finished_at is before started_at")
        return self


class ApiCoreMemoryIn(ExplicitMemoryIn):
    content: Annotated[str, Field(max_length=50_000)]
    tags: Annotated[list[Annotated[str, Field(max_length=256)]], Field(max_length=100)] | None = None


class ApiCoreMemoriesIn(MemoriesIn):
    text: str | None = None  # optional here, unlike FastAPI's required-but-nullable key
    memories: list[ApiCoreMemoryIn] | None = None  # type: ignore[assignment]


class ApiCoreSearchIn(SearchIn):
    query: Annotated[str, Field(max_length=500)] = ""
    statuses: list[str] | None = None  # page and per_page: `_check_search`, which answers `Invalid pagination`


_BODIES: dict[str, tuple[type[BaseModel], str]] = {
    "create_conversation": (ApiCoreConversationIn, INVALID_CONVERSATION),
    "create_memories": (ApiCoreMemoriesIn, INVALID_MEMORIES),
    "search_conversations": (ApiCoreSearchIn, INVALID_SEARCH),
}


def _valid_id(value: Any) -> bool:
    return isinstance(value, str) and 0 < len(value) <= MAX_ID_CHARS and "/" not in value and "\\" not in value


async def validate_api_core(route: str, request: web.Request) -> Call:
    """API core's checks before auth; an OmiError 422 (400 for too many statuses) with a plain-string detail."""
    app_id = request.match_info["app_id"]
    params, _ = FASTAPI_REQUESTS[route]
    query, errors = validate_query(request.query, params)
    if not _valid_id(query.get("uid")):
        raise OmiError(422, INVALID_UID)
    if not _valid_id(app_id):
        raise OmiError(422, INVALID_APP_ID)
    if route == "notification":
        message = query.get("message")
        if errors or not message or len(message) > MAX_MESSAGE_CHARS:
            raise OmiError(422, INVALID_NOTIFICATION)
    elif errors:
        raise OmiError(422, INVALID_PAGINATION)
    payload = await _body(route, request) if route in _BODIES else None
    return Call(route, app_id, query["uid"], query, payload)


async def _body(route: str, request: web.Request) -> BaseModel:
    model, invalid = _BODIES[route]
    raw = await request.read()
    if len(raw) >= MAX_BODY_BYTES:
        raise OmiError(422, invalid)
    try:
        body = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise OmiError(422, invalid) from None
    if not isinstance(body, dict):
        raise OmiError(422, invalid)
    if isinstance(body.get("memories"), list):
        body["memories"] = body["memories"][:MAX_MEMORIES_PER_REQUEST]  # silently, as API core does
    if route == "search_conversations":
        _check_search(body)
    try:
        payload = model.model_validate(body)
    except ValidationError:
        raise OmiError(422, invalid) from None
    if isinstance(payload, ApiCoreMemoriesIn) and not (payload.text and payload.text.strip()) and not payload.memories:
        raise OmiError(422, EMPTY_MEMORIES_DETAIL)
    return payload


def _check_search(body: dict[str, Any]) -> None:
    page, per_page = body.get("page", 1), body.get("per_page", 10)
    for value, low, high in ((page, 1, None), (per_page, 1, 100)):
        if value is None:
            continue
        if not isinstance(value, int) or isinstance(value, bool) or value < low or (high and value > high):
            raise OmiError(422, INVALID_PAGINATION)
    query = body.get("query", "")
    if isinstance(query, str) and len(query.split()) > MAX_QUERY_TERMS:
        raise OmiError(422, INVALID_SEARCH)
    statuses = body.get("statuses")
    if isinstance(statuses, list) and len(statuses) > MAX_STATUSES:
        raise OmiError(400, TOO_MANY_STATUSES)
