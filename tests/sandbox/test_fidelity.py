"""The newer findings about the real Omi (behaviour notes §9) on the FastAPI flavor: private apps, memory order,
the `source` enum, `Retry-After: 0`, the load balancer, action items, and faults with Omi's real error shapes."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from bot.sandbox import FAULT_KINDS, Sandbox
from tests.sandbox import UID, Omi, detail, running_omi

NOT_INSTALLED = "User does not have this app installed"


@pytest.fixture
async def omi() -> AsyncIterator[Omi]:
    async with running_omi() as running:
        yield running


# --- private apps and testers (§9.1) -----------------------------------------------------------------------------


async def test_private_app_notification_is_404_for_anyone_but_owner_and_testers(omi: Omi) -> None:
    app = omi.sandbox.create_app(name="private bridge", private=True, owner="operator")
    omi.sandbox.enable(app.app_id, UID)

    async def notify(uid: str) -> tuple[int, str]:
        response = await omi.call("notification", uid=uid, key=app.api_key, app_id=app.app_id)
        return response.status_code, detail(response) if response.status_code != 200 else ""

    assert await notify(UID) == (404, "App not found")  # enabled, but neither owner nor tester
    assert await notify("stranger") == (404, "App not found")  # checked before the enabled check
    assert await notify("operator") == (403, NOT_INSTALLED)  # the owner sees the app, has not installed it
    omi.sandbox.add_tester(app.app_id, UID)
    assert await notify(UID) == (200, "")
    omi.sandbox.remove_tester(app.app_id, UID)
    assert await notify(UID) == (404, "App not found")
    assert [n["uid"] for n in omi.sandbox.notifications()] == [UID]


async def test_private_app_still_imports_and_reads_for_enabled_users(omi: Omi) -> None:
    app = omi.sandbox.create_app(private=True, owner="operator")
    omi.sandbox.enable(app.app_id, UID)
    for route in ("create_conversation", "create_memories", "read_conversations", "read_memories"):
        assert (await omi.call(route, key=app.api_key, app_id=app.app_id)).status_code == 200, route


async def test_private_apps_and_testers_over_the_admin_routes(omi: Omi) -> None:
    created = await omi.http.post("/_sandbox/apps", json={"private": True, "owner": "operator"})
    app_id, key = created.json()["app_id"], created.json()["api_key"]
    assert (await omi.http.post(f"/_sandbox/apps/{app_id}/enable", json={"uid": UID})).status_code == 200
    assert (await omi.call("notification", key=key, app_id=app_id)).status_code == 404
    added = await omi.http.post(f"/_sandbox/apps/{app_id}/testers", json={"uid": UID})
    assert (added.status_code, added.json()) == (200, {})
    assert (await omi.call("notification", key=key, app_id=app_id)).status_code == 200
    removed = await omi.http.request("DELETE", f"/_sandbox/apps/{app_id}/testers", json={"uid": UID})
    assert removed.status_code == 200
    assert (await omi.call("notification", key=key, app_id=app_id)).status_code == 404
    assert (await omi.http.post("/_sandbox/apps/nope/testers", json={"uid": UID})).status_code == 404


# --- memories (§9.2) -----------------------------------------------------------------------------------------------


async def test_explicit_memories_come_before_extracted_ones_whatever_their_age(omi: Omi) -> None:
    omi.sandbox.add_manual_memory(UID, "Added by hand in the Omi app")
    steps = [
        {"text": "The first extracted sentence is here."},
        {"text": None, "memories": [{"content": "First explicit memory"}]},
        {"text": "The second extracted sentence is here."},
        {"text": None, "memories": [{"content": "Second explicit memory"}]},
    ]
    for body in steps:
        omi.clock.advance(10)
        await omi.remember(body)
    response = await omi.call("read_memories")
    assert [m["content"] for m in response.json()["memories"]] == [
        "Added by hand in the Omi app",
        "Second explicit memory",
        "First explicit memory",
        "The second extracted sentence is here.",
        "The first extracted sentence is here.",
    ]
    assert {m["reviewed"] for m in response.json()["memories"]} == {True}
    assert [m["scoring"][:6] for m in response.json()["memories"]] == ["01_999", "00_999", "00_999", "00_998", "00_998"]


# --- conversations (§9.3) ------------------------------------------------------------------------------------------


async def test_source_is_validated_as_omis_enum_before_auth(omi: Omi) -> None:
    response = await omi.call("create_conversation", key="", json={"text": "hi", "source": "telegram"})
    assert response.status_code == 422
    [error] = detail(response)
    assert (error["type"], error["loc"], error["input"]) == ("enum", ["body", "source"], "telegram")
    assert error["msg"].startswith("Input should be 'friend', 'omi'")
    await omi.create("A conversation the app labels as recorded on the phone.", source="phone")
    [stored] = omi.sandbox.conversations(UID)
    assert stored["source"] == stored["external_data"]["source"] == "external_integration"


async def test_action_items_only_for_audio_transcripts(omi: Omi) -> None:
    text = "We need to book the flight to Porto. The weather was lovely. Remember to call mom tonight!"
    await omi.create(text, text_source="audio_transcript", started_at="2024-03-01T10:00:00Z")
    await omi.create(text, text_source="message", started_at="2024-03-01T09:00:00Z")
    audio, message = omi.sandbox.conversations(UID)
    assert audio["structured"]["action_items"] == [
        {"description": "We need to book the flight to Porto", "completed": False, "exported": False},
        {"description": "Remember to call mom tonight", "completed": False, "exported": False},
    ]
    assert message["structured"]["action_items"] == []


async def test_retry_after_is_the_redis_ttl_and_can_be_zero() -> None:
    async with running_omi(conversations_per_hour=1) as omi:
        assert (await omi.call("create_conversation")).status_code == 200
        omi.clock.advance(3599.75)  # a quarter of a second left in the window: Redis TTL says 0
        limited = await omi.call("create_conversation")
        assert limited.status_code == 429
        assert limited.headers["Retry-After"] == "0"
        assert detail(limited) == "Rate limit exceeded. Try again in 0s."
        omi.clock.advance(0.25)
        assert (await omi.call("create_conversation")).status_code == 200


# --- the load balancer in front of Omi (§9.4) ---------------------------------------------------------------------


async def test_load_balancer_caps_requests_per_key_with_a_plain_429() -> None:
    async with running_omi(requests_per_minute=2) as omi:
        second_key = omi.sandbox.mint_key(omi.app.app_id)
        assert [(await omi.call("read_memories")).status_code for _ in range(2)] == [200, 200]
        limited = await omi.call("create_conversation", uid="any-uid")  # every route and uid share the key's cap
        assert limited.status_code == 429
        assert limited.headers["Content-Type"].startswith("text/plain")
        assert limited.text == "Too Many Requests"
        assert limited.headers["Retry-After"] == "60"
        assert (await omi.call("read_memories", key=second_key)).status_code == 200
        omi.clock.advance(60)
        assert (await omi.call("read_memories")).status_code == 200
        assert omi.sandbox.set_limits(requests_per_minute=0)["requests_per_minute"] == 0


# --- faults with Omi's real shapes (§9.2–9.4) ---------------------------------------------------------------------


@pytest.mark.parametrize("route", ["create_conversation", "create_memories"])
async def test_byok_429_has_an_object_detail_and_no_retry_after(omi: Omi, route: str) -> None:
    omi.sandbox.add_fault(route, kind="byok_rate_limit")
    response = await omi.call(route)
    assert response.status_code == 429
    assert detail(response)["code"] == "byok_rate_limit"
    assert isinstance(detail(response)["message"], str) and detail(response)["message"]
    assert [name for name in response.headers if name.lower().startswith(("retry-after", "x-ratelimit"))] == []
    assert omi.sandbox.conversations(UID) == [] and omi.sandbox.memories(UID) == []


async def test_provider_unavailable_503(omi: Omi) -> None:
    omi.sandbox.add_fault("create_conversation", kind="provider_unavailable")
    response = await omi.call("create_conversation")
    assert response.status_code == 503
    assert detail(response)["code"] == "provider_unavailable"
    assert omi.sandbox.conversations(UID) == []


@pytest.mark.parametrize(
    ("kind", "text", "stored"),
    [
        ("memory_writes_paused", "Memory writes are globally paused", 0),
        ("memory_write_control_invalid", "Memory write control is invalid", 0),
        ("memory_readback_unavailable", "Canonical memory write readback unavailable", 1),  # after the write
    ],
)
async def test_the_three_memory_503s(omi: Omi, kind: str, text: str, stored: int) -> None:
    omi.sandbox.add_fault("create_memories", kind=kind)
    response = await omi.call("create_memories")
    assert (response.status_code, response.json()) == (503, {"detail": text})
    assert len(omi.sandbox.memories(UID)) == stored


@pytest.mark.parametrize(
    ("fields", "body", "retry_after"),
    [
        ({}, "Too Many Requests", None),
        ({"retry_after": 30}, "Too Many Requests", "30"),
        ({"body": {}}, "{}", None),
        ({"body": "upstream busy", "retry_after": 2.5}, "upstream busy", "3"),
    ],
)
async def test_load_balancer_429_carries_no_omi_detail(
    omi: Omi, fields: dict, body: str, retry_after: str | None
) -> None:
    omi.sandbox.add_fault("read_conversations", kind="load_balancer_429", **fields)
    response = await omi.call("read_conversations")
    assert (response.status_code, response.text) == (429, body)
    assert response.headers.get("Retry-After") == retry_after
    assert "X-RateLimit-Remaining" not in response.headers


async def test_fault_kinds_over_the_admin_route(omi: Omi) -> None:
    added = await omi.http.post("/_sandbox/faults", json={"route": "create_conversation", "kind": "byok_rate_limit"})
    assert added.status_code == 200
    assert detail(await omi.call("create_conversation"))["code"] == "byok_rate_limit"
    lb = {"route": "notification", "kind": "load_balancer_429", "body": {}, "retry_after": 5}
    assert (await omi.http.post("/_sandbox/faults", json=lb)).status_code == 200
    limited = await omi.call("notification")
    assert (limited.status_code, limited.json(), limited.headers["Retry-After"]) == (429, {}, "5")
    wrong = await omi.http.post("/_sandbox/faults", json={"route": "read_memories", "kind": "memory_writes_paused"})
    assert wrong.status_code == 400


@pytest.mark.parametrize(
    ("route", "fields", "complaint"),
    [
        ("create_conversation", {"kind": "no_such_kind"}, "unknown fault kind"),
        ("read_memories", {"kind": "byok_rate_limit"}, "happens on"),
        ("create_conversation", {"kind": "memory_readback_unavailable"}, "happens on"),
        ("create_conversation", {"kind": "byok_rate_limit", "retry_after": 5}, "no Retry-After"),
        ("create_conversation", {"kind": "provider_unavailable", "status": 500}, "answers 503"),
    ],
)
def test_bad_fault_kinds_are_refused(route: str, fields: dict, complaint: str) -> None:
    sandbox = Sandbox()
    with pytest.raises(ValueError, match=complaint):
        sandbox.add_fault(route, **fields)
    sandbox.close()


def test_every_fault_kind_is_documented_in_the_faults_module() -> None:
    from bot.sandbox import faults

    assert set(FAULT_KINDS) == {
        "byok_rate_limit",
        "provider_unavailable",
        "memory_writes_paused",
        "memory_write_control_invalid",
        "memory_readback_unavailable",
        "load_balancer_429",
    }
    assert all(f"`{kind}`" in (faults.__doc__ or "") for kind in FAULT_KINDS)
