"""Omi's request models, and FastAPI's validation of them reproduced for aiohttp: the same 422 list bodies.

FastAPI parses the JSON body first (a decode error is answered alone, as `json_invalid` at `["body", <pos>]`), then
validates every query parameter on its own (`["query", name]`; a missing one has `input: null`), then the body model
(`["body", *loc]`; no body at all, or JSON `null`, is `missing` at `["body"]`), and answers all errors in one list.
"""

from __future__ import annotations

import email.message
import functools
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum
from typing import Annotated, Any, TypeVar

from aiohttp import web
from multidict import MultiMapping
from pydantic import BaseModel, Field, TypeAdapter, ValidationError

ModelT = TypeVar("ModelT", bound=BaseModel)

_REQUIRED: Any = object()


@dataclass(frozen=True)
class QueryParam:
    """One query parameter as a FastAPI handler declares it."""

    name: str
    adapter: TypeAdapter[Any]
    default: Any = _REQUIRED
    repeated: bool = False  # a List[...] parameter: every value of the repeated key


def required(name: str, annotation: Any) -> QueryParam:
    return QueryParam(name, TypeAdapter(annotation))


def optional(name: str, annotation: Any, default: Any, *, repeated: bool = False) -> QueryParam:
    return QueryParam(name, TypeAdapter(annotation), default, repeated)


def missing_error(loc: Sequence[str | int]) -> dict[str, Any]:
    return {"type": "missing", "loc": list(loc), "msg": "Field required", "input": None}


def validate_query(query: MultiMapping[str], params: Sequence[QueryParam]) -> tuple[dict[str, Any], list[dict]]:
    """Values by name, and FastAPI-style errors in declaration order. Unknown parameters are ignored."""
    values: dict[str, Any] = {}
    errors: list[dict[str, Any]] = []
    for param in params:
        raw_values = query.getall(param.name, [])
        if not raw_values:
            if param.default is _REQUIRED:
                errors.append(missing_error(("query", param.name)))
            else:
                values[param.name] = param.default
            continue
        # Starlette keeps the last value of a repeated key for a scalar parameter.
        raw = list(raw_values) if param.repeated else raw_values[-1]
        try:
            values[param.name] = param.adapter.validate_python(raw)
        except ValidationError as exc:
            errors += pydantic_errors(exc, ("query", param.name))
    return values, errors


class BodyRejected(Exception):
    """Validation failed (or the body could not be parsed): `response` is the answer, nothing else is checked."""

    def __init__(self, response: web.Response) -> None:
        super().__init__("request body rejected")
        self.response = response


async def read_body(request: web.Request) -> Any:
    """The parsed JSON body, None when there is none, or the raw text when it is not declared as JSON."""
    raw = await request.read()
    if not raw:
        return None
    content_type = request.headers.get("Content-Type")
    if content_type:
        message = email.message.Message()
        message["content-type"] = content_type
        subtype = message.get_content_subtype()
        if message.get_content_maintype() != "application" or not (subtype == "json" or subtype.endswith("+json")):
            return raw.decode("utf-8", "replace")
    try:
        return json.loads(raw)
    except json.JSONDecodeError as exc:
        error = {
            "type": "json_invalid",
            "loc": ["body", exc.pos],
            "msg": "JSON decode error",
            "input": {},
            "ctx": {"error": exc.msg},
        }
        raise BodyRejected(validation_response([error])) from None
    except UnicodeDecodeError:
        detail = {"detail": "There was an error parsing the body"}
        raise BodyRejected(json_response(detail, status=400)) from None


def validate_body(model: type[ModelT], body: Any) -> tuple[ModelT | None, list[dict[str, Any]]]:
    if body is None:
        return None, [missing_error(("body",))]
    try:
        return model.model_validate(body, from_attributes=True), []
    except ValidationError as exc:
        return None, pydantic_errors(exc, ("body",))


def pydantic_errors(exc: ValidationError, prefix: Sequence[str | int]) -> list[dict[str, Any]]:
    """`exc.errors(include_url=False)` with the location prefixed, made JSON-safe as FastAPI's encoder does."""
    out = []
    for error in exc.errors(include_url=False):
        item: dict[str, Any] = {
            "type": error["type"],
            "loc": [*prefix, *error["loc"]],
            "msg": error["msg"],
            "input": _jsonable(error.get("input")),
        }
        if "ctx" in error:
            item["ctx"] = _jsonable(error["ctx"])
        out.append(item)
    return out


def _jsonable(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, BaseException):
        return {}  # FastAPI's jsonable_encoder turns an exception in `ctx` into `{}`
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return str(value)


_dumps = functools.partial(json.dumps, ensure_ascii=False, separators=(",", ":"))


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    """JSON as FastAPI renders it: compact, UTF-8 (no `\\u` escapes)."""
    return web.json_response(body, status=status, headers=headers, dumps=_dumps)


def validation_response(errors: list[dict[str, Any]]) -> web.Response:
    return json_response({"detail": errors}, status=422)


# --- Omi's request models, field for field (declaration order is the order of 422 errors) ---------------------


