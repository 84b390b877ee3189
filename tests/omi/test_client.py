"""`OmiClient` against a real `Sandbox` over HTTP on 127.0.0.1: every route, every class of answer, no key leaks."""

from __future__ import annotations

import contextlib
import json
import logging
import socket
import time
import traceback
from collections.abc import AsyncIterator, Awaitable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from email.utils import format_datetime
from typing import Any
from urllib.parse import parse_qsl

import httpx
import pytest

from bot.omi import client as client_module
from bot.omi.client import OmiClient, parse_retry_after
from bot.omi.errors import (
    ForbiddenReason,
    OmiError,
    OmiForbidden,
    OmiNotFound,
    OmiRateLimited,
    OmiServerError,
    OmiUnauthorized,
    OmiUnavailable,
    OmiUnknownOutcome,
    OmiValidationError,
)
from bot.omi.models import (
    Conversation,
    ExplicitMemory,
    Geolocation,
    Memory,
    NewConversation,
    NewMemories,
    SearchPage,
)
from bot.sandbox import ALL_CAPABILITIES, Sandbox

UID = "uid-ada"
STRANGER = "uid-stranger"
TIMEOUT = 5.0
MEANINGFUL = "We planned the quarterly project review meeting for Friday."
AUTH_DETAIL = "Missing or invalid Authorization header. Must be 'Bearer API_KEY'"

#: Omi's 403 wording for a bad key, per route (one with its typo).
KEY_WORDING = {
    "create_conversation": "Invalid integration API key",
    "create_memories": "Invalid integrationAPI key",
    "read_conversations": "Invalid API key",
    "read_memories": "Invalid integrationAPI key",
    "search_conversations": "Invalid API key",
    "notification": "Invalid API key",
}
ROUTES = tuple(KEY_WORDING)
CAPABILITY_ROUTES = tuple(route for route in ROUTES if route != "notification")


class RecordingTransport(httpx.AsyncHTTPTransport):
    """The real transport, keeping every request (body read) for assertions on what went on the wire."""

    def __init__(self) -> None:
        super().__init__()
        self.requests: list[httpx.Request] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        await request.aread()
        self.requests.append(request)
        return await super().handle_async_request(request)

    def last(self, path_end: str) -> httpx.Request:
        matching = [request for request in self.requests if request.url.path.endswith(path_end)]
        assert matching, f"no request to …{path_end}"
        return matching[-1]

    def last_json(self, path_end: str) -> dict[str, Any]:
        return json.loads(self.last(path_end).content)


@dataclass
class Rig:
    sandbox: Sandbox
    base_url: str
    app_id: str
    api_key: str
    client: OmiClient
    transport: RecordingTransport
    others: list[OmiClient] = field(default_factory=list)

    def client_with(self, *, app_id: str | None = None, api_key: str | None = None, **kwargs: Any) -> OmiClient:
        """Another client on the same sandbox (closed with the rig)."""
        options: dict[str, Any] = {"create_timeout": TIMEOUT, "read_timeout": TIMEOUT, **kwargs}
        other = OmiClient(
            options.pop("base_url", self.base_url),
            app_id or self.app_id,
            self.api_key if api_key is None else api_key,
            **options,
        )
        self.others.append(other)
        return other


@contextlib.asynccontextmanager
async def running_rig(**limits: int) -> AsyncIterator[Rig]:
    sandbox = Sandbox(":memory:", **{"conversations_per_hour": 0, "memories_per_hour": 0, **limits})
    base_url = await sandbox.start("127.0.0.1", 0)
    try:
        app = sandbox.create_app(name="client-tests", capabilities=ALL_CAPABILITIES)
        sandbox.enable(app.app_id, UID)
        transport = RecordingTransport()
        client = OmiClient(
            base_url, app.app_id, app.api_key, create_timeout=TIMEOUT, read_timeout=TIMEOUT, transport=transport
        )
        rig = Rig(sandbox, base_url, app.app_id, app.api_key, client, transport)
        try:
            yield rig
        finally:
            for other in [client, *rig.others]:
                await other.aclose()
    finally:
        await sandbox.stop()
        sandbox.close()


@pytest.fixture
async def rig() -> AsyncIterator[Rig]:
    async with running_rig() as running:
        yield running


