"""What the sandbox sends to apps as Omi does (behaviour notes §4.6, §9.7): the memory-creation webhook, for
conversations "recorded by the wearable" (`device_conversation`) and for every import, the creating app's too.

Every test runs on both flavors; nothing sleeps: tests wait on the receiver's condition or `webhooks_idle()`, each
with a timeout. The receiver listens on 127.0.0.1 only.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web

from bot.sandbox import FLAVORS, Sandbox
from tests.sandbox import UID, Omi, detail, running_omi

TALK = "Alice: we need to buy milk for the party.\nBob: I will get it after work today.\nAlice: thanks a lot!"
MEETING = "We planned the quarterly project review meeting for Friday."
WAIT = 5.0


@dataclass
class Receiver:
    """An app backend on 127.0.0.1 that records every webhook POST.

    It answers each POST with the next of `statuses` (then 200) and the JSON `answer`; while `hold` is set it keeps
    every request waiting until `release` is set.
    """

    base_url: str = ""
    statuses: list[int] = field(default_factory=list)
    answer: dict[str, Any] = field(default_factory=dict)
    hold: bool = False
    release: asyncio.Event = field(default_factory=asyncio.Event)
    posts: list[dict[str, Any]] = field(default_factory=list)
    answered: int = 0
    changed: asyncio.Condition = field(default_factory=asyncio.Condition)

    def url(self, path: str = "/omi/webhook") -> str:
        return self.base_url + path

    async def wait_for_posts(self, count: int) -> list[dict[str, Any]]:
        async with self.changed:
            await asyncio.wait_for(self.changed.wait_for(lambda: len(self.posts) >= count), WAIT)
        return self.posts


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    received = Receiver()

    async def hook(request: web.Request) -> web.Response:
        post = {
            "path": request.path,
            "query": request.query_string,
            "key": request.headers.get("Idempotency-Key"),
            "content_type": request.headers.get("Content-Type"),
            "json": await request.json(),
        }
        async with received.changed:
            received.posts.append(post)
            received.changed.notify_all()
        if received.hold:
            await asyncio.wait_for(received.release.wait(), WAIT)
        status = received.statuses.pop(0) if received.statuses else 200
        received.answered += 1
        return web.json_response(received.answer, status=status)

    app = web.Application()
    app.router.add_post("/{tail:.*}", hook)
    runner = web.AppRunner(app, shutdown_timeout=1.0)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    received.base_url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    try:
        yield received
    finally:
        received.release.set()
        await runner.cleanup()


@pytest.fixture(params=list(FLAVORS))
async def omi(request: pytest.FixtureRequest) -> AsyncIterator[Omi]:
    async with running_omi(flavor=request.param) as running:
        yield running


async def idle(omi: Omi) -> list[dict[str, Any]]:
    await asyncio.wait_for(omi.sandbox.webhooks_idle(), WAIT)
    return omi.sandbox.webhook_deliveries()


async def read_back(omi: Omi) -> list[dict[str, Any]]:
    """The user's conversations as the integration GET route returns them."""
    response = await omi.call("read_conversations", params={"max_transcript_segments": "-1"})
    assert response.status_code == 200, response.text
    conversations: list[dict[str, Any]] = response.json()["conversations"]
    return conversations


# --- device conversations --------------------------------------------------------------------------------------------


async def test_a_device_conversation_is_posted_with_the_uid_and_an_idempotency_key(
    omi: Omi, receiver: Receiver
) -> None:
    omi.sandbox.set_webhook(omi.app.app_id, receiver.url())
    conversation = await omi.sandbox.device_conversation(omi.app.app_id, UID, TALK)
    [delivery] = await idle(omi)
    [post] = receiver.posts
    assert (post["path"], post["query"], post["content_type"]) == ("/omi/webhook", f"uid={UID}", "application/json")
    assert post["key"] == delivery["idempotency_key"] and len(post["key"]) == 36
    assert (delivery["url"], delivery["uid"], delivery["attempt"], delivery["status"], delivery["error"]) == (
        receiver.url() + f"?uid={UID}",
        UID,
        1,
        200,
        None,
    )
    assert post["json"] == conversation == (await read_back(omi))[0]
    body = post["json"]
    assert body["id"] == delivery["conversation_id"] and body["source"] == "omi" and body["discarded"] is False
    assert "app_id" not in body and "external_data" not in body  # recorded by the wearable, not by an app
    structured = body["structured"]
    assert structured["title"] and structured["overview"] and structured["emoji"]
    assert [a["description"] for a in structured["action_items"]] == ["We need to buy milk for the party"]
    assert [s["text"] for s in body["transcript_segments"]] == TALK.splitlines()
    assert body["created_at"] == body["started_at"] == "2024-03-15T00:00:00Z"
    assert Sandbox.conversation_text(body) == TALK


