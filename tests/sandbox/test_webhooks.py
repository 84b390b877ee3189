"""What the sandbox sends to apps as Omi does (behaviour notes §4.6, §9.7): the memory-creation webhook, for
conversations "recorded by the wearable" (`device_conversation`) and for every import, the creating app's too."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web

from bot.sandbox import Sandbox
from tests.sandbox import UID, Omi, detail, running_omi

TALK = "Alice: we need to buy milk for the party.\nBob: I will get it after work today.\nAlice: thanks a lot!"


@dataclass
class Receiver:
    """An app backend on 127.0.0.1 that records every webhook POST and answers `status`."""

    base_url: str = ""
    status: int = 200
    posts: list[dict[str, Any]] = field(default_factory=list)

    def url(self, path: str = "/omi/webhook") -> str:
        return self.base_url + path


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    received = Receiver()

    async def hook(request: web.Request) -> web.Response:
        received.posts.append(
            {
                "path": request.path,
                "query": request.query_string,
                "key": request.headers.get("Idempotency-Key"),
                "json": await request.json(),
            }
        )
        return web.json_response({}, status=received.status)

    app = web.Application()
    app.router.add_post("/{tail:.*}", hook)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    received.base_url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    try:
        yield received
    finally:
        await runner.cleanup()


@pytest.fixture
async def omi() -> AsyncIterator[Omi]:
    async with running_omi() as running:
        yield running


# --- device conversations --------------------------------------------------------------------------------------------


async def test_device_conversation_is_stored_and_posted_to_the_apps_webhook(omi: Omi, receiver: Receiver) -> None:
    omi.sandbox.set_webhook_url(omi.app.app_id, receiver.url())
    result = await omi.sandbox.device_conversation(omi.app.app_id, UID, TALK)
    conversation = result["conversation"]
    [post] = receiver.posts
    assert (post["path"], post["query"]) == ("/omi/webhook", f"uid={UID}")
    assert post["json"] == conversation == omi.sandbox.conversations(UID)[0]
    assert post["key"] == result["deliveries"][0]["idempotency_key"] and len(post["key"]) == 36
    assert result["deliveries"][0]["status"] == 200
    assert conversation["source"] == "omi"
    assert "app_id" not in conversation and "external_data" not in conversation
    assert [s["text"] for s in conversation["transcript_segments"]] == TALK.splitlines()
    assert {s["speaker"] for s in conversation["transcript_segments"]} == {"SPEAKER_00"}
    assert conversation["created_at"] == conversation["started_at"] == "2024-03-15T00:00:00Z"
    assert [a["description"] for a in conversation["structured"]["action_items"]] == [
        "We need to buy milk for the party"
    ]
    assert Sandbox.conversation_text(conversation) == TALK


async def test_device_conversations_over_the_admin_routes_with_a_redelivery(omi: Omi, receiver: Receiver) -> None:
    app_id = omi.app.app_id
    hook = receiver.url("/omi/webhook/s3cret?source=omi")
    assert (await omi.http.put(f"/_sandbox/apps/{app_id}/webhook", json={"webhook_url": hook})).status_code == 200
    created = await omi.http.post(
        f"/_sandbox/apps/{app_id}/device-conversations",
        params={"uid": UID},
        json={"text": TALK, "started_at": "2024-03-14T18:00:00Z", "deliveries": 2},
    )
    assert created.status_code == 200
    assert created.json()["conversation"]["started_at"] == "2024-03-14T18:00:00Z"
    assert [p["query"] for p in receiver.posts] == [f"source=omi&uid={UID}"] * 2  # `&uid=` after a query
    assert receiver.posts[0]["key"] == receiver.posts[1]["key"]  # the same Idempotency-Key on the redelivery
    logged = (await omi.http.get("/_sandbox/webhook-deliveries")).json()["deliveries"]
    assert [(d["app_id"], d["uid"], d["status"]) for d in logged] == [(app_id, UID, 200)] * 2


async def test_device_conversation_misuse(omi: Omi, receiver: Receiver) -> None:
    app_id = omi.app.app_id
    path = f"/_sandbox/apps/{app_id}/device-conversations"
    no_hook = await omi.http.post(path, params={"uid": UID}, json={"text": TALK})
    assert (no_hook.status_code, "webhook url" in detail(no_hook)) == (400, True)
    omi.sandbox.set_webhook_url(app_id, receiver.url())
    not_enabled = await omi.http.post(path, params={"uid": "stranger"}, json={"text": TALK})
    assert (not_enabled.status_code, detail(not_enabled)) == (400, "App is not enabled for this user")
    assert (await omi.http.post(path, json={"text": TALK})).status_code == 422  # no uid
    unknown = await omi.http.post("/_sandbox/apps/nope/device-conversations", params={"uid": UID}, json={"text": "x"})
    assert unknown.status_code == 404
    with pytest.raises(LookupError):
        await omi.sandbox.device_conversation("nope", UID, TALK)
    assert receiver.posts == []


async def test_a_trivial_device_conversation_is_stored_discarded_and_not_delivered(
    omi: Omi, receiver: Receiver
) -> None:
    omi.sandbox.set_webhook_url(omi.app.app_id, receiver.url())
    result = await omi.sandbox.device_conversation(omi.app.app_id, UID, "ok bye")
    assert result["conversation"]["discarded"] is True and result["deliveries"] == []
    assert receiver.posts == [] and len(omi.sandbox.conversations(UID)) == 1


async def test_reads_cap_transcript_segments(omi: Omi, receiver: Receiver) -> None:
    omi.sandbox.set_webhook_url(omi.app.app_id, receiver.url())
    await omi.sandbox.device_conversation(omi.app.app_id, UID, TALK)

    async def segments(**params: str) -> int:
        response = await omi.call("read_conversations", params=params)
        return len(response.json()["conversations"][0]["transcript_segments"])

    assert [
        await segments(),
        await segments(max_transcript_segments="1"),
        await segments(max_transcript_segments="-1"),
    ] == [3, 1, 3]
    assert await segments(max_transcript_segments="0") == 0


# --- imports trigger the webhooks too ---------------------------------------------------------------------------------


async def test_an_import_reaches_every_enabled_app_with_a_webhook_the_creator_included(
    omi: Omi, receiver: Receiver
) -> None:
    omi.sandbox.set_webhook_url(omi.app.app_id, receiver.url("/creator"))
    listener = omi.sandbox.create_app(name="listener", webhook_url=receiver.url("/listener"))
    omi.sandbox.enable(listener.app_id, UID)
    omi.sandbox.create_app(name="not enabled", webhook_url=receiver.url("/not-enabled"))
    await omi.create("We planned the quarterly project review meeting for Friday.")
    await omi.create("ok")  # discarded: Omi skips it
    assert sorted(p["path"] for p in receiver.posts) == ["/creator", "/listener"]
    [stored] = [c for c in omi.sandbox.conversations(UID) if not c["discarded"]]
    assert all(p["json"] == stored for p in receiver.posts)
    assert receiver.posts[0]["key"] != receiver.posts[1]["key"]  # one key per app and conversation


async def test_a_failing_webhook_does_not_fail_the_import(omi: Omi, receiver: Receiver) -> None:
    receiver.status = 500
    omi.sandbox.set_webhook_url(omi.app.app_id, receiver.url())
    listener = omi.sandbox.create_app(name="gone", webhook_url="http://127.0.0.1:9/omi/webhook")
    omi.sandbox.enable(listener.app_id, UID)
    await omi.create("We planned the quarterly project review meeting for Friday.")
    deliveries = omi.sandbox.webhook_deliveries()
    assert [(d["status"], d["error"]) for d in deliveries] == [(500, None), (None, "ConnectError")]
    assert len(omi.sandbox.conversations(UID)) == 1


async def test_api_core_imports_are_delivered_without_text_in_external_data(receiver: Receiver) -> None:
    async with running_omi(flavor="api-core") as omi:
        omi.sandbox.set_webhook_url(omi.app.app_id, receiver.url())
        await omi.create("We planned the quarterly project review meeting for Friday.")
        [post] = receiver.posts
        assert "text" not in post["json"]["external_data"]["integration"]
        assert Sandbox.conversation_text(post["json"]) == "We planned the quarterly project review meeting for Friday."