def call(route: str, client: OmiClient, uid: str = UID) -> Awaitable[Any]:
    """One valid request on `route`."""
    if route == "create_conversation":
        return client.create_conversation(uid, NewConversation(text=MEANINGFUL, text_source_spec="telegram"))
    if route == "create_memories":
        return client.create_memories(uid, NewMemories(memories=[ExplicitMemory(content="User likes green tea")]))
    if route == "read_conversations":
        return client.read_conversations(uid)
    if route == "read_memories":
        return client.read_memories(uid)
    if route == "search_conversations":
        return client.search_conversations(uid, "project")
    if route == "notification":
        return client.send_notification(uid, "hello from the tests")
    raise AssertionError(route)


def assert_no_secret(exc: BaseException, api_key: str) -> None:
    rendered = "".join(traceback.format_exception(exc))
    texts = [str(exc), repr(exc), repr(exc.args), rendered, repr(getattr(exc, "detail", None))]
    for text in texts:
        assert api_key not in text
        assert api_key.removeprefix("sk_") not in text


async def fails(rig: Rig, kind: type[OmiError], awaitable: Awaitable[Any]) -> Any:
    """Await, expect exactly an error of `kind` (or a subclass), and check the key is nowhere in it."""
    with pytest.raises(kind) as info:
        await awaitable
    assert_no_secret(info.value, rig.api_key)
    return info.value


def closed_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def at(day: int, hour: int = 10) -> datetime:
    return datetime(2024, 3, day, hour, tzinfo=UTC)


# --- every route -------------------------------------------------------------------------------------------------


async def test_create_conversation_sends_every_field_in_utc(rig: Rig) -> None:
    berlin = timezone(timedelta(hours=2))
    conversation = NewConversation(
        text="Alice: the release moved to Friday.\n\nBob: fine by me.",
        text_source="message",
        text_source_spec="telegram",
        started_at=datetime(2024, 3, 15, 12, 0, tzinfo=berlin),
        finished_at=datetime(2024, 3, 15, 12, 5, 30),  # naive: taken as UTC
        language="de",
        geolocation=Geolocation(latitude=52.52, longitude=13.405, address="Berlin"),
    )
    assert await rig.client.create_conversation(UID, conversation) is None

    sent = rig.transport.last_json("/user/conversations")
    assert sent == {
        "text": "Alice: the release moved to Friday.\n\nBob: fine by me.",
        "text_source": "message",
        "text_source_spec": "telegram",
        "started_at": "2024-03-15T10:00:00+00:00",
        "finished_at": "2024-03-15T12:05:30+00:00",
        "language": "de",
        "geolocation": {"latitude": 52.52, "longitude": 13.405, "address": "Berlin"},
    }
    request = rig.transport.last("/user/conversations")
    assert request.method == "POST"
    assert request.url.path == f"/v2/integrations/{rig.app_id}/user/conversations"
    assert dict(parse_qsl(request.url.query.decode())) == {"uid": UID}

    [stored] = rig.sandbox.conversations(UID)
    external = stored["external_data"]
    assert external["text"] == conversation.text
    assert external["text_source"] == "message"
    assert external["text_source_spec"] == "telegram"
    assert external["started_at"] == "2024-03-15T10:00:00Z"
    assert external["finished_at"] == "2024-03-15T12:05:30Z"
    assert external["language"] == "de"
    assert external["geolocation"]["latitude"] == 52.52
    assert external["geolocation"]["longitude"] == 13.405
    assert external["geolocation"]["address"] == "Berlin"
    assert stored["created_at"] == "2024-03-15T10:00:00Z"


async def test_create_conversation_minimal_body_leaves_out_unset_fields(rig: Rig) -> None:
    await rig.client.create_conversation(UID, NewConversation(text=MEANINGFUL))
    assert rig.transport.last_json("/user/conversations") == {"text": MEANINGFUL, "text_source": "message"}
    assert len(rig.sandbox.conversations(UID)) == 1


async def test_create_memories_explicit_always_sends_text_null(rig: Rig) -> None:
    memories = NewMemories(
        text_source_spec="telegram",
        memories=[ExplicitMemory(content="Likes green tea", tags=["food"]), ExplicitMemory(content="Lives in Berlin")],
    )
    await rig.client.create_memories(UID, memories)

    raw = rig.transport.last("/user/memories").content
    sent = json.loads(raw)
    assert "text" in sent
    assert sent["text"] is None
    assert sent == {
        "text": None,
        "text_source": "other",
        "text_source_spec": "telegram",
        "memories": [{"content": "Likes green tea", "tags": ["food"]}, {"content": "Lives in Berlin"}],
    }
    stored = {memory["content"]: memory for memory in rig.sandbox.memories(UID)}
    assert set(stored) == {"Likes green tea", "Lives in Berlin"}
    assert stored["Likes green tea"]["tags"] == ["food"]
    assert stored["Likes green tea"]["category"] == "system"
    assert stored["Lives in Berlin"]["app_id"] == rig.app_id


