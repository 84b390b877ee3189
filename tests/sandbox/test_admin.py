"""The `/_sandbox/` admin routes, enabling with a setup check (§4.3), and persistence across restarts."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from aiohttp import web
from aiohttp.test_utils import make_mocked_request

from bot.sandbox import ALL_CAPABILITIES, Sandbox
from bot.sandbox.admin import admin_route
from bot.sandbox.urls import ADMIN_PATHS
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
    assert len(admin) == len(ADMIN_PATHS) == 20
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
    """A tiny app backend: /done says true, /pending false, /broken answers 500, /text is not JSON, /redirect 302s."""
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
        if kind == "redirect":  # to a page that would say done: Omi does not follow it (§9.5)
            raise web.HTTPFound("/setup/done")
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
    ("kind", "enabled"),
    [("done", True), ("pending", False), ("broken", False), ("text", False), ("list", False), ("redirect", False)],
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


async def test_enable_appends_question_mark_uid_even_when_the_url_has_a_query(
    omi: Omi, setup_server: tuple[str, list[str]]
) -> None:
    """Behaviour notes §9.5: Omi glues `?uid=` on as is, so the app sees `app=bridge?uid=u-9` and no `uid`."""
    base, seen = setup_server
    app = omi.sandbox.create_app(setup_completed_url=f"{base}/setup/done?app=bridge")
    assert await omi.sandbox.enable_checked(app.app_id, "u-9")
    assert seen == ["app=bridge?uid=u-9"]


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


# The sandbox schema before private apps, webhooks and memory scoring, as a `--db` file of that version holds it.
OLD_SCHEMA = """
CREATE TABLE apps (app_id TEXT PRIMARY KEY, name TEXT NOT NULL, capabilities TEXT NOT NULL,
                   setup_completed_url TEXT, created_at REAL NOT NULL);
CREATE TABLE api_keys (key_hash TEXT PRIMARY KEY, app_id TEXT NOT NULL, created_at REAL NOT NULL);
CREATE TABLE enabled_apps (uid TEXT NOT NULL, app_id TEXT NOT NULL, PRIMARY KEY (uid, app_id));
CREATE TABLE memories (uid TEXT NOT NULL, id TEXT NOT NULL, manually_added INTEGER NOT NULL,
                       created_us INTEGER NOT NULL, body TEXT NOT NULL, PRIMARY KEY (uid, id));
CREATE TABLE extracted_sources (app_id TEXT NOT NULL, uid TEXT NOT NULL, source_id TEXT NOT NULL,
                                PRIMARY KEY (app_id, uid, source_id));
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


async def test_a_database_of_the_previous_version_opens_and_keeps_its_data(tmp_path: Path) -> None:
    db = tmp_path / "old.db"
    old = sqlite3.connect(db)
    old.executescript(OLD_SCHEMA)
    old.execute("INSERT INTO apps VALUES ('01OLDAPP', 'old', '[\"read_memories\"]', NULL, 0)")
    old.execute("INSERT INTO enabled_apps VALUES (?, '01OLDAPP')", (UID,))
    for n, (content, scoring) in enumerate(
        (("Older memory", "00_00_0000000001"), ("Newer memory", "00_00_0000000002"))
    ):
        body = {"id": f"m{n}", "content": content, "scoring": scoring}
        old.execute("INSERT INTO memories VALUES (?, ?, 0, ?, ?)", (UID, f"m{n}", n + 1, json.dumps(body)))
    old.commit()
    old.close()

    sandbox = Sandbox(db)
    key = sandbox.mint_key("01OLDAPP")
    assert [m["content"] for m in sandbox.memories(UID)] == ["Newer memory", "Older memory"]
    sandbox.add_tester("01OLDAPP", "friend")
    sandbox.set_webhook_url("01OLDAPP", "http://127.0.0.1:9/hook")
    base_url = await sandbox.start()
    async with httpx.AsyncClient(base_url=base_url, trust_env=False) as http:
        response = await http.get(
            "/v2/integrations/01OLDAPP/memories", params={"uid": UID}, headers={"Authorization": f"Bearer {key}"}
        )
        assert [m["content"] for m in response.json()["memories"]] == ["Newer memory", "Older memory"]
    await sandbox.stop()
    sandbox.close()