async def test_over_the_admin_routes_a_url_with_a_query_gets_amp_uid(omi: Omi, receiver: Receiver) -> None:
    app_id = omi.app.app_id
    hook = receiver.url("/omi/webhook/s3cret?source=omi")
    answer = await omi.http.put(f"/_sandbox/apps/{app_id}/webhook", json={"url": hook})
    assert (answer.status_code, answer.json()) == (200, {"app_id": app_id, "url": hook})
    created = await omi.http.post(
        f"/_sandbox/apps/{app_id}/device-conversations",
        params={"uid": UID},
        json={"text": TALK, "started_at": "2024-03-14T18:00:00Z", "finished_at": "2024-03-14T18:10:00Z"},
    )
    assert created.status_code == 200
    conversation = created.json()
    assert (conversation["started_at"], conversation["finished_at"]) == ("2024-03-14T18:00:00Z", "2024-03-14T18:10:00Z")
    logged = (await omi.http.get("/_sandbox/webhook-deliveries", params={"wait": "1"})).json()["deliveries"]
    assert [(d["app_id"], d["uid"], d["status"]) for d in logged] == [(app_id, UID, 200)]
    [post] = receiver.posts
    assert (post["path"], post["query"]) == ("/omi/webhook/s3cret", f"source=omi&uid={UID}")
    assert post["json"] == conversation


async def test_a_redelivery_keeps_the_idempotency_key(omi: Omi, receiver: Receiver) -> None:
    omi.sandbox.set_webhook(omi.app.app_id, receiver.url())
    await omi.sandbox.device_conversation(omi.app.app_id, UID, TALK, deliveries=2)
    assert [d["status"] for d in await idle(omi)] == [200, 200]
    first, second = receiver.posts
    assert first["key"] == second["key"] and first["json"] == second["json"]


async def test_only_apps_enabled_for_the_user_hear_a_device_conversation(omi: Omi, receiver: Receiver) -> None:
    omi.sandbox.set_webhook(omi.app.app_id, receiver.url("/enabled"))
    omi.sandbox.create_app(name="not enabled", webhook_url=receiver.url("/not-enabled"))
    disabled = omi.sandbox.create_app(name="disabled", webhook_url=receiver.url("/disabled"))
    omi.sandbox.enable(disabled.app_id, UID)
    omi.sandbox.disable(disabled.app_id, UID)
    silent = omi.sandbox.create_app(name="no webhook")
    omi.sandbox.enable(silent.app_id, UID)
    # The path's app names whose sandbox it is; the wearable's conversation reaches every listening app of the user.
    await omi.sandbox.device_conversation(silent.app_id, UID, TALK)
    await omi.sandbox.device_conversation(omi.app.app_id, "stranger", TALK)  # nobody listens for this user
    await idle(omi)
    assert [(p["path"], p["query"]) for p in receiver.posts] == [("/enabled", f"uid={UID}")]


async def test_device_conversation_misuse(omi: Omi, receiver: Receiver) -> None:
    app_id = omi.app.app_id
    omi.sandbox.set_webhook(app_id, receiver.url())
    path = f"/_sandbox/apps/{app_id}/device-conversations"
    assert (await omi.http.post(path, params={"uid": UID}, json={})).status_code == 400
    blank = await omi.http.post(path, params={"uid": UID}, json={"text": "  "})
    assert (blank.status_code, detail(blank)) == (400, "text is required")
    backwards = {"text": TALK, "started_at": "2024-03-14T18:00:00Z", "finished_at": "2024-03-14T17:00:00Z"}
    assert (await omi.http.post(path, params={"uid": UID}, json=backwards)).status_code == 400
    assert (await omi.http.post(path, json={"text": TALK})).status_code == 422  # no uid
    unknown = await omi.http.post("/_sandbox/apps/nope/device-conversations", params={"uid": UID}, json={"text": "x"})
    assert unknown.status_code == 404
    with pytest.raises(LookupError):
        await omi.sandbox.device_conversation("nope", UID, TALK)
    with pytest.raises(ValueError, match="text is required"):
        await omi.sandbox.device_conversation(app_id, UID, "")
    assert await idle(omi) == [] and receiver.posts == [] and omi.sandbox.conversations(UID) == []