async def test_create_memories_extraction_records_source_id_but_extracts_again(rig: Rig) -> None:
    text = "I moved to Berlin in March last year. My sister works as a nurse in Hamburg."
    await rig.client.create_memories(UID, NewMemories(text=text, text_source_spec="telegram", source_id="item-1"))

    sent = rig.transport.last_json("/user/memories")
    assert sent == {"text": text, "text_source": "other", "text_source_spec": "telegram", "source_id": "item-1"}
    first = rig.sandbox.memories(UID)
    assert {memory["content"] for memory in first} == {
        "I moved to Berlin in March last year.",
        "My sister works as a nurse in Hamburg.",
    }
    # source_id is provenance only (behaviour notes §9.2): the same source with new text is extracted again.
    other_text = "We adopted a grey cat called Pixel last week."
    await rig.client.create_memories(UID, NewMemories(text=other_text, source_id="item-1"))
    assert len(rig.sandbox.memories(UID)) == 3


async def test_read_conversations_newest_first_with_parsed_fields(rig: Rig) -> None:
    for day in (12, 14, 10):
        await rig.client.create_conversation(
            UID, NewConversation(text=f"Project meeting notes from day {day}.", started_at=at(day))
        )
    conversations = await rig.client.read_conversations(UID)

    assert [c.started_at for c in conversations] == [at(14), at(12), at(10)]
    newest = conversations[0]
    assert isinstance(newest, Conversation)
    assert newest.external_text == "Project meeting notes from day 14."
    assert newest.created_at == at(14)
    assert newest.app_id == rig.app_id
    assert newest.status == "completed"
    assert newest.discarded is False
    assert newest.structured.title
    assert newest.structured.emoji


async def test_read_conversations_include_discarded(rig: Rig) -> None:
    await rig.client.create_conversation(UID, NewConversation(text=MEANINGFUL, started_at=at(10)))
    await rig.client.create_conversation(UID, NewConversation(text="ok", started_at=at(11)))

    visible = await rig.client.read_conversations(UID)
    assert [c.external_text for c in visible] == [MEANINGFUL]
    everything = await rig.client.read_conversations(UID, include_discarded=True)
    assert [(c.external_text, c.discarded) for c in everything] == [("ok", True), (MEANINGFUL, False)]
    query = parse_qsl(rig.transport.last("/conversations").url.query.decode())
    assert ("include_discarded", "true") in query


async def test_read_conversations_statuses_go_out_as_a_repeated_key(rig: Rig) -> None:
    await rig.client.create_conversation(UID, NewConversation(text=MEANINGFUL))

    found = await rig.client.read_conversations(UID, statuses=["completed", "processing"])
    assert len(found) == 1
    query = parse_qsl(rig.transport.last("/conversations").url.query.decode())
    assert [value for key, value in query if key == "statuses"] == ["completed", "processing"]
    assert "completed,processing" not in rig.transport.last("/conversations").url.query.decode()

    assert await rig.client.read_conversations(UID, statuses=["processing"]) == []


async def test_read_conversations_filters_on_start_and_end_date(rig: Rig) -> None:
    for day in (10, 12, 14):
        await rig.client.create_conversation(
            UID, NewConversation(text=f"Project meeting notes from day {day}.", started_at=at(day))
        )
    # 11:30 at +02:00 is 09:30 UTC: the 10:00 UTC conversation of the 12th is inside.
    start = datetime(2024, 3, 12, 11, 30, tzinfo=timezone(timedelta(hours=2)))
    end = at(13, 0)
    middle = await rig.client.read_conversations(UID, start_date=start, end_date=end)
    assert [c.started_at for c in middle] == [at(12)]

    query = dict(parse_qsl(rig.transport.last("/conversations").url.query.decode()))
    assert query["start_date"] == "2024-03-12T09:30:00.000Z"
    assert query["end_date"] == "2024-03-13T00:00:00.000Z"

    assert [c.started_at for c in await rig.client.read_conversations(UID, start_date=at(11))] == [at(14), at(12)]
    assert [c.started_at for c in await rig.client.read_conversations(UID, end_date=at(13))] == [at(12), at(10)]


