"""Created memories (§1.3): explicit ones, extraction, ids from content, `source_id` dedupe, and the read order."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from bot.sandbox import derive
from tests.sandbox import UID, Omi, running_omi


@pytest.fixture
async def omi() -> AsyncIterator[Omi]:
    async with running_omi() as running:
        yield running


async def read(omi: Omi, uid: str = UID, **params: object) -> list[dict]:
    response = await omi.call("read_memories", uid=uid, params={k: str(v) for k, v in params.items()})
    assert response.status_code == 200, response.text
    return response.json()["memories"]


async def test_explicit_memory_is_saved_as_written(omi: Omi) -> None:
    response = await omi.call(
        "create_memories",
        json={"text": None, "text_source": "other", "memories": [{"content": "User is vegetarian", "tags": ["food"]}]},
    )
    assert (response.status_code, response.json()) == (200, {})
    memory_id = derive.memory_id("User is vegetarian")
    assert await read(omi) == [
        {
            "id": memory_id,
            "uid": UID,
            "content": "User is vegetarian",
            "category": "system",
            "visibility": "private",
            "tags": ["food"],
            "created_at": "2024-03-15T00:00:00Z",
            "updated_at": "2024-03-15T00:00:00Z",
            "memory_id": memory_id,
            "reviewed": True,
            "manually_added": False,
            "edited": False,
            "scoring": "00_999_1710460800",
            "data_protection_level": "standard",
            "is_locked": False,
            "kg_extracted": False,
            "app_id": omi.app.app_id,
        }
    ]


async def test_same_content_overwrites_instead_of_duplicating(omi: Omi) -> None:
    await omi.remember({"text": None, "memories": [{"content": "User likes jazz", "tags": ["music"]}]})
    omi.clock.advance(60)
    await omi.remember({"text": "", "memories": [{"content": "User likes jazz", "tags": ["music", "evening"]}]})
    [memory] = await read(omi)
    assert memory["tags"] == ["music", "evening"]
    assert (memory["created_at"], memory["updated_at"]) == ("2024-03-15T00:00:00Z", "2024-03-15T00:01:00Z")
    omi.sandbox.enable(omi.app.app_id, "user-2")
    await omi.remember({"text": None, "memories": [{"content": "User likes jazz"}]}, uid="user-2")
    assert len(omi.sandbox.memories("user-2")) == 1  # ids are per user: no clash with user-1's copy
    assert len(await read(omi)) == 1


async def test_text_is_extracted_and_source_id_does_not_dedupe(omi: Omi) -> None:
    """Behaviour notes §9.2: `source_id` is provenance only; every call extracts again, only equal content collapses."""
    text = "I moved to Lisbon last spring. Ok. My sister Ana works as a nurse there!"
    await omi.remember({"text": text, "text_source": "email", "source_id": "msg-1"})
    contents = {memory["content"]: memory["category"] for memory in await read(omi)}
    assert contents == {
        "I moved to Lisbon last spring.": "interesting",
        "My sister Ana works as a nurse there!": "interesting",
    }
    omi.clock.advance(60)
    again = await omi.call(
        "create_memories", json={"text": text + " We adopted a small grey cat.", "source_id": "msg-1"}
    )
    assert again.status_code == 200
    memories = await read(omi)
    assert sorted(m["content"] for m in memories) == [
        "I moved to Lisbon last spring.",
        "My sister Ana works as a nurse there!",
        "We adopted a small grey cat.",
    ]
    assert {m["updated_at"] for m in memories} == {"2024-03-15T00:01:00Z"}  # all three written by the second call


async def test_explicit_memories_and_extraction_in_one_request(omi: Omi) -> None:
    text = "The user runs every morning before work."
    await omi.remember({"text": text, "source_id": "s"})
    await omi.remember({"text": text, "source_id": "s", "memories": [{"content": "Likes tea"}]})
    assert sorted(memory["content"] for memory in await read(omi)) == [
        "Likes tea",
        "The user runs every morning before work.",
    ]


async def test_extraction_may_find_nothing(omi: Omi) -> None:
    await omi.remember({"text": "Hi there. Ok."})
    assert await read(omi) == []


async def test_manual_memories_first_then_newest(omi: Omi) -> None:
    manual = await omi.http.post(
        "/_sandbox/memories", json={"uid": UID, "content": "Prefers aisle seats", "tags": ["travel"]}
    )
    assert manual.status_code == 200
    assert manual.json()["category"] == "manual"
    for content in ("First app memory", "Second app memory", "Third app memory"):
        omi.clock.advance(10)
        await omi.remember({"text": None, "memories": [{"content": content}]})
    memories = await read(omi)
    assert [m["content"] for m in memories] == [
        "Prefers aisle seats",
        "Third app memory",
        "Second app memory",
        "First app memory",
    ]
    assert memories[0]["manually_added"] is True and "app_id" not in memories[0]
    assert [m["content"] for m in await read(omi, limit=2, offset=1)] == ["Third app memory", "Second app memory"]


async def test_tags_may_be_null_and_extra_keys_are_ignored(omi: Omi) -> None:
    await omi.remember(
        {"text": None, "source_url": "https://example.invalid/x", "memories": [{"content": "A", "tags": None, "x": 1}]}
    )
    assert (await read(omi))[0]["tags"] == []
