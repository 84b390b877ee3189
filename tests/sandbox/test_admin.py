"""The `/_sandbox/` admin routes, enabling with a setup check (§4.3), and persistence across restarts."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from aiohttp import web
from aiohttp.test_utils import make_mocked_request

from bot.sandbox import ALL_CAPABILITIES, Sandbox
from bot.sandbox.server import admin_route
from tests.sandbox import UID, Omi, detail, running_omi


@pytest.fixture
async def omi() -> AsyncIterator[Omi]:
    async with running_omi() as running:
        yield running


# --- loopback only -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("remote", ["203.0.113.9", "10.0.0.2", "2001:db8::1", None])
async def test_admin_routes_refuse_other_clients(remote: str | None) -> None:
    async def must_not_run(request: web.Request) -> web.Response:
        raise AssertionError("the admin handler ran for a non-loopback client")

    request = make_mocked_request("POST", "/_sandbox/apps").clone(remote=remote)
    response = await admin_route(must_not_run)(request)
    assert response.status == 403


@pytest.mark.parametrize("remote", ["127.0.0.1", "127.8.9.10", "::1", "::ffff:127.0.0.1"])
async def test_admin_routes_serve_loopback_clients(remote: str) -> None:
    async def reached(request: web.Request) -> web.Response:
        return web.Response(status=204)

    request = make_mocked_request("POST", "/_sandbox/apps").clone(remote=remote)
    assert (await admin_route(reached)(request)).status == 204


def test_every_admin_route_is_guarded() -> None:
    sandbox = Sandbox()
    admin = [route for route in sandbox.web_app.router.routes() if route.resource.canonical.startswith("/_sandbox")]
    assert len(admin) == 14
    assert all(route.handler.__qualname__ == admin_route(route.handler).__qualname__ for route in admin)
    sandbox.close()


# --- apps, keys, capabilities, users -------------------------------------------------------------------------------


async def test_create_app_mint_keys_and_delete_over_http(omi: Omi) -> None:
    created = await omi.http.post("/_sandbox/apps", json={"name": "importer", "capabilities": ["read_memories"]})
    assert created.status_code == 200
    app_id, first_key = created.json()["app_id"], created.json()["api_key"]
    assert first_key.startswith("sk_") and len(first_key) == 35 and int(first_key[3:], 16) >= 0
    assert (await omi.http.post(f"/_sandbox/apps/{app_id}/enable", json={"uid": UID})).status_code == 200
    second_key = (await omi.http.post(f"/_sandbox/apps/{app_id}/keys")).json()["api_key"]
    for key in (first_key, second_key):
        assert (await omi.call("read_memories", key=key, app_id=app_id)).status_code == 200
    no_capability = await omi.call("read_conversations", key=first_key, app_id=app_id)
    assert detail(no_capability) == "App does not have the capability to read conversations"
    caps = await omi.http.put(f"/_sandbox/apps/{app_id}/capabilities", json={"capabilities": ["read_conversations"]})
    assert caps.json() == {"app_id": app_id, "capabilities": ["read_conversations"]}
    assert (await omi.call("read_conversations", key=first_key, app_id=app_id)).status_code == 200
    assert (await omi.http.post(f"/_sandbox/apps/{app_id}/disable", json={"uid": UID})).status_code == 200
    assert detail(await omi.call("read_conversations", key=first_key, app_id=app_id)) == (
        "App is not enabled for this user"
    )
    assert (await omi.http.delete(f"/_sandbox/apps/{app_id}")).status_code == 200
    gone = await omi.call("read_conversations", key=first_key, app_id=app_id)
    assert (gone.status_code, detail(gone)) == (404, "App not found")
    assert (await omi.http.post(f"/_sandbox/apps/{app_id}/keys")).status_code == 404


async def test_admin_input_errors(omi: Omi) -> None:
    unknown = await omi.http.post("/_sandbox/apps", json={"capabilities": ["write_everything"]})
    assert unknown.status_code == 400
    missing_uid = await omi.http.post(f"/_sandbox/apps/{omi.app.app_id}/enable", json={})
    assert missing_uid.status_code == 422
    assert (await omi.http.post("/_sandbox/apps/nope/enable", json={"uid": UID})).status_code == 404
    assert (await omi.http.get("/_sandbox/conversations")).status_code == 422


async def test_admin_listings(omi: Omi) -> None:
    await omi.create("A listing test about the weekly team meeting.")
    await omi.remember({"text": None, "memories": [{"content": "Listed memory"}]})
    await omi.call("notification")
    conversations = (await omi.http.get("/_sandbox/conversations", params={"uid": UID})).json()["conversations"]
    assert [c["external_data"]["text"] for c in conversations] == ["A listing test about the weekly team meeting."]
    memories = (await omi.http.get("/_sandbox/memories", params={"uid": UID})).json()["memories"]
    assert [m["content"] for m in memories] == ["Listed memory"]
    notifications = (await omi.http.get("/_sandbox/notifications", params={"uid": UID})).json()["notifications"]
    assert [n["message"] for n in notifications] == ["hello from the app"]
    assert (await omi.http.get("/_sandbox/notifications", params={"uid": "nobody"})).json() == {"notifications": []}
    requests = (await omi.http.get("/_sandbox/requests")).json()["requests"]
    assert [r["route"] for r in requests] == ["create_conversation", "create_memories", "notification"]


def test_every_capability_is_known() -> None:
    assert ALL_CAPABILITIES == (
        "create_conversation",
        "create_memories",
        "read_conversations",
        "read_memories",
        "read_tasks",
    )


# --- enabling with a setup_completed_url ---------------------------------------------------------------------------


@pytest.fixture
async def setup_server() -> AsyncIterator[tuple[str, list[str]]]:
    """A tiny app backend: /done says true, /pending false, /broken answers 500, /text is not JSON."""
    seen: list[str] = []

    async def answer(request: web.Request) -> web.StreamResponse:
        seen.append(request.query_string)
        kind = request.match_info["kind"]
        if kind == "broken":
            return web.json_response({"is_setup_completed": True}, status=500)
        if kind == "text":
            return web.Response(text="yes")
        if kind == "list":
            return web.json_response([{"is_setup_completed": True}])
        return web.json_response({"is_setup_completed": kind == "done"})

    app = web.Application()
    app.router.add_get("/setup/{kind}", answer)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}", seen
    finally:
        await runner.cleanup()


@pytest.mark.parametrize(
    ("kind", "enabled"), [("done", True), ("pending", False), ("broken", False), ("text", False), ("list", False)]
)
async def test_enable_asks_the_setup_completed_url(
    omi: Omi, setup_server: tuple[str, list[str]], kind: str, enabled: bool
) -> None:
    base, seen = setup_server
    app = omi.sandbox.create_app(setup_completed_url=f"{base}/setup/{kind}")
    response = await omi.http.post(f"/_sandbox/apps/{app.app_id}/enable", json={"uid": "new-user"})
    if enabled:
        assert (response.status_code, response.json()) == (200, {})
    else:
        assert (response.status_code, response.json()) == (400, {"detail": "App setup is not completed"})
    assert seen == ["uid=new-user"]
    read = await omi.call("read_memories", uid="new-user", key=app.api_key, app_id=app.app_id)
    assert read.status_code == (200 if enabled else 403)


async def test_enable_appends_uid_with_ampersand_when_the_url_has_a_query(
    omi: Omi, setup_server: tuple[str, list[str]]
) -> None:
    base, seen = setup_server
    app = omi.sandbox.create_app(setup_completed_url=f"{base}/setup/done?app=bridge")
    assert await omi.sandbox.enable_checked(app.app_id, "u-9")
    assert seen == ["app=bridge&uid=u-9"]


async def test_enable_fails_when_the_setup_server_is_unreachable(omi: Omi) -> None:
    app = omi.sandbox.create_app(setup_completed_url="http://127.0.0.1:9/setup-completed")
    assert not await omi.sandbox.enable_checked(app.app_id, "u")


# --- persistence ---------------------------------------------------------------------------------------------------


async def test_state_survives_a_restart_on_the_same_file(tmp_path: Path) -> None:
    db = tmp_path / "sandbox.db"
    first = Sandbox(db)
    app_id, first_key, uid = first.ensure_default()
    base_url = await first.start()
    async with httpx.AsyncClient(base_url=base_url, trust_env=False) as http:
        saved = await http.post(
            f"/v2/integrations/{app_id}/user/conversations",
            params={"uid": uid},
            json={"text": "Persisted across a restart of the sandbox."},
            headers={"Authorization": f"Bearer {first_key}"},
        )
        assert saved.status_code == 200
    await first.stop()
    first.close()

    second = Sandbox(str(db))
    again_app, second_key, again_uid = second.ensure_default()
    assert (again_app, again_uid) == (app_id, uid)
    assert second_key != first_key
    base_url = await second.start()
    async with httpx.AsyncClient(base_url=base_url, trust_env=False) as http:
        for key in (first_key, second_key):
            response = await http.get(
                f"/v2/integrations/{app_id}/conversations",
                params={"uid": uid},
                headers={"Authorization": f"Bearer {key}"},
            )
            assert response.status_code == 200
            texts = [c["external_data"]["text"] for c in response.json()["conversations"]]
            assert texts == ["Persisted across a restart of the sandbox."]
    await second.stop()
    second.close()


async def test_ensure_default_creates_an_app_with_every_capability_enabled_for_the_uid() -> None:
    sandbox = Sandbox()
    app_id, key, uid = sandbox.ensure_default()
    assert uid.startswith("sandbox-user-")
    assert sandbox.ensure_default()[0] == app_id
    named_app, _, named_uid = sandbox.ensure_default("console-user")
    assert (named_app, named_uid) == (app_id, "console-user")
    assert sandbox.ensure_default()[2] == "console-user"
    base_url = await sandbox.start()
    async with httpx.AsyncClient(base_url=base_url, trust_env=False) as http:
        for path in ("conversations", "memories"):
            response = await http.get(
                f"/v2/integrations/{app_id}/{path}", params={"uid": uid}, headers={"Authorization": f"Bearer {key}"}
            )
            assert response.status_code == 200
    await sandbox.stop()
    sandbox.close()


async def test_keys_are_stored_hashed_only(tmp_path: Path) -> None:
    db = tmp_path / "keys.db"
    sandbox = Sandbox(db)
    app = sandbox.create_app()
    sandbox.close()
    stored = [path.read_bytes() for path in sorted(tmp_path.glob("keys.db*"))]  # noqa: ASYNC240 - tiny test file
    assert stored and all(app.api_key[3:].encode() not in content for content in stored)
    assert app.api_key not in repr(app)