async def test_read_conversations_pages_by_limit_and_offset(rig: Rig) -> None:
    for index in range(7):
        await rig.client.create_conversation(
            UID, NewConversation(text=f"Project meeting number {index} went well.", started_at=at(1 + index))
        )
    pages = [await rig.client.read_conversations(UID, limit=3, offset=offset) for offset in (0, 3, 6, 9)]

    assert [len(page) for page in pages] == [3, 3, 1, 0]
    ids = [c.id for page in pages for c in page]
    assert len(set(ids)) == 7
    assert [c.started_at for page in pages for c in page] == [at(7 - i) for i in range(7)]
    query = dict(parse_qsl(rig.transport.last("/conversations").url.query.decode()))
    assert (query["limit"], query["offset"]) == ("3", "9")


async def test_read_memories_returns_models_and_pages(rig: Rig) -> None:
    rig.sandbox.add_manual_memory(UID, "Typed in the Omi app", ["manual"])
    await rig.client.create_memories(
        UID, NewMemories(memories=[ExplicitMemory(content=f"Fact number {i}", tags=["t"]) for i in range(4)])
    )
    memories = await rig.client.read_memories(UID)

    assert all(isinstance(memory, Memory) for memory in memories)
    assert len(memories) == 5
    assert memories[0].content == "Typed in the Omi app"
    assert memories[0].manually_added is True
    explicit = {memory.content: memory for memory in memories[1:]}
    assert set(explicit) == {f"Fact number {i}" for i in range(4)}
    assert all(memory.tags == ["t"] and memory.app_id == rig.app_id for memory in explicit.values())
    assert all(memory.created_at is not None and memory.created_at.tzinfo is not None for memory in memories)

    pages = [await rig.client.read_memories(UID, limit=2, offset=offset) for offset in (0, 2, 4, 6)]
    assert [len(page) for page in pages] == [2, 2, 1, 0]
    assert [m.id for page in pages for m in page] == [m.id for m in memories]


async def test_send_notification_lands_in_the_sandbox(rig: Rig) -> None:
    message = "omi-bridge code 123456 for linking your Telegram account. Never share it. & ?uid=x #1 ✓"
    assert await rig.client.send_notification(UID, message) is None

    [notification] = rig.sandbox.notifications(UID)
    assert notification["message"] == message
    assert notification["app_id"] == rig.app_id
    request = rig.transport.last("/notification")
    assert request.method == "POST"
    assert dict(parse_qsl(request.url.query.decode())) == {"uid": UID, "message": message}


async def test_search_conversations_pages_by_page_and_total_pages(rig: Rig) -> None:
    for index in range(5):
        await rig.client.create_conversation(
            UID, NewConversation(text=f"Project kickoff meeting part {index}.", started_at=at(1 + index))
        )
    await rig.client.create_conversation(UID, NewConversation(text="Dinner with friends on Saturday night."))

    first = await rig.client.search_conversations(UID, "project", per_page=2)
    assert isinstance(first, SearchPage)
    assert (first.total_pages, first.current_page, first.per_page) == (3, 1, 2)
    pages = [first] + [await rig.client.search_conversations(UID, "project", page=n, per_page=2) for n in (2, 3)]
    assert [len(page.conversations) for page in pages] == [2, 2, 1]
    assert [page.current_page for page in pages] == [1, 2, 3]
    texts = [c.external_text or "" for page in pages for c in page.conversations]
    assert len(set(texts)) == 5
    assert all(text.startswith("Project kickoff") for text in texts)

    sent = rig.transport.last_json("/search/conversations")
    assert sent == {"query": "project", "page": 3, "per_page": 2, "include_discarded": True}

    nothing = await rig.client.search_conversations(UID, "volcano")
    assert (nothing.conversations, nothing.total_pages) == ([], 0)


async def test_search_conversations_date_filter_is_sent_in_utc(rig: Rig) -> None:
    for day in (10, 12, 14):
        await rig.client.create_conversation(
            UID, NewConversation(text=f"Project meeting notes from day {day}.", started_at=at(day))
        )
    page = await rig.client.search_conversations(UID, "project", start_date=at(11), end_date=at(13))
    assert [c.started_at for c in page.conversations] == [at(12)]
    sent = rig.transport.last_json("/search/conversations")
    assert (sent["start_date"], sent["end_date"]) == ("2024-03-11T10:00:00.000Z", "2024-03-13T10:00:00.000Z")


