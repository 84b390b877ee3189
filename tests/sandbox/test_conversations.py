"""Created conversations, their read shape (§3.1), paging, filters (§1.4) and search (§8)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.sandbox import UID, Omi, detail, running_omi

MEETING = "Alice: We planned the quarterly project review meeting for Friday. Bob will book the room."


@pytest.fixture
async def omi() -> AsyncIterator[Omi]:
    async with running_omi() as running:
        yield running


async def read(omi: Omi, **params: object) -> list[dict]:
    response = await omi.call("read_conversations", params=[(k, str(v)) for k, v in params.items()])
    assert response.status_code == 200, response.text
    return response.json()["conversations"]


async def read_pairs(omi: Omi, pairs: list[tuple[str, str]]) -> list[dict]:
    response = await omi.call("read_conversations", params=pairs)
    assert response.status_code == 200, response.text
    return response.json()["conversations"]


async def test_created_conversation_has_omis_shape(omi: Omi) -> None:
    body = {
        "text": MEETING,
        "text_source": "message",
        "text_source_spec": "telegram",
        "started_at": "2024-03-14T09:30:00+01:00",
        "finished_at": "2024-03-14T08:45:00.5Z",
        "language": "de",
        "geolocation": {"latitude": 52.5, "longitude": 13.4},
        "source": "omi",
        "app_id": "someone-else",
        "unknown_key": "ignored",
    }
    response = await omi.call("create_conversation", json=body)
    assert (response.status_code, response.json()) == (200, {})
    [conversation] = await read(omi)
    assert conversation.pop("id")
    assert conversation == {
        "created_at": "2024-03-14T08:30:00Z",
        "started_at": "2024-03-14T08:30:00Z",
        "finished_at": "2024-03-14T08:45:00.500000Z",
        "source": "external_integration",
        "structured": {
            "title": "We planned the quarterly project review meeting for",
            "overview": "Alice: We planned the quarterly project review meeting for Friday. Bob will book the room.",
            "emoji": "💼",
            "category": "work",
            "action_items": [],
            "events": [],
        },
        "transcript_segments": [],
        "discarded": False,
        "app_id": omi.app.app_id,
        "language": "de",
        "external_data": {
            "started_at": "2024-03-14T08:30:00Z",
            "finished_at": "2024-03-14T08:45:00.500000Z",
            "text": MEETING,
            "text_source": "message",
            "text_source_spec": "telegram",
            "geolocation": {
                "google_place_id": None,
                "latitude": 52.5,
                "longitude": 13.4,
                "address": None,
                "location_type": None,
            },
            "source": "external_integration",
            "language": "de",
            "app_id": omi.app.app_id,
            "client_device_id": None,
            "client_platform": None,
        },
        "geolocation": {"latitude": 52.5, "longitude": 13.4},
        "status": "completed",
    }


async def test_defaults_come_from_the_clock(omi: Omi) -> None:
    await omi.create(MEETING)
    [conversation] = await read(omi)
    assert conversation["created_at"] == conversation["started_at"] == "2024-03-15T00:00:00Z"
    assert conversation["finished_at"] == "2024-03-15T00:05:00Z"
    assert conversation["language"] == "en"
    assert conversation["external_data"]["text_source"] == "audio_transcript"
    assert "geolocation" not in conversation
    assert conversation == omi.sandbox.conversations(UID)[0]


async def test_every_create_is_a_new_conversation(omi: Omi) -> None:
    await omi.create(MEETING, started_at="2024-03-01T10:00:00Z")
    await omi.create(MEETING, started_at="2024-03-01T10:00:00Z")
    conversations = await read(omi)
    assert len(conversations) == 2
    assert conversations[0]["id"] != conversations[1]["id"]


async def test_trivial_text_is_discarded_and_hidden_unless_asked_for(omi: Omi) -> None:
    await omi.create("ok thanks", started_at="2024-03-01T10:00:00Z")
    await omi.create(MEETING, started_at="2024-03-01T09:00:00Z")
    assert [c["structured"]["title"] for c in await read(omi)] == [
        "We planned the quarterly project review meeting for"
    ]
    everything = await read(omi, include_discarded="true")
    assert [(c["discarded"], c["structured"]["title"]) for c in everything] == [
        (True, ""),
        (False, "We planned the quarterly project review meeting for"),
    ]
    assert len(omi.sandbox.conversations(UID)) == 2


async def test_newest_created_at_first_then_limit_and_offset(omi: Omi) -> None:
    for day in (3, 1, 5, 2, 4):  # backdated creates sort into the past
        await omi.create(f"Day {day} notes about the garden project.", started_at=f"2024-03-0{day}T12:00:00Z")
    days = [c["started_at"][8:10] for c in await read(omi)]
    assert days == ["05", "04", "03", "02", "01"]
    assert [c["started_at"][8:10] for c in await read(omi, limit=2)] == ["05", "04"]
    assert [c["started_at"][8:10] for c in await read(omi, limit=2, offset=2)] == ["03", "02"]
    assert [c["started_at"][8:10] for c in await read(omi, limit=2, offset=4)] == ["01"]
    assert await read(omi, limit=2, offset=5) == []


async def test_statuses_is_a_repeated_key(omi: Omi) -> None:
    await omi.create(MEETING)
    assert len(await read_pairs(omi, [("statuses", "completed"), ("statuses", "processing")])) == 1
    assert await read_pairs(omi, [("statuses", "processing")]) == []
    assert await read_pairs(omi, [("statuses", "completed,processing")]) == []  # what the docs suggest: no match
    assert len(await read_pairs(omi, [])) == 1


@pytest.mark.parametrize(
    ("start", "end", "expected"),
    [
        ("2024-03-15", "2024-03-15", ["15T23:59:59.999999Z", "15T00:00:00Z"]),
        ("2024-03-15", None, ["16T00:00:00Z", "15T23:59:59.999999Z", "15T00:00:00Z"]),
        (None, "2024-03-14", ["14T23:59:59Z"]),
        ("2024-03-15T12:00:00Z", "2024-03-16T00:00:00Z", ["16T00:00:00Z", "15T23:59:59.999999Z"]),
        ("2024-03-15T13:00:00+01:00", "2024-03-15T23:59:59.999Z", []),
        ("2024-03-15T00:00:00.000Z", "2024-03-15T00:00:00Z", ["15T00:00:00Z"]),
        ("", "", ["16T00:00:00Z", "15T23:59:59.999999Z", "15T00:00:00Z", "14T23:59:59Z"]),
    ],
)
async def test_date_filters_on_created_at(omi: Omi, start: str | None, end: str | None, expected: list[str]) -> None:
    for stamp in (
        "2024-03-14T23:59:59Z",
        "2024-03-15T00:00:00Z",
        "2024-03-15T23:59:59.999999Z",
        "2024-03-16T00:00:00Z",
    ):
        await omi.create(MEETING, started_at=stamp)
    params = {name: value for name, value in (("start_date", start), ("end_date", end)) if value is not None}
    assert [c["created_at"][8:] for c in await read(omi, **params)] == expected


@pytest.mark.parametrize("value", ["15/03/2024", "2024-3-15", "yesterday", "2024-03-15T25:00:00Z", "2024-13-01"])
async def test_bad_dates_are_400_with_omis_text(omi: Omi, value: str) -> None:
    for name in ("start_date", "end_date"):
        response = await omi.call("read_conversations", params={name: value})
        assert response.status_code == 400
        assert detail(response) == f"Invalid {name} format. Use ISO format (YYYY-MM-DDTHH:MM:SS.sssZ) or YYYY-MM-DD"


async def test_unknown_query_parameters_are_ignored(omi: Omi) -> None:
    await omi.create(MEETING, started_at="2020-01-01T00:00:00Z")
    assert len(await read(omi, start="2024-01-01")) == 1  # omi#3066: `start` is not `start_date`


# --- search ------------------------------------------------------------------------------------------------------


async def search(omi: Omi, **body: object) -> dict:
    response = await omi.call("search_conversations", json=body)
    assert response.status_code == 200, response.text
    return response.json()


async def test_search_pages_matches_newest_first(omi: Omi) -> None:
    for day in range(1, 6):
        await omi.create(f"Garden planning session number {day} with tomatoes.", started_at=f"2024-03-0{day}T12:00:00Z")
    await omi.create("A completely different topic about taxes.", started_at="2024-03-06T12:00:00Z")
    first = await search(omi, query="garden TOMATOES", per_page=2)
    assert (first["total_pages"], first["current_page"], first["per_page"]) == (3, 1, 2)
    assert [c["started_at"][8:10] for c in first["conversations"]] == ["05", "04"]
    last = await search(omi, query="garden", page=3, per_page=2)
    assert [c["started_at"][8:10] for c in last["conversations"]] == ["01"]
    assert len((await search(omi))["conversations"]) == 6  # an empty query matches everything
    assert await search(omi, query="nothing-like-this") == {
        "conversations": [],
        "total_pages": 0,
        "current_page": 1,
        "per_page": 10,
    }


async def test_search_includes_discarded_by_default_and_filters_dates(omi: Omi) -> None:
    await omi.create("ok", started_at="2024-03-01T12:00:00Z")
    await omi.create(MEETING, started_at="2024-03-02T12:00:00Z")
    assert len((await search(omi))["conversations"]) == 2
    assert len((await search(omi, include_discarded=False))["conversations"]) == 1
    dated = await search(omi, start_date="2024-03-02", end_date="2024-03-02T23:00:00Z")
    assert [c["started_at"] for c in dated["conversations"]] == ["2024-03-02T12:00:00Z"]


async def test_search_needs_its_body(omi: Omi) -> None:
    response = await omi.call("search_conversations", json=None)
    assert response.status_code == 422
    assert detail(response) == [{"type": "missing", "loc": ["body"], "msg": "Field required", "input": None}]