async def test_setting_webhooks(omi: Omi, receiver: Receiver) -> None:
    app_id = omi.app.app_id
    route = f"/_sandbox/apps/{app_id}/webhook"
    assert (await omi.http.put(route, json={"url": "ftp://example.invalid/hook"})).status_code == 400
    assert (await omi.http.put(route, json={"url": "/relative"})).status_code == 400
    assert (await omi.http.put(route, json={})).status_code == 422  # `url` is required; null removes it
    assert (await omi.http.put("/_sandbox/apps/nope/webhook", json={"url": receiver.url()})).status_code == 404
    assert (await omi.http.put(route, json={"webhook_url": receiver.url("/old-name")})).status_code == 200
    assert (await omi.http.put(route, json={"url": None})).status_code == 200
    created = await omi.http.post("/_sandbox/apps", json={"name": "listener", "webhook_url": receiver.url("/new")})
    listener = created.json()["app_id"]
    assert (await omi.http.post(f"/_sandbox/apps/{listener}/enable", json={"uid": UID})).status_code == 200
    assert (await omi.http.post("/_sandbox/apps", json={"webhook_url": "nope"})).status_code == 400
    with pytest.raises(ValueError, match="absolute http"):
        omi.sandbox.set_webhook(app_id, "mailto:someone@example.com")
    await omi.sandbox.device_conversation(app_id, UID, TALK)
    await idle(omi)
    assert [p["path"] for p in receiver.posts] == ["/new"]  # the removed webhook hears nothing


async def test_a_trivial_conversation_is_stored_discarded_and_not_delivered(omi: Omi, receiver: Receiver) -> None:
    omi.sandbox.set_webhook(omi.app.app_id, receiver.url())
    conversation = await omi.sandbox.device_conversation(omi.app.app_id, UID, "ok bye")
    assert conversation["discarded"] is True
    assert await idle(omi) == [] and receiver.posts == [] and len(omi.sandbox.conversations(UID)) == 1


async def test_reads_cap_transcript_segments(omi: Omi, receiver: Receiver) -> None:
    await omi.sandbox.device_conversation(omi.app.app_id, UID, TALK)

    async def segments(**params: str) -> int:
        response = await omi.call("read_conversations", params=params)
        return len(response.json()["conversations"][0]["transcript_segments"])

    assert [await segments(), await segments(max_transcript_segments="1")] == [3, 1]
    assert [await segments(max_transcript_segments="-1"), await segments(max_transcript_segments="0")] == [3, 0]


# --- imports trigger the webhooks too ---------------------------------------------------------------------------------


async def test_an_import_reaches_every_enabled_app_with_a_webhook_the_creator_included(
    omi: Omi, receiver: Receiver
) -> None:
    omi.sandbox.set_webhook(omi.app.app_id, receiver.url("/creator"))
    listener = omi.sandbox.create_app(name="listener", webhook_url=receiver.url("/listener?v=2"))
    omi.sandbox.enable(listener.app_id, UID)
    omi.sandbox.create_app(name="not enabled", webhook_url=receiver.url("/not-enabled"))
    await omi.create(MEETING)
    deliveries = await idle(omi)
    posts = sorted(receiver.posts, key=lambda post: post["path"])
    assert [(p["path"], p["query"]) for p in posts] == [("/creator", f"uid={UID}"), ("/listener", f"v=2&uid={UID}")]
    [stored] = await read_back(omi)
    assert all(p["json"] == stored for p in posts)
    assert stored["app_id"] == omi.app.app_id  # a bridge that imports and listens must filter its own
    assert posts[0]["key"] != posts[1]["key"]  # one key per delivery event: a conversation to an app
    assert sorted(d["idempotency_key"] for d in deliveries) == sorted(p["key"] for p in posts)
    external = stored["external_data"]
    if omi.sandbox.flavor == "fastapi":  # the creating request's fields, text included
        assert (external["text"], external["app_id"], external["source"]) == (
            MEETING,
            omi.app.app_id,
            "external_integration",
        )
    else:  # API core: `{"integration": {…}}` without the text, which is in the one segment
        assert "text" not in external["integration"] and external["integration"]["app_id"] == omi.app.app_id
        assert [s["text"] for s in stored["transcript_segments"]] == [MEETING]
    assert Sandbox.conversation_text(stored) == MEETING