# --- every class of answer → one exception type -------------------------------------------------------------------


async def test_pydantic_422_list_from_a_fault(rig: Rig) -> None:
    detail = [{"type": "missing", "loc": ["body", "text"], "msg": "Field required", "input": {}}]
    rig.sandbox.add_fault("create_memories", status=422, detail=detail)
    exc = await fails(rig, OmiValidationError, call("create_memories", rig.client))
    assert exc.status == 422
    assert exc.detail == detail
    assert exc.route == "create_memories"
    assert "body.text: Field required" in str(exc)
    assert not exc.retryable


async def test_real_pydantic_422_from_the_sandbox(rig: Rig) -> None:
    exc = await fails(rig, OmiValidationError, rig.client.read_conversations(UID, limit=5000))
    assert exc.status == 422
    assert isinstance(exc.detail, list)
    assert exc.detail[0]["loc"] == ["query", "limit"]
    assert "query.limit" in str(exc)

    # A body without `text` (the model refuses to build one; bypass it) is the server's own 422 list.
    no_text = NewConversation.model_construct(text=None, text_source="message")
    exc = await fails(rig, OmiValidationError, rig.client.create_conversation(UID, no_text))
    assert [item["loc"] for item in exc.detail] == [["body", "text"]]
    assert rig.sandbox.conversations(UID) == []


async def test_empty_memories_is_a_422_with_a_string_detail(rig: Rig) -> None:
    exc = await fails(rig, OmiValidationError, rig.client.create_memories(UID, NewMemories()))
    assert exc.status == 422
    assert exc.detail == "Either text or explicit memories(facts) are required and cannot be empty"
    assert str(exc) == exc.detail


async def test_400_bad_date_is_a_validation_error(rig: Rig) -> None:
    detail = "Invalid start_date format. Use ISO format (YYYY-MM-DDTHH:MM:SS.sssZ) or YYYY-MM-DD"
    rig.sandbox.add_fault("read_conversations", status=400, detail=detail)
    exc = await fails(rig, OmiValidationError, rig.client.read_conversations(UID, start_date=at(1)))
    assert (exc.status, exc.detail, str(exc)) == (400, detail, detail)


async def test_401_is_unauthorized(rig: Rig) -> None:
    # The client always sends `Bearer <key>`, so only an injected answer produces Omi's 401.
    rig.sandbox.add_fault("read_memories", status=401, detail=AUTH_DETAIL)
    exc = await fails(rig, OmiUnauthorized, rig.client.read_memories(UID))
    assert (exc.status, exc.detail) == (401, AUTH_DETAIL)
    assert not exc.retryable


async def test_empty_key_never_reaches_omi_and_is_not_an_unknown_outcome(rig: Rig) -> None:
    client = rig.client_with(api_key="")
    exc = await fails(rig, OmiUnavailable, client.create_conversation(UID, NewConversation(text=MEANINGFUL)))
    assert not isinstance(exc, OmiUnknownOutcome)
    assert rig.sandbox.requests() == []


@pytest.mark.parametrize("route", ROUTES)
@pytest.mark.parametrize("variant", ["wrong key", "another app's key", "unknown app_id"])
async def test_403_bad_key_in_each_routes_wording(rig: Rig, route: str, variant: str) -> None:
    if variant == "wrong key":
        client = rig.client_with(api_key="sk_" + "0" * 32)
    elif variant == "another app's key":
        client = rig.client_with(api_key=rig.sandbox.create_app(name="other").api_key)
    else:
        client = rig.client_with(app_id="01HZZZZZZZZZZZZZZZZZZZZZZZ")
    exc = await fails(rig, OmiForbidden, call(route, client))
    assert exc.status == 403
    assert exc.detail == KEY_WORDING[route]
    assert exc.reason is ForbiddenReason.BAD_KEY
    assert exc.route == route
    assert not exc.retryable


@pytest.mark.parametrize("route", CAPABILITY_ROUTES)
async def test_403_not_enabled(rig: Rig, route: str) -> None:
    exc = await fails(rig, OmiForbidden, call(route, rig.client, uid=STRANGER))
    assert exc.detail == "App is not enabled for this user"
    assert exc.reason is ForbiddenReason.NOT_ENABLED


async def test_403_notification_not_installed(rig: Rig) -> None:
    exc = await fails(rig, OmiForbidden, call("notification", rig.client, uid=STRANGER))
    assert exc.detail == "User does not have this app installed"
    assert exc.reason is ForbiddenReason.NOT_INSTALLED
    assert rig.sandbox.notifications() == []


