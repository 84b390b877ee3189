"""`POST /telegram/webhook`: the secret first, then size, JSON and storage; 200 only once the update is accepted."""

from __future__ import annotations

import json
import logging
import re

import httpx
import pytest

from adapters.telegram.platform import SECRET_KEY
from tests.databases import set_read_only
from tests.telegram.conftest import ADA, command

#: The webhook's intake runs on both database engines (tests/conftest.py).
BOTH_ENGINES = True

URL = "https://bridge.example.com/telegram/webhook"
SECRET = "test-webhook-secret_0123456789"


@pytest.fixture
async def webhook(transport):
    platform, web = await transport.start(TELEGRAM_WEBHOOK_URL=URL, TELEGRAM_WEBHOOK_SECRET=SECRET)
    base_url = await web.start("127.0.0.1", 0)
    async with httpx.AsyncClient(base_url=base_url) as client:
        client.platform = platform  # type: ignore[attr-defined]
        yield client


def post(client: httpx.AsyncClient, body: object, secret: str | None = SECRET, raw: bytes | None = None):
    headers = {"Content-Type": "application/json"}
    if secret is not None:
        headers["X-Telegram-Bot-Api-Secret-Token"] = secret
    content = raw if raw is not None else json.dumps(body).encode()
    return client.post("/telegram/webhook", content=content, headers=headers)


async def stored_rows(env) -> list[str]:
    return [row["kind"] for row in await env.store.db.fetchall("SELECT kind FROM inbox ORDER BY id")]


async def test_webhook_mode_registers_the_url_with_its_secret_and_never_polls(webhook, fake_api):
    [registered] = fake_api.calls_to("setWebhook")
    assert registered == {
        "url": URL,
        "secret_token": SECRET,
        "allowed_updates": ["message", "edited_message", "callback_query"],
    }
    assert fake_api.calls_to("setMyCommands") and not fake_api.calls_to("getUpdates")
    assert await webhook.platform.health() == "ok: webhook as @omibridge_bot"


async def test_an_update_is_answered_after_it_is_stored_and_a_redelivery_is_processed_once(webhook, fake_api, env):
    update = {**command("help"), "update_id": 4242}

    first = await post(webhook, update)
    assert first.status_code == 200
    assert await stored_rows(env) == ["update"]  # committed before the 200 went out
    second = await post(webhook, update)  # Telegram did not see the first 200 and tries again
    assert second.status_code == 200

    [reply] = await fake_api.wait_for("sendMessage")
    assert reply["chat_id"] == ADA and reply["text"].startswith("I save what you send me")
    await env.bridge.processor.wait_idle()
    assert len(fake_api.calls_to("sendMessage")) == 1
    assert await stored_rows(env) == ["update"]


@pytest.mark.parametrize("secret", [None, "wrong-secret", SECRET[:-1], ""])
async def test_a_missing_or_wrong_secret_is_403_and_nothing_is_stored(webhook, env, secret):
    answer = await post(webhook, {**command("help"), "update_id": 1}, secret=secret)

    assert answer.status_code == 403
    assert await stored_rows(env) == []
    assert await env.store.db.fetchall("SELECT key FROM dedupe") == []


async def test_a_body_over_1_mb_is_413(webhook, env):
    too_big = b'{"update_id": 1, "padding": "' + b"x" * (1024 * 1024) + b'"}'

    answer = await post(webhook, None, raw=too_big)

    assert answer.status_code == 413
    assert await stored_rows(env) == []


async def test_a_body_that_is_not_json_is_400(webhook, env):
    answer = await post(webhook, None, raw=b"update_id=1&message=hello")

    assert answer.status_code == 400
    assert await stored_rows(env) == []


async def test_json_that_is_no_update_is_stored_and_answered_200(webhook, env, fake_api):
    # A non-2xx would make Telegram resend it forever.
    answer = await post(webhook, {"hello": "world"})

    assert answer.status_code == 200
    assert await stored_rows(env) == ["unusable"]
    await env.bridge.processor.wait_idle()
    assert fake_api.calls_to("sendMessage") == []
    assert await env.store.inbox.pending_count() == 0


async def test_an_unwritable_database_is_503_so_telegram_retries(webhook, env):
    update = {**command("help"), "update_id": 77}
    await set_read_only(env.store.db, True)

    assert (await post(webhook, update)).status_code == 503

    await set_read_only(env.store.db, False)
    assert (await post(webhook, update)).status_code == 200
    assert await stored_rows(env) == ["update"]


async def test_while_stopping_the_route_answers_503(webhook):
    await webhook.platform.stop()  # the web server keeps running a little longer during a shutdown

    assert (await post(webhook, {**command("help"), "update_id": 78})).status_code == 503


async def test_without_a_configured_secret_one_is_generated_once_and_kept(transport, fake_api, env):
    first, _ = await transport.start(TELEGRAM_WEBHOOK_URL=URL)
    await transport.stop(first)
    await transport.start(TELEGRAM_WEBHOOK_URL=URL)

    stored = await env.store.values.get(SECRET_KEY)
    assert stored is not None and re.fullmatch(r"[A-Za-z0-9_-]{40,256}", stored)
    assert [call["secret_token"] for call in fake_api.calls_to("setWebhook")] == [stored, stored]


async def test_in_polling_mode_the_route_takes_nothing(transport, env):
    _, web = await transport.start()  # no TELEGRAM_WEBHOOK_URL: polling
    async with httpx.AsyncClient(base_url=await web.start("127.0.0.1", 0)) as client:
        answer = await post(client, {**command("help"), "update_id": 79}, secret="")

    assert answer.status_code == 403
    assert await stored_rows(env) == []


@pytest.mark.parametrize(
    "body",
    [b"[" * 50_000 + b"]" * 50_000, b'{"update_id": 1, "message": {"message_id": ' + b"9" * 5000 + b"}}"],
    ids=["nested-50000-deep", "a-5000-digit-number"],
)
async def test_json_python_cannot_hold_is_stored_and_answered_200(webhook, env, body, caplog):
    answer = await post(webhook, None, raw=body)

    assert answer.status_code == 200
    assert await stored_rows(env) == ["unusable"]
    assert not [record for record in caplog.records if record.exc_info]


async def test_an_update_of_any_shape_gets_its_200_and_one_warn_line_at_most(webhook, env, fake_api, caplog):
    """Issue 11: `"chat": -1` and `"from": []` once made the intake raise (a 500, which Telegram retries)."""
    await env.store.links.link_verified(f"telegram:{ADA}", env.uid)
    no_chat = {**command("help", message_id=601), "update_id": 7001}
    no_chat["message"]["chat"] = -1
    no_sender = {**command("status", message_id=602), "update_id": 7002}
    no_sender["message"]["from"] = []
    nobody = {"update_id": 7003, "message": {"message_id": {}, "chat": [], "from": 1.5, "text": "lost words"}}

    for update in (no_chat, no_sender, nobody):
        assert (await post(webhook, update)).status_code == 200
    await env.bridge.processor.wait_idle()

    # The first two still name whom to answer (the sender's private chat, the chat's own user).
    await fake_api.wait_for("sendMessage", lambda p: str(p["chat_id"]) == str(ADA), count=2)
    warnings = [record.getMessage() for record in caplog.records if record.levelno >= logging.WARNING]
    assert len(warnings) == 1 and "names no chat or sender" in warnings[0]
    assert not [record for record in caplog.records if record.exc_info]
