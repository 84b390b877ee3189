"""`flavor="api-core"`: the staged second Omi implementation (behaviour notes §9.6)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from bot.sandbox import Sandbox
from tests.sandbox import START, UID, FakeClock, Omi, detail, running_omi

MEETING = "Alice: We planned the quarterly project review meeting for Friday. Bob will book the room."
CAPABILITY = "App does not have the required integration capability"
ROUTES = [
    "create_conversation",
    "create_memories",
    "read_conversations",
    "read_memories",
    "search_conversations",
    "notification",
]


@pytest.fixture
async def omi() -> AsyncIterator[Omi]:
    async with running_omi(flavor="api-core") as running:
        yield running


def test_unknown_flavor_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown sandbox flavor 'django'"):
        Sandbox(flavor="django")


# --- plain-string 422s, still before auth ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        {"text": ""},
        {"text": "   \n "},
        {"text": "x" * 100_001},
        {"text": "hello there friend", "text_source": "t" * 65},
        {"text": "hello there friend", "started_at": "2024-03-02T00:00:00Z", "finished_at": "2024-03-01T00:00:00Z"},
        {"text": "hello there friend", "padding": "p" * (1024 * 1024)},
        {"no": "text"},
        [],
    ],
)
async def test_bad_conversations_are_invalid_conversation_before_auth(omi: Omi, body: object) -> None:
    response = await omi.call("create_conversation", key="", json=body)
    assert (response.status_code, response.json()) == (422, {"detail": "Invalid conversation"})


async def test_conversation_limits_at_their_edges(omi: Omi) -> None:
    await omi.create("y" * 100_000, text_source="telegram", started_at="2024-03-01T00:00:00Z")
    await omi.create("Same start and end.", started_at="2024-03-01T00:00:00Z", finished_at="2024-03-01T00:00:00Z")
    assert len(omi.sandbox.conversations(UID)) == 2


@pytest.mark.parametrize(
    ("uid", "app_id", "expected"),
    [
        ("a/b", None, "Invalid uid"),
        ("a\\b", None, "Invalid uid"),
        ("u" * 257, None, "Invalid uid"),
        (None, None, "Invalid uid"),
        (UID, "A" * 257, "Invalid app_id"),
    ],
)
@pytest.mark.parametrize("route", ROUTES)
async def test_uid_and_app_id_rules(omi: Omi, route: str, uid: str | None, app_id: str | None, expected: str) -> None:
    response = await omi.call(route, uid=uid, app_id=app_id, key="")
    assert (response.status_code, response.json()) == (422, {"detail": expected})


async def test_a_256_character_uid_is_fine(omi: Omi) -> None:
    omi.sandbox.enable(omi.app.app_id, "u" * 256)
    assert (await omi.call("read_memories", uid="u" * 256)).status_code == 200


@pytest.mark.parametrize("route", ["read_conversations", "read_memories"])
@pytest.mark.parametrize(("name", "value"), [("limit", "0"), ("limit", "1001"), ("offset", "-1"), ("limit", "x")])
async def test_bad_paging_is_invalid_pagination_before_auth(omi: Omi, route: str, name: str, value: str) -> None:
    response = await omi.call(route, key="", params={name: value})
    assert (response.status_code, response.json()) == (422, {"detail": "Invalid pagination"})


async def test_memories_text_is_optional_and_empty_input_is_refused_before_auth(omi: Omi) -> None:
    await omi.remember({"memories": [{"content": "User likes green tea"}]})  # no `text` key at all
    for body in ({"memories": []}, {"text": "  "}, {}):
        response = await omi.call("create_memories", key="", json=body)
        assert (response.status_code, detail(response)) == (
            422,
            "Either text or explicit memories(facts) are required and cannot be empty",
        )


@pytest.mark.parametrize(
    "memory",
    [
        {"content": "c" * 50_001},
        {"content": "many tags", "tags": ["t"] * 101},
        {"content": "long tag", "tags": ["t" * 257]},
        {"tags": ["no content"]},
    ],
)
async def test_bad_memories_are_invalid_memories(omi: Omi, memory: dict) -> None:
    response = await omi.call("create_memories", key="", json={"memories": [memory]})
    assert (response.status_code, response.json()) == (422, {"detail": "Invalid memories"})


async def test_memory_limits_at_their_edges(omi: Omi) -> None:
    await omi.remember({"memories": [{"content": "c" * 50_000, "tags": ["t" * 256] * 100}]})
    assert len(omi.sandbox.memories(UID)) == 1


async def test_more_than_100_memories_are_silently_dropped(omi: Omi) -> None:
    await omi.remember({"memories": [{"content": f"Memory number {n}"} for n in range(105)]})
    contents = {m["content"] for m in omi.sandbox.memories(UID)}
    assert contents == {f"Memory number {n}" for n in range(100)}


@pytest.mark.parametrize(
    ("params", "expected"),
    [([("message", "m" * 2001)], "Invalid notification"), ([("message", "")], "Invalid notification")],
)
async def test_notification_message_rules(omi: Omi, params: list, expected: str) -> None:
    response = await omi.http.post(f"/v2/integrations/{omi.app.app_id}/notification", params=[("uid", UID), *params])
    assert (response.status_code, response.json()) == (422, {"detail": expected})
    fine = await omi.http.post(
        f"/v2/integrations/{omi.app.app_id}/notification",
        params={"uid": UID, "message": "m" * 2000},
        headers={"Authorization": f"Bearer {omi.app.api_key}"},
    )
    assert fine.status_code == 200


@pytest.mark.parametrize(
    ("body", "status", "expected"),
    [
        ({"query": "", "per_page": 101}, 422, "Invalid pagination"),
        ({"query": "", "page": 0}, 422, "Invalid pagination"),
        ({"query": "q" * 501}, 422, "Invalid search"),
        ({"query": " ".join(["word"] * 21)}, 422, "Invalid search"),
        ({"query": "", "statuses": ["completed"] * 21}, 400, "Too many statuses"),
    ],
)
async def test_search_rules(omi: Omi, body: dict, status: int, expected: str) -> None:
    response = await omi.call("search_conversations", key="", json=body)
    assert (response.status_code, response.json()) == (status, {"detail": expected})


async def test_search_at_its_edges(omi: Omi) -> None:
    await omi.create(MEETING)
    body = {"query": " ".join(["meeting"] * 20), "per_page": 100, "statuses": ["completed"] * 20}
    response = await omi.call("search_conversations", json=body)
    assert response.status_code == 200
    assert [c["transcript_segments"][0]["text"] for c in response.json()["conversations"]] == [MEETING]
    assert (await omi.call("search_conversations", json={"query": "", "statuses": ["processing"]})).json()[
        "conversations"
    ] == []


# --- 403 wording ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("route", ROUTES)
async def test_wrong_key_is_invalid_api_key_without_the_typo(omi: Omi, route: str) -> None:
    response = await omi.call(route, key="sk_" + "0" * 32)
    assert (response.status_code, detail(response)) == (403, "Invalid API key")


@pytest.mark.parametrize("route", ROUTES[:5])
async def test_missing_capability_has_one_wording(omi: Omi, route: str) -> None:
    omi.sandbox.set_capabilities(omi.app.app_id, [])
    response = await omi.call(route)
    assert (response.status_code, detail(response)) == (403, CAPABILITY)


async def test_401_404_and_not_enabled_read_as_on_fastapi(omi: Omi) -> None:
    assert detail(await omi.call("read_memories", key="")) == (
        "Missing or invalid Authorization header. Must be 'Bearer API_KEY'"
    )
    assert detail(await omi.call("read_memories", uid="stranger")) == "App is not enabled for this user"
    omi.sandbox.delete_app(omi.app.app_id)
    assert detail(await omi.call("read_memories")) == "App not found"


# --- what is stored ---------------------------------------------------------------------------------------------------


async def test_conversation_keeps_no_text_in_external_data_and_one_segment(omi: Omi) -> None:
    omi.clock.advance(42)
    await omi.create(
        MEETING,
        text_source="message",
        text_source_spec="telegram",
        started_at="2024-03-01T09:00:00Z",
        finished_at="2024-03-01T09:01:30Z",
    )
    [conversation] = (await omi.call("read_conversations")).json()["conversations"]
    assert conversation["external_data"] == {
        "integration": {
            "app_id": omi.app.app_id,
            "text_source": "message",
            "text_source_spec": "telegram",
            "language": "en",
        }
    }
    assert conversation["transcript_segments"] == [
        {"text": MEETING, "speaker": "SPEAKER_00", "is_user": False, "start": 0.0, "end": 90.0}
    ]
    assert conversation["created_at"] == "2024-03-15T00:00:42Z"  # the import time, not started_at
    assert conversation["started_at"] == "2024-03-01T09:00:00Z"
    assert Sandbox.conversation_text(conversation) == MEETING
    assert omi.sandbox.conversation_texts(UID) == [MEETING]


async def test_default_text_source_is_audio_and_nothing_is_discarded(omi: Omi) -> None:
    await omi.create("ok")
    [conversation] = (await omi.call("read_conversations")).json()["conversations"]  # include_discarded=false
    assert conversation["discarded"] is False
    assert conversation["external_data"]["integration"]["text_source"] == "audio"


async def test_conversations_sort_by_import_time_not_by_started_at(omi: Omi) -> None:
    await omi.create("Notes from the older meeting in March.", started_at="2024-03-10T00:00:00Z")
    omi.clock.advance(1)
    await omi.create("Notes from an even older meeting.", started_at="2020-01-01T00:00:00Z")
    assert omi.sandbox.conversation_texts(UID) == [
        "Notes from an even older meeting.",
        "Notes from the older meeting in March.",
    ]
    today = await omi.call("read_conversations", params={"start_date": "2024-03-15"})
    assert len(today.json()["conversations"]) == 2  # dates filter on created_at, the import time


async def test_memory_ids_are_random_so_a_repeat_is_a_duplicate(omi: Omi) -> None:
    for _ in range(2):
        await omi.remember({"memories": [{"content": "User likes jazz"}]})
    memories = omi.sandbox.memories(UID)
    assert [m["content"] for m in memories] == ["User likes jazz", "User likes jazz"]
    assert memories[0]["id"] != memories[1]["id"]


async def test_memories_read_newest_updated_first(omi: Omi) -> None:
    omi.sandbox.add_manual_memory(UID, "Added by hand first")
    for content in ("An explicit memory", "The extracted sentence is here."):
        omi.clock.advance(10)
        body = {"memories": [{"content": content}]} if content.startswith("An") else {"text": content}
        await omi.remember(body)
    memories = (await omi.call("read_memories")).json()["memories"]
    assert [m["content"] for m in memories] == [
        "The extracted sentence is here.",
        "An explicit memory",
        "Added by hand first",
    ]


# --- rate limits ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("route", "limit"), [("create_conversation", 10), ("create_memories", 60)])
async def test_creates_are_limited_per_utc_hour_after_the_capability_check(route: str, limit: int) -> None:
    async with running_omi(flavor="api-core", clock=FakeClock(START + 3000)) as omi:
        rejected = [(await omi.call(route, uid="stranger")).status_code for _ in range(limit + 2)]
        assert set(rejected) == {403}  # refused requests do not count
        assert [(await omi.call(route)).status_code for _ in range(limit)] == [200] * limit
        limited = await omi.call(route)
        assert limited.status_code == 429
        assert detail(limited) == f"Rate limit exceeded. Maximum {limit} requests per hour."
        assert limited.headers["Retry-After"] == "600"  # the next UTC hour
        assert "X-RateLimit-Remaining" not in limited.headers
        omi.sandbox.set_capabilities(omi.app.app_id, [])
        assert (await omi.call(route)).status_code == 403  # the capability check comes first
        omi.sandbox.set_capabilities(omi.app.app_id, ["create_conversation", "create_memories"])
        omi.clock.advance(600)
        assert (await omi.call(route)).status_code == 200


async def test_exactly_ten_notifications_per_hour() -> None:
    async with running_omi(flavor="api-core", clock=FakeClock(START + 3000)) as omi:
        remaining = [(await omi.call("notification")).headers["X-RateLimit-Remaining"] for _ in range(10)]
        assert remaining == [str(n) for n in range(9, -1, -1)]
        limited = await omi.call("notification")
        assert limited.status_code == 429
        assert detail(limited) == "Rate limit exceeded. Maximum 10 requests per hour."
        assert limited.headers["Retry-After"] == "600"
        assert omi.sandbox.limits()["notifications_per_hour"] == 10


# --- infrastructure errors -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "status", "body"),
    [
        ({"status": 503}, 503, {"error": "Service Unavailable"}),
        ({"status": 502}, 502, {"error": "Bad Gateway"}),
        ({"status": 500}, 500, {"error": "Internal Server Error"}),
        ({"kind": "provider_unavailable"}, 503, {"error": "The LLM provider is unavailable. Try again later."}),
    ],
)
async def test_infrastructure_errors_have_an_error_key_and_no_detail(
    omi: Omi, fields: dict, status: int, body: dict
) -> None:
    omi.sandbox.add_fault("create_conversation", **fields)
    response = await omi.call("create_conversation")
    assert (response.status_code, response.json()) == (status, body)


async def test_memory_503s_and_default_429_fault_on_api_core(omi: Omi) -> None:
    omi.sandbox.add_fault("create_memories", kind="memory_readback_unavailable")
    response = await omi.call("create_memories")
    assert (response.status_code, response.json()) == (503, {"error": "Canonical memory write readback unavailable"})
    assert len(omi.sandbox.memories(UID)) == 1
    omi.sandbox.add_fault("create_conversation", status=429, retry_after=60)
    limited = await omi.call("create_conversation")
    assert (detail(limited), limited.headers["Retry-After"]) == (
        "Rate limit exceeded. Maximum 10 requests per hour.",
        "60",
    )