@pytest.mark.parametrize("route", CAPABILITY_ROUTES)
async def test_403_missing_capability(rig: Rig, route: str) -> None:
    rig.sandbox.set_capabilities(rig.app_id, [])
    exc = await fails(rig, OmiForbidden, call(route, rig.client))
    assert exc.detail.startswith("App does not have the capability to ")
    assert exc.reason is ForbiddenReason.MISSING_CAPABILITY


async def test_notification_needs_no_capability(rig: Rig) -> None:
    rig.sandbox.set_capabilities(rig.app_id, [])
    await call("notification", rig.client)
    assert len(rig.sandbox.notifications(UID)) == 1


@pytest.mark.parametrize("route", ROUTES)
async def test_404_app_not_found(rig: Rig, route: str) -> None:
    rig.sandbox.delete_app(rig.app_id)
    exc = await fails(rig, OmiNotFound, call(route, rig.client))
    assert (exc.status, exc.detail) == (404, "App not found")
    assert not exc.retryable


@pytest.mark.parametrize(
    ("route", "limit"),
    [
        ("create_conversation", "conversations_per_hour"),
        ("create_memories", "memories_per_hour"),
        ("notification", "notifications_per_hour"),
    ],
)
async def test_429_real_limit_gives_retry_after(route: str, limit: str) -> None:
    async with running_rig(**{limit: 1}) as rig:
        await call(route, rig.client)
        exc = await fails(rig, OmiRateLimited, call(route, rig.client))
        assert exc.status == 429
        assert exc.retry_after is not None
        assert 0 < exc.retry_after <= 3600
        assert exc.detail.startswith("Rate limit exceeded.")
        assert exc.retryable


async def test_429_fault_retry_after_header_and_without_one(rig: Rig) -> None:
    rig.sandbox.add_fault("create_conversation", status=429, retry_after=7)
    exc = await fails(rig, OmiRateLimited, call("create_conversation", rig.client))
    assert exc.retry_after == 7.0

    rig.sandbox.add_fault("create_conversation", status=429)
    exc = await fails(rig, OmiRateLimited, call("create_conversation", rig.client))
    assert exc.retry_after is None


@pytest.mark.parametrize("status", [500, 502, 503])
@pytest.mark.parametrize("route", ["create_conversation", "create_memories", "read_conversations"])
async def test_5xx_is_a_server_error_not_an_unknown_outcome(rig: Rig, status: int, route: str) -> None:
    rig.sandbox.add_fault(route, status=status)
    exc = await fails(rig, OmiServerError, call(route, rig.client))
    assert type(exc) is OmiServerError
    assert not isinstance(exc, OmiUnknownOutcome)
    assert exc.status == status
    assert exc.retryable
    assert rig.sandbox.conversations(UID) == []
    assert rig.sandbox.memories(UID) == []


async def test_500_keeps_omis_detail(rig: Rig) -> None:
    rig.sandbox.add_fault("create_conversation", status=500)
    exc = await fails(rig, OmiServerError, call("create_conversation", rig.client))
    assert str(exc) == "Error processing conversation, please try again later"


async def test_unexpected_status_is_a_plain_omi_error(rig: Rig) -> None:
    rig.sandbox.add_fault("read_memories", status=418, detail="I'm a teapot")
    exc = await fails(rig, OmiError, rig.client.read_memories(UID))
    assert type(exc) is OmiError
    assert (exc.status, str(exc)) == (418, "I'm a teapot")


async def test_504_after_the_write_is_an_unknown_outcome(rig: Rig) -> None:
    rig.sandbox.add_fault("create_conversation", status=504, after_write=True)
    exc = await fails(rig, OmiUnknownOutcome, call("create_conversation", rig.client))
    assert exc.status == 504
    assert exc.retryable
    [stored] = rig.sandbox.conversations(UID)
    assert stored["external_data"]["text"] == MEANINGFUL


async def test_client_timeout_on_a_create_is_an_unknown_outcome(rig: Rig) -> None:
    client = rig.client_with(create_timeout=0.3)
    rig.sandbox.add_fault("create_conversation", delay=1.0)
    started = time.monotonic()
    exc = await fails(rig, OmiUnknownOutcome, call("create_conversation", client))
    assert time.monotonic() - started < 0.9
    assert exc.status is None


