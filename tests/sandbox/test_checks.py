"""Omi's order of checks (reference §1.1, rows 0–7) and its error strings (§1.6), route by route."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.sandbox import ROUTE_CALLS, UID, Omi, detail, running_omi

AUTH = "Missing or invalid Authorization header. Must be 'Bearer API_KEY'"
KEY_WORDING = {
    "create_conversation": "Invalid integration API key",
    "create_memories": "Invalid integrationAPI key",
    "read_conversations": "Invalid API key",
    "read_memories": "Invalid integrationAPI key",
    "search_conversations": "Invalid API key",
}
CAPABILITY = {
    "create_conversation": ("create_conversation", "App does not have the capability to create conversations"),
    "create_memories": ("create_memories", "App does not have the capability to create memories"),
    "read_conversations": ("read_conversations", "App does not have the capability to read conversations"),
    "read_memories": ("read_memories", "App does not have the capability to read memories"),
    "search_conversations": ("read_conversations", "App does not have the capability to read conversations"),
}
ROUTES = list(KEY_WORDING)
CREATE_ROUTES = ["create_conversation", "create_memories"]


@pytest.fixture
async def omi() -> AsyncIterator[Omi]:
    async with running_omi() as running:
        yield running


def without(capability: str) -> list[str]:
    return [name for name in ("create_conversation", "create_memories", "read_conversations", "read_memories")
            if name != capability]  # fmt: skip


# --- row 0: validation comes first, even without any Authorization header -------------------------------------


@pytest.mark.parametrize("route", ROUTES)
async def test_row0_missing_uid_is_422_before_auth(omi: Omi, route: str) -> None:
    response = await omi.call(route, uid=None, key="")
    assert response.status_code == 422
    assert detail(response)[0] == {"type": "missing", "loc": ["query", "uid"], "msg": "Field required", "input": None}


@pytest.mark.parametrize("route", ["create_conversation", "create_memories", "search_conversations"])
async def test_row0_missing_body_is_422_after_query_errors(omi: Omi, route: str) -> None:
    response = await omi.call(route, uid=None, key="", json=None)
    assert response.status_code == 422
    assert [error["loc"] for error in detail(response)] == [["query", "uid"], ["body"]]
    assert detail(response)[1]["type"] == "missing"


@pytest.mark.parametrize("route", ["create_conversation", "create_memories", "search_conversations"])
async def test_row0_invalid_json_is_answered_alone(omi: Omi, route: str) -> None:
    response = await omi.http.post(
        f"/v2/integrations/{omi.app.app_id}{ROUTE_CALLS[route][1]}",
        params={"uid": UID},
        content=b'{"text": ',
        headers={"Content-Type": "application/json"},
    )
    assert response.status_code == 422
    assert detail(response) == [
        {
            "type": "json_invalid",
            "loc": ["body", 9],
            "msg": "JSON decode error",
            "input": {},
            "ctx": {"error": "Expecting value"},
        }
    ]


async def test_row0_memories_without_the_text_key_is_a_pydantic_422(omi: Omi) -> None:
    response = await omi.call("create_memories", key="", json={"memories": [{"content": "User likes tea"}]})
    assert response.status_code == 422
    assert detail(response) == [
        {
            "type": "missing",
            "loc": ["body", "text"],
            "msg": "Field required",
            "input": {"memories": [{"content": "User likes tea"}]},
        }
    ]


async def test_row0_enum_and_range_errors_have_fastapi_shape(omi: Omi) -> None:
    bad_source = await omi.call("create_conversation", key="", json={"text": "hi", "text_source": "chat"})
    assert detail(bad_source) == [
        {
            "type": "enum",
            "loc": ["body", "text_source"],
            "msg": "Input should be 'audio_transcript', 'message' or 'other_text'",
            "input": "chat",
            "ctx": {"expected": "'audio_transcript', 'message' or 'other_text'"},
        }
    ]
    message_for_memories = await omi.call("create_memories", key="", json={"text": "x", "text_source": "message"})
    assert detail(message_for_memories)[0]["type"] == "enum"
    too_small = await omi.call("read_conversations", key="", params={"limit": "0"})
    assert detail(too_small) == [
        {
            "type": "greater_than_equal",
            "loc": ["query", "limit"],
            "msg": "Input should be greater than or equal to 1",
            "input": "0",
            "ctx": {"ge": 1},
        }
    ]
    too_big = await omi.call("read_memories", key="", params={"limit": "2000", "offset": "-1"})
    assert [(e["type"], e["loc"], e.get("ctx")) for e in detail(too_big)] == [
        ("less_than_equal", ["query", "limit"], {"le": 1000}),
        ("greater_than_equal", ["query", "offset"], {"ge": 0}),
    ]
    segments = await omi.call("read_conversations", key="", params={"max_transcript_segments": "-2"})
    assert detail(segments)[0]["loc"] == ["query", "max_transcript_segments"]


# --- row 1: the Authorization header ---------------------------------------------------------------------------


@pytest.mark.parametrize("route", ROUTES)
@pytest.mark.parametrize("header", [None, "bearer KEY", "BEARER KEY", "Bearer", "BearerKEY", "Token KEY", "KEY"])
async def test_row1_missing_or_malformed_header_is_401(omi: Omi, route: str, header: str | None) -> None:
    headers = {} if header is None else {"Authorization": header.replace("KEY", omi.app.api_key)}
    response = await omi.call(route, key="", headers=headers, app_id="unknown-app")
    assert (response.status_code, detail(response)) == (401, AUTH)


@pytest.mark.parametrize("route", ROUTES)
async def test_row1_exactly_one_space_after_bearer(omi: Omi, route: str) -> None:
    response = await omi.call(route, key="", headers={"Authorization": f"Bearer  {omi.app.api_key}"})
    assert (response.status_code, detail(response)) == (403, KEY_WORDING[route])


# --- row 2: the key, with each route's own wording ------------------------------------------------------------


@pytest.mark.parametrize("route", ROUTES)
@pytest.mark.parametrize("case", ["wrong key", "another app's key", "unknown app_id"])
async def test_row2_bad_key_is_403_with_the_route_wording(omi: Omi, route: str, case: str) -> None:
    other = omi.sandbox.create_app(name="other")
    key = {"wrong key": "sk_" + "0" * 32, "another app's key": other.api_key, "unknown app_id": None}[case]
    app_id = "01NOSUCHAPP000000000000000" if case == "unknown app_id" else None
    response = await omi.call(route, key=key, app_id=app_id)
    assert (response.status_code, detail(response)) == (403, KEY_WORDING[route])


@pytest.mark.parametrize("route", CREATE_ROUTES)
async def test_row2_key_check_comes_before_the_rate_limit(omi: Omi, route: str) -> None:
    omi.sandbox.set_limits(conversations_per_hour=1, memories_per_hour=1)
    assert (await omi.call(route)).status_code == 200
    response = await omi.call(route, key="sk_" + "1" * 32)
    assert (response.status_code, detail(response)) == (403, KEY_WORDING[route])


async def test_row2_key_without_sk_prefix_is_accepted_like_omi(omi: Omi) -> None:
    response = await omi.call("read_memories", key=omi.app.api_key.removeprefix("sk_"))
    assert response.status_code == 200


# --- row 3: the rate limit (creates only) comes before the app lookup -----------------------------------------


@pytest.mark.parametrize("route", CREATE_ROUTES)
async def test_row3_rate_limit_comes_before_app_not_found(omi: Omi, route: str) -> None:
    omi.sandbox.set_limits(conversations_per_hour=1, memories_per_hour=1)
    assert (await omi.call(route)).status_code == 200
    omi.sandbox.delete_app(omi.app.app_id)
    response = await omi.call(route)
    assert response.status_code == 429
    assert detail(response) == "Rate limit exceeded. Try again in 3600s."


@pytest.mark.parametrize("route", ["read_conversations", "read_memories", "search_conversations"])
async def test_row3_reads_are_never_rate_limited(omi: Omi, route: str) -> None:
    omi.sandbox.set_limits(conversations_per_hour=1, memories_per_hour=1)
    statuses = {(await omi.call(route)).status_code for _ in range(5)}
    assert statuses == {200}


# --- row 4: the app record --------------------------------------------------------------------------------------


@pytest.mark.parametrize("route", ROUTES)
async def test_row4_deleted_app_is_404_before_the_enabled_check(omi: Omi, route: str) -> None:
    omi.sandbox.delete_app(omi.app.app_id)
    response = await omi.call(route, uid="never-enabled")
    assert (response.status_code, detail(response)) == (404, "App not found")


# --- row 5: enabled for this uid --------------------------------------------------------------------------------


@pytest.mark.parametrize("route", ROUTES)
async def test_row5_not_enabled_comes_before_the_capability_check(omi: Omi, route: str) -> None:
    omi.sandbox.set_capabilities(omi.app.app_id, [])
    response = await omi.call(route, uid="stranger")
    assert (response.status_code, detail(response)) == (403, "App is not enabled for this user")


@pytest.mark.parametrize("route", ROUTES)
async def test_row5_disabled_app_is_403(omi: Omi, route: str) -> None:
    omi.sandbox.disable(omi.app.app_id, UID)
    response = await omi.call(route)
    assert (response.status_code, detail(response)) == (403, "App is not enabled for this user")


# --- row 6: capabilities ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("route", ROUTES)
async def test_row6_missing_capability_is_403_with_the_route_wording(omi: Omi, route: str) -> None:
    capability, wording = CAPABILITY[route]
    omi.sandbox.set_capabilities(omi.app.app_id, without(capability))
    response = await omi.call(route)
    assert (response.status_code, detail(response)) == (403, wording)


@pytest.mark.parametrize(("route", "alias"), [("create_memories", "create_facts"), ("read_memories", "read_facts")])
async def test_row6_facts_aliases_grant_the_memory_actions(omi: Omi, route: str, alias: str) -> None:
    omi.sandbox.set_capabilities(omi.app.app_id, [alias])
    assert (await omi.call(route)).status_code == 200


async def test_row6_capability_comes_before_route_checks(omi: Omi) -> None:
    omi.sandbox.set_capabilities(omi.app.app_id, ["create_conversation", "read_memories"])
    empty = await omi.call("create_memories", json={"text": "  ", "memories": []})
    assert detail(empty) == "App does not have the capability to create memories"
    bad_date = await omi.call("read_conversations", params={"start_date": "yesterday"})
    assert detail(bad_date) == "App does not have the capability to read conversations"


# --- row 7: route checks ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body", [{"text": None}, {"text": ""}, {"text": "   ", "memories": []}, {"text": None, "memories": None}]
)
async def test_row7_empty_memories_is_422_with_a_string_detail(omi: Omi, body: dict) -> None:
    response = await omi.call("create_memories", json=body)
    assert response.status_code == 422
    assert detail(response) == "Either text or explicit memories(facts) are required and cannot be empty"


async def test_row7_empty_conversation_text_is_accepted(omi: Omi) -> None:
    assert (await omi.call("create_conversation", json={"text": ""})).status_code == 200


@pytest.mark.parametrize("route", ["read_conversations", "search_conversations"])
@pytest.mark.parametrize("name", ["start_date", "end_date"])
async def test_row7_bad_date_is_400(omi: Omi, route: str, name: str) -> None:
    if route == "read_conversations":
        response = await omi.call(route, params={name: "15/03/2024"})
    else:
        response = await omi.call(route, json={"query": "", name: "15/03/2024"})
    assert response.status_code == 400
    assert detail(response) == f"Invalid {name} format. Use ISO format (YYYY-MM-DDTHH:MM:SS.sssZ) or YYYY-MM-DD"


# --- paths and methods FastAPI does not know ----------------------------------------------------------------------


async def test_removed_facts_route_and_unknown_paths_are_fastapi_404(omi: Omi) -> None:
    for path in (f"/v2/integrations/{omi.app.app_id}/user/facts", "/nothing/here"):
        response = await omi.http.post(path, params={"uid": UID}, json={"text": "x"})
        assert (response.status_code, response.json()) == (404, {"detail": "Not Found"})


async def test_wrong_method_is_fastapi_405(omi: Omi) -> None:
    response = await omi.http.get(f"/v2/integrations/{omi.app.app_id}/user/conversations", params={"uid": UID})
    assert (response.status_code, response.json()) == (405, {"detail": "Method Not Allowed"})
    assert response.headers["Allow"] == "POST"