async def test_the_import_answers_before_the_webhook_does(omi: Omi, receiver: Receiver) -> None:
    receiver.hold = True
    omi.sandbox.set_webhook(omi.app.app_id, receiver.url())
    await asyncio.wait_for(omi.create(MEETING), WAIT)  # answered while the app still holds the POST
    await receiver.wait_for_posts(1)
    assert receiver.answered == 0 and omi.sandbox.webhook_deliveries() == []
    receiver.release.set()
    assert [d["status"] for d in await idle(omi)] == [200]


async def test_a_discarded_import_is_not_sent(receiver: Receiver) -> None:
    async with running_omi(flavor="fastapi") as omi:  # API core discards nothing
        omi.sandbox.set_webhook(omi.app.app_id, receiver.url())
        await omi.create("ok")
        assert [c["discarded"] for c in omi.sandbox.conversations(UID)] == [True]
        assert await idle(omi) == [] and receiver.posts == []


# --- retries ----------------------------------------------------------------------------------------------------------


async def test_a_500_is_retried_with_the_same_idempotency_key(omi: Omi, receiver: Receiver) -> None:
    receiver.statuses = [500]
    receiver.answer = {"message": "Saved to your chat"}
    omi.sandbox.set_webhook(omi.app.app_id, receiver.url())
    await omi.sandbox.device_conversation(omi.app.app_id, UID, TALK)
    deliveries = await idle(omi)
    assert [(d["attempt"], d["status"]) for d in deliveries] == [(1, 500), (2, 200)]
    first, second = receiver.posts
    assert first["key"] == second["key"] == deliveries[0]["idempotency_key"] == deliveries[1]["idempotency_key"]
    assert first["json"] == second["json"]
    assert deliveries[1]["message"] == "Saved to your chat"  # what Omi would store as a chat message from the app


async def test_failures_are_retried_three_times_and_never_fail_the_import(receiver: Receiver) -> None:
    async with running_omi(webhook_retry_delays=(0.01, 0.01)) as omi:
        receiver.statuses = [502, 503, 500, 200]
        omi.sandbox.set_webhook(omi.app.app_id, receiver.url())
        gone = omi.sandbox.create_app(name="gone", webhook_url="http://127.0.0.1:9/omi/webhook")
        omi.sandbox.enable(gone.app_id, UID)
        await omi.create(MEETING)
        tries: dict[str, list[tuple[int, int | None, str | None]]] = {}
        for d in await idle(omi):
            tries.setdefault(d["app_id"], []).append((d["attempt"], d["status"], d["error"]))
        assert tries == {
            omi.app.app_id: [(1, 502, None), (2, 503, None), (3, 500, None)],  # three tries, then given up
            gone.app_id: [(1, None, "ConnectError"), (2, None, "ConnectError"), (3, None, "ConnectError")],
        }
        assert len(receiver.posts) == 3 and len({p["key"] for p in receiver.posts}) == 1
        assert len(omi.sandbox.conversations(UID)) == 1


async def test_a_4xx_is_not_retried(omi: Omi, receiver: Receiver) -> None:
    receiver.statuses = [410]
    omi.sandbox.set_webhook(omi.app.app_id, receiver.url())
    await omi.sandbox.device_conversation(omi.app.app_id, UID, TALK)
    assert [(d["attempt"], d["status"]) for d in await idle(omi)] == [(1, 410)]


async def test_stopping_cancels_deliveries_in_flight(receiver: Receiver) -> None:
    receiver.hold = True
    async with running_omi() as omi:
        omi.sandbox.set_webhook(omi.app.app_id, receiver.url())
        await omi.sandbox.device_conversation(omi.app.app_id, UID, TALK)
        await receiver.wait_for_posts(1)
        await asyncio.wait_for(omi.sandbox.stop(), WAIT)
        await asyncio.wait_for(omi.sandbox.webhooks_idle(), WAIT)
        assert omi.sandbox.webhook_deliveries() == []