async def test_reads_use_the_read_timeout_and_creates_the_create_timeout(rig: Rig) -> None:
    client = rig.client_with(create_timeout=3.0, read_timeout=0.3)
    rig.sandbox.add_fault("create_conversation", delay=0.5)
    await call("create_conversation", client)
    assert len(rig.sandbox.conversations(UID)) == 1
    rig.sandbox.add_fault("read_memories", delay=0.5)
    await fails(rig, OmiUnknownOutcome, call("read_memories", client))


async def test_dropped_connection_is_an_unknown_outcome(rig: Rig) -> None:
    rig.sandbox.add_fault("create_conversation", drop=True)
    exc = await fails(rig, OmiUnknownOutcome, call("create_conversation", rig.client))
    assert exc.status is None
    assert rig.sandbox.conversations(UID) == []

    rig.sandbox.add_fault("create_conversation", drop=True, after_write=True)
    await fails(rig, OmiUnknownOutcome, call("create_conversation", rig.client))
    assert len(rig.sandbox.conversations(UID)) == 1


async def test_connection_refused_is_unavailable(rig: Rig) -> None:
    client = rig.client_with(base_url=f"http://127.0.0.1:{closed_port()}")
    exc = await fails(rig, OmiUnavailable, call("create_conversation", client))
    assert isinstance(exc, OmiServerError)
    assert not isinstance(exc, OmiUnknownOutcome)
    assert exc.retryable


async def test_observer_sees_route_outcome_and_duration(rig: Rig) -> None:
    seen: list[tuple[str, str, float]] = []
    client = rig.client_with(observer=lambda route, outcome, seconds: seen.append((route, outcome, seconds)))
    await call("create_conversation", client)
    await fails(rig, OmiForbidden, call("read_memories", client, uid=STRANGER))
    refused = rig.client_with(base_url=f"http://127.0.0.1:{closed_port()}", observer=lambda *a: seen.append(a))
    await fails(rig, OmiUnavailable, call("read_memories", refused))
    assert [(route, outcome) for route, outcome, _ in seen] == [
        ("create_conversation", "200"),
        ("read_memories", "403"),
        ("read_memories", "unreachable"),
    ]
    assert all(seconds >= 0 for *_, seconds in seen)


# --- tolerant reads -----------------------------------------------------------------------------------------------


def test_conversation_model_tolerates_unknown_and_missing_fields() -> None:
    conversation = Conversation.model_validate(
        {
            "id": "c-1",
            "created_at": "2024-03-15T10:00:00Z",
            "source": "external_integration",
            "structured": {"title": "Standup", "emoji": "💼", "brand_new": 1},
            "external_data": {"text": "Standup notes", "started_at": "2024-03-15T10:00:00Z"},
            "geolocation": {"latitude": 1.5, "longitude": 2.5, "altitude": 7},
            "is_locked": False,
            "apps_results": [{"app_id": "x", "content": "y"}],
            "some_future_field": {"nested": [1, 2, 3]},
        }
    )
    assert conversation.created_at == at(15)
    assert conversation.started_at is None
    assert conversation.discarded is False
    assert conversation.structured.title == "Standup"
    assert conversation.structured.overview == ""
    assert conversation.external_text == "Standup notes"
    assert conversation.geolocation == Geolocation(latitude=1.5, longitude=2.5)

    bare = Conversation.model_validate({"id": "c-2", "structured": None})
    assert (bare.structured.title, bare.external_text, bare.status) == ("", None, None)
    assert Conversation.model_validate({"id": "c-3", "external_data": {"text": 5}}).external_text is None


def test_memory_model_tolerates_unknown_and_missing_fields() -> None:
    memory = Memory.model_validate(
        {
            "id": "m-1",
            "content": "Likes green tea",
            "category": "legacy_category",
            "tags": None,
            "headline": "Tea",
            "layer": "long_term",
            "evidence": [{"quote": "..."}],
            "valid_at": "2024-03-15T10:00:00Z",
        }
    )
    assert (memory.content, memory.category, memory.tags, memory.is_locked) == (
        "Likes green tea",
        "legacy_category",
        [],
        False,
    )
    bare = Memory.model_validate({"id": "m-2"})
    assert (bare.content, bare.tags, bare.created_at, bare.manually_added) == ("", [], None, None)
    assert SearchPage.model_validate({}).conversations == []