class ConversationTextSource(str, Enum):  # noqa: UP042 - a str mixin gives pydantic's `enum` error, as Omi's
    audio_transcript = "audio_transcript"
    message = "message"
    other_text = "other_text"


class MemoryTextSource(str, Enum):  # noqa: UP042
    email = "email"
    social_post = "social_post"
    other = "other"


class ConversationSource(str, Enum):  # noqa: UP042
    """Omi's `ConversationSource`; the body's `source` is overwritten, but an unknown value is still a 422 (§9.3)."""

    friend = "friend"
    omi = "omi"
    fieldy = "fieldy"
    bee = "bee"
    plaud = "plaud"
    frame = "frame"
    friend_com = "friend_com"
    apple_watch = "apple_watch"
    phone = "phone"
    phone_call = "phone_call"
    desktop = "desktop"
    openglass = "openglass"
    screenpipe = "screenpipe"
    workflow = "workflow"
    sdcard = "sdcard"
    external_integration = "external_integration"
    limitless = "limitless"
    rayban_meta = "rayban_meta"
    onboarding = "onboarding"
    unknown = "unknown"


class GeolocationIn(BaseModel):
    google_place_id: str | None = None
    latitude: float
    longitude: float
    address: str | None = None
    location_type: str | None = None


class ConversationIn(BaseModel):
    started_at: datetime | None = None
    finished_at: datetime | None = None
    text: str
    text_source: ConversationTextSource = ConversationTextSource.audio_transcript
    text_source_spec: str | None = None
    geolocation: GeolocationIn | None = None
    source: ConversationSource | None = None  # validated, then overwritten by the server
    language: str | None = None
    app_id: str | None = None  # overwritten by the server
    client_device_id: str | None = None
    client_platform: str | None = None


class ExplicitMemoryIn(BaseModel):
    content: str
    tags: list[str] | None = None
    source_id: str | None = None
    source_url: str | None = None
    artifact_ref: dict[str, Any] | None = None


class MemoriesIn(BaseModel):
    text: str | None = Field(description="Required key, may be null (pydantic v2 `Optional` without a default)")
    text_source: MemoryTextSource = MemoryTextSource.other
    text_source_spec: str | None = None
    source_id: str | None = None
    source_url: str | None = None
    artifact_ref: dict[str, Any] | None = None
    app_id: str | None = None
    memories: list[ExplicitMemoryIn] | None = None


class SearchIn(BaseModel):
    query: str = ""
    page: int | None = 1
    per_page: int | None = 10
    include_discarded: bool | None = True
    start_date: str | None = None
    end_date: str | None = None
    speaker_id: str | None = None


_UID = required("uid", str)
_LIMIT = optional("limit", Annotated[int, Field(ge=1, le=1000)], 100)
_OFFSET = optional("offset", Annotated[int, Field(ge=0)], 0)
_MAX_SEGMENTS = optional("max_transcript_segments", Annotated[int, Field(ge=-1, le=1000)], 100)

#: Each route's query parameters, in the order Omi's handlers declare them.
UID_QUERY = (_UID,)
READ_CONVERSATIONS_QUERY = (
    _UID,
    _LIMIT,
    _OFFSET,
    optional("include_discarded", bool, False),
    optional("statuses", list[str], [], repeated=True),
    # Omi declares these `Union[datetime, str]`: any string passes validation; the handler answers 400 on bad ones.
    optional("start_date", str | None, None),
    optional("end_date", str | None, None),
    _MAX_SEGMENTS,
)
READ_MEMORIES_QUERY = (_UID, _LIMIT, _OFFSET)
SEARCH_QUERY = (_UID, _MAX_SEGMENTS)
NOTIFICATION_QUERY = (required("message", str), _UID)


#: Each route's (query parameters, body model or None) as FastAPI declares them.
FASTAPI_REQUESTS: dict[str, tuple[tuple[QueryParam, ...], type[BaseModel] | None]] = {
    "create_conversation": (UID_QUERY, ConversationIn),
    "create_memories": (UID_QUERY, MemoriesIn),
    "read_conversations": (READ_CONVERSATIONS_QUERY, None),
    "read_memories": (READ_MEMORIES_QUERY, None),
    "search_conversations": (SEARCH_QUERY, SearchIn),
    "notification": (NOTIFICATION_QUERY, None),
}


@dataclass
class Call:
    """One integration request that passed validation: which app and user it is for, and what it asked."""

    route: str
    app_id: str
    uid: str
    query: dict[str, Any]
    payload: Any = None
    headers: dict[str, str] = field(default_factory=dict)  # added to a successful answer (X-RateLimit-*)


async def validate_fastapi(route: str, request: web.Request) -> Call:
    """FastAPI's validation of one route: JSON first, then query and body errors together in one 422 list."""
    params, model = FASTAPI_REQUESTS[route]
    body = await read_body(request) if model is not None else None
    query, errors = validate_query(request.query, params)
    payload = None
    if model is not None:
        payload, body_errors = validate_body(model, body)
        errors += body_errors
    if errors:
        raise BodyRejected(validation_response(errors))
    return Call(route, request.match_info["app_id"], query["uid"], query, payload)