async def test_a_malformed_item_in_a_200_is_skipped_not_raised(rig: Rig) -> None:
    # A read answer may hold an item that does not parse; the good ones still come back and nothing but an
    # OmiError ever leaves the client.
    def answer(request: httpx.Request) -> httpx.Response:
        good = {"id": "ok-1", "content": "fine", "created_at": "2024-03-15T10:00:00Z"}
        bad = {"content": "no id", "created_at": "not a date"}
        if request.url.path.endswith("/search/conversations"):
            return httpx.Response(200, json={"conversations": [bad, good], "total_pages": 1, "current_page": 1})
        if request.url.path.endswith("/memories"):
            return httpx.Response(200, json={"memories": [bad, good, "junk"]})
        return httpx.Response(200, json={"conversations": [good, bad]})

    client = rig.client_with(transport=httpx.MockTransport(answer))
    assert [memory.id for memory in await client.read_memories(UID)] == ["ok-1"]
    assert [c.id for c in await client.read_conversations(UID)] == ["ok-1"]
    page = await client.search_conversations(UID, "x")
    assert ([c.id for c in page.conversations], page.total_pages) == (["ok-1"], 1)

    garbled = rig.client_with(transport=httpx.MockTransport(lambda _: httpx.Response(200, json={"total_pages": "n"})))
    await fails(rig, OmiServerError, garbled.search_conversations(UID, "x"))


# --- secrets ------------------------------------------------------------------------------------------------------


async def test_the_key_is_not_in_the_clients_repr(rig: Rig) -> None:
    assert rig.api_key not in repr(rig.client)
    assert rig.api_key not in str(rig.client)
    assert rig.app_id in repr(rig.client)


async def test_the_key_is_not_in_any_log_record(rig: Rig, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    await call("create_conversation", rig.client)
    await call("read_conversations", rig.client)
    await fails(rig, OmiForbidden, call("read_memories", rig.client, uid=STRANGER))
    rig.sandbox.add_fault("create_memories", status=503)
    await fails(rig, OmiServerError, call("create_memories", rig.client))

    assert any(record.name == "bot.omi.client" for record in caplog.records)
    assert len(caplog.records) >= 4
    for record in caplog.records:
        rendered = f"{record.getMessage()} {record.args!r} {record.exc_text or ''}"
        assert rig.api_key not in rendered
        assert rig.api_key.removeprefix("sk_") not in rendered
    assert rig.api_key not in caplog.text


# --- Retry-After and timeouts -------------------------------------------------------------------------------------


def _429(headers: dict[str, str] | None = None, detail: str = "Rate limit exceeded.") -> httpx.Response:
    return httpx.Response(429, headers=headers or {}, json={"detail": detail})


def test_parse_retry_after_delta_seconds() -> None:
    assert parse_retry_after(_429({"Retry-After": "7"})) == 7.0
    assert parse_retry_after(_429({"Retry-After": " 120 "})) == 120.0


def test_parse_retry_after_http_date() -> None:
    later = datetime.now(UTC) + timedelta(seconds=30)
    seconds = parse_retry_after(_429({"Retry-After": format_datetime(later, usegmt=True)}))
    assert seconds is not None
    assert 25 <= seconds <= 31
    past = format_datetime(datetime.now(UTC) - timedelta(hours=1), usegmt=True)
    assert parse_retry_after(_429({"Retry-After": past})) == 0.0


def test_parse_retry_after_falls_back_to_omis_text() -> None:
    assert parse_retry_after(_429(detail="Rate limit exceeded. Try again in 42s.")) == 42.0
    assert parse_retry_after(_429()) is None
    # A header that is neither a number nor a date does not crash: the text still tells.
    assert parse_retry_after(_429({"Retry-After": "soon"}, "Rate limit exceeded. Try again in 9s.")) == 9.0
    assert parse_retry_after(_429({"Retry-After": "soon"})) is None


async def test_create_timeout_outlasts_omis_120_s_and_reads_are_shorter() -> None:
    assert client_module.CREATE_TIMEOUT_SECONDS >= 150
    assert client_module.READ_TIMEOUT_SECONDS < client_module.CREATE_TIMEOUT_SECONDS
    async with OmiClient("http://127.0.0.1:9/", "app", "sk_" + "1" * 32) as client:
        assert client._create_timeout.read is not None
        assert client._create_timeout.read >= 150
        assert client._read_timeout.read is not None
        assert client._read_timeout.read < client._create_timeout.read
    assert client._http.is_closed


def test_every_sandbox_route_has_a_call_here() -> None:
    from bot.sandbox import ROUTES as SANDBOX_ROUTES

    assert set(SANDBOX_ROUTES) == set(ROUTES)
