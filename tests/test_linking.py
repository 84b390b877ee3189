"""Linking with verification through the setup page, the chat and the sandbox's notifications."""

from __future__ import annotations

import logging
import re
import time

import httpx

from bot.linking import CODE_TTL_SECONDS, FAST_RETRY_SECONDS, MAX_OPEN_TOKENS, TOKEN_TTL_SECONDS
from bot.sandbox import conversation_text
from bot.store import ItemState

#: Every test that uses `env` runs against both Omi flavors and on both database engines (tests/conftest.py).
BOTH_FLAVORS = True
BOTH_ENGINES = True

NEW_UID = "uid-grace"


async def setup_token(web: httpx.AsyncClient, uid: str) -> str:
    page = await web.get("/omi/setup", params={"uid": uid})
    assert page.status_code == 200
    [token] = re.findall(r'href="https://t\.me/omibridge_bot\?start=([A-Za-z0-9_-]+)"', page.text)
    assert f"/omi link {token}" in page.text
    return token


async def setup_completed(web: httpx.AsyncClient, uid: str) -> bool:
    answer = await web.get("/omi/setup-completed", params={"uid": uid})
    assert answer.status_code == 200
    return answer.json()["is_setup_completed"]


def codes_sent(env, uid: str) -> list[str]:
    return [re.search(r"\b(\d{6})\b", n["message"]).group(1) for n in env.sandbox.notifications(uid)]


async def test_setup_page_to_verified_link_with_held_messages_delivered(env, web):
    token = await setup_token(web, NEW_UID)
    assert not await setup_completed(web, NEW_UID)
    user = env.user(user_id="5150", name="Grace Hopper")

    await user.command("start", token)
    assert "Almost linked" in await user.reply_text()
    assert await setup_completed(web, NEW_UID)  # Omi may enable the app now, before verification
    assert codes_sent(env, NEW_UID) == []  # not installed yet: the code waits

    env.sandbox.set_setup_completed_url(env.app_id, str(web.base_url) + "/omi/setup-completed")
    assert await env.sandbox.enable_checked(env.app_id, NEW_UID)  # Omi's own check against our page
    await user.say("notes from before verifying, kept for later")
    await env.close_bursts()
    assert "not verified" in await user.reply_text()

    env.clock.advance(FAST_RETRY_SECONDS)
    assert "I sent a 6-digit code" in await user.reply_text()
    [code] = codes_sent(env, NEW_UID)
    [note] = env.sandbox.notifications(NEW_UID)
    assert note["message"] == (
        f"omi-bridge code {code} for linking your Telegram account. Never share it. Ignore this if it wasn't you."
    )

    await user.command("verify", code)
    assert "Verified" in await user.reply_text()
    assert (await user.reply()).reaction == "👍"
    [conversation] = env.sandbox.conversations(NEW_UID)
    assert conversation_text(conversation) == "notes from before verifying, kept for later"
    await user.command("memories")
    assert "No memories" in await user.reply_text()  # reads work now


async def test_a_forged_uid_can_neither_read_nor_write_without_the_code(env, web):
    victim = env.uid  # enabled in the sandbox, so the code reaches the victim's app, not the attacker
    token = await setup_token(web, victim)
    attacker = env.user(user_id="6660", name="Mallory")
    await attacker.command("link", token)
    assert "Almost linked" in await attacker.reply_text()
    assert "I sent a 6-digit code" in await attacker.reply_text()

    await attacker.command("recent")
    assert "Finish linking first" in await attacker.reply_text()
    await attacker.command("memories")
    assert "Finish linking first" in await attacker.reply_text()
    await attacker.say("spam the victim's omi account please")
    await env.close_bursts()
    assert "not verified" in await attacker.reply_text()
    await env.settle()
    assert env.sandbox.conversations(victim) == []
    assert [r["route"] for r in env.sandbox.requests() if r["route"] != "notification"] == []

    [real_code] = codes_sent(env, victim)
    guesses = [guess for guess in ("000000", "111111", "222222", "333333", "444444", "555555") if guess != real_code]
    for guess in guesses[:4]:
        await attacker.command("verify", guess)
        assert "not right" in await attacker.reply_text()
    await attacker.command("verify", guesses[4])
    assert "cancelled this link" in await attacker.reply_text()
    assert await env.store.outbox.open_for_account(attacker.account) == []
    await attacker.command("verify", real_code)  # even the right code is useless now
    assert "no link waiting" in await attacker.reply_text()
    assert env.sandbox.conversations(victim) == []


async def test_a_token_works_once_across_platforms_and_expires(env, web):
    token = await setup_token(web, NEW_UID)
    first = env.user(user_id="7001")
    await first.command("start", token)
    assert "Almost linked" in await first.reply_text()
    second = env.user(user_id="7002")
    await second.command("link", token)
    assert "unknown, already used or expired" in await second.reply_text()

    stale = await setup_token(web, NEW_UID)
    env.clock.advance(TOKEN_TTL_SECONDS + 1)
    await second.command("link", stale)
    assert "unknown, already used or expired" in await second.reply_text()
    await second.command("link", "not a token!")
    assert "unknown, already used or expired" in await second.reply_text()


async def test_at_most_five_open_tokens_per_uid(env, web):
    tokens = [await setup_token(web, NEW_UID) for _ in range(MAX_OPEN_TOKENS + 1)]
    assert await env.store.claims.open_tokens(NEW_UID, env.clock.now()) == MAX_OPEN_TOKENS
    user = env.user(user_id="7003")
    await user.command("link", tokens[0])  # the oldest was retired by the sixth
    assert "unknown, already used or expired" in await user.reply_text()
    await user.command("link", tokens[-1])
    assert "Almost linked" in await user.reply_text()


async def test_codes_new_voids_old_expire_and_three_per_hour(env, web):
    user = env.user(user_id="7004")
    await user.command("start", await setup_token(web, env.uid))
    await user.reply()
    await user.reply()  # code sent
    await user.command("verify")
    assert "Sending a new code" in await user.reply_text()
    await user.reply()
    old, _new = codes_sent(env, env.uid)
    await user.command("verify", old)
    assert "not right" in await user.reply_text()
    await user.command("verify")
    await user.reply()
    await user.reply()
    await user.command("verify")
    assert "3 codes in the last hour" in await user.reply_text()
    env.clock.advance(CODE_TTL_SECONDS + 1)
    await user.command("verify", codes_sent(env, env.uid)[-1])
    assert "expired" in await user.reply_text()


async def test_a_new_claim_does_not_disturb_a_verified_link_until_verified(env, web):
    user = await env.linked_user(user_id="7005")
    await user.command("link", await setup_token(web, NEW_UID))
    assert "current link stays active" in await user.reply_text()
    await user.say("still goes to the old, verified account")
    await env.close_bursts()
    assert (await user.reply()).reaction == "👍"
    assert len(env.sandbox.conversations(env.uid)) == 1
    verified, claim = await env.store.links.get(user.account)
    assert verified.uid == env.uid and claim.uid == NEW_UID


async def test_setup_completed_and_pages_need_a_uid(web):
    for path in ("/omi/setup", "/omi/home"):
        for params in ({}, {"uid": ""}):
            page = await web.get(path, params=params)
            assert page.status_code == 400
            assert "Open this page from the Omi app" in page.text
    assert (await web.get("/omi/setup-completed")).status_code == 400


async def test_pages_are_locked_down_and_self_contained(web):
    page = await web.get("/omi/setup", params={"uid": NEW_UID})
    csp = page.headers["content-security-policy"]
    assert "default-src 'none'" in csp and "script-src 'self'" in csp and "'unsafe-inline'" not in csp
    assert page.headers["cache-control"] == "no-store"
    assert 'name="viewport"' in page.text
    assert re.findall(r'(?:src|href)="(https?://[^"]+)"', page.text) == [
        re.search(r'href="(https://t\.me/[^"]+)"', page.text).group(1)
    ]  # the deep link is the only absolute URL: no assets from other sites
    assert "<style" not in page.text and "style=" not in page.text and "<script>" not in page.text
    assert "15 minutes" in page.text
    for asset in ("/static/style.css", "/static/setup.js"):
        assert (await web.get(asset)).status_code == 200
    assert (await web.get("/static/../server.py")).status_code == 404


async def test_home_shows_masked_accounts_and_counts_only(env, web):
    user = await env.linked_user(user_id="123456742", name="Ada Secretname")
    env.sandbox.add_fault("create_conversation", status=503, times=None)
    await user.say("something private waiting for omi")
    await env.close_bursts()
    await user.reply()
    page = await web.get("/omi/home", params={"uid": env.uid})
    assert page.status_code == 200
    assert "Telegram ••42" in page.text and "verified" in page.text and "1 item waiting" in page.text
    for secret in ("123456742", "Secretname", "something private", env.app_id):
        assert secret not in page.text
    assert "/unlink" in page.text
    empty = await web.get("/omi/home", params={"uid": "nobody"})
    assert empty.status_code == 200 and "No chat account is linked" in empty.text


async def test_healthz_and_metrics(env, web):
    health = await web.get("/healthz")
    assert health.status_code == 200
    body = health.json()
    assert body["status"] == "ok" and body["queue_depth"] == 0
    assert set(body["components"]) == {"db", "omi", "telegram", "slack"}
    assert body["instance"] == env.bridge.worker.instance and abs(body["clock_offset_seconds"]) < 1.0
    metrics = await web.get("/metrics")
    assert "omi_bridge_queue_depth 0.0" in metrics.text


async def test_healthz_shows_a_clock_that_is_off_the_databases_and_warns_once(env, web, caplog):
    """SPEC §13: leases use the database's clock; an instance more than 1 s off it says so (WARN, /healthz)."""
    env.bridge.wall_clock = lambda: time.time() + 5.0
    with caplog.at_level(logging.WARNING, logger="bot.bridge"):
        first = (await web.get("/healthz")).json()
        second = (await web.get("/healthz")).json()
    assert first["status"] == "ok" and 4.0 < first["clock_offset_seconds"] < 6.0
    assert first["components"]["clock"].startswith("+5.0 s off the database's")
    assert second["components"]["clock"] == first["components"]["clock"]
    assert sum("clock is +5.0 s off the database's" in r.getMessage() for r in caplog.records) == 1
    env.bridge.wall_clock = time.time
    assert "clock" not in (await web.get("/healthz")).json()["components"]


async def test_held_items_are_released_to_the_verified_uid(env, web):
    user = env.user(user_id="7006")
    await user.command("start", await setup_token(web, env.uid))
    await user.reply()
    await user.reply()
    await user.say("held until the right code comes")
    await env.close_bursts()
    await user.reply()
    [item] = await env.store.outbox.open_for_account(user.account)
    assert item.state is ItemState.HELD
    await user.command("verify", codes_sent(env, env.uid)[-1])
    assert "1 waiting item(s)" in await user.reply_text()
    assert (await user.reply()).reaction == "👍"


async def test_code_delivery_retries_every_5s_then_30s_and_gives_up_after_15_minutes(env, web):
    from bot.linking import GIVE_UP_AFTER

    user = env.user(user_id="7007")
    start = env.clock.now()
    await user.command("start", await setup_token(web, NEW_UID))  # NEW_UID never enables the app
    await user.reply()
    sender = env.bridge.linking._senders[user.account]
    waits = []
    while not sender.done():
        try:
            deadline = await env.clock.next_sleeper(before=env.clock.now() + 60, timeout=1.0)
        except TimeoutError:
            break
        waits.append(round(deadline - env.clock.now()))
        env.clock.set(deadline)
    assert "could not deliver the code" in await user.reply_text()
    assert env.clock.now() - start <= GIVE_UP_AFTER
    assert set(waits[:20]) == {5} and waits[-1] == 30
    attempts = [r for r in env.sandbox.requests() if r["route"] == "notification"]
    assert len(attempts) == len(waits) + 1
    assert all(r["status"] == 403 for r in attempts)


async def test_sandbox_start_without_a_token_links_to_the_test_uid(env):
    env.bridge.commands.sandbox_uid = env.uid
    user = env.user(user_id="8008")
    await user.command("start")
    assert "SANDBOX: linked this chat" in await user.reply_text()
    assert (await env.store.links.verified(user.account)).uid == env.uid


async def test_a_private_omi_app_is_named_as_the_reason_and_not_retried(env, web, caplog):
    # Omi answers 404 "App not found" to notifications for anyone but a private app's owner and testers.
    env.sandbox.add_fault("notification", status=404, detail="App not found", times=None)
    token = await setup_token(web, env.uid)
    user = env.user(user_id="7070", name="Friend of the operator")
    await user.command("link", token)
    assert "Almost linked" in await user.reply_text()
    told = await user.reply_text()
    assert "Omi app is private" in told and "add you as a tester or publish it" in told
    await env.run_clock(20 * 60)
    assert sum(1 for r in env.sandbox.requests() if r["route"] == "notification") == 1  # no retries
    assert user.no_reply_pending()
    warnings = [r for r in caplog.records if r.levelname == "WARNING" and "private" in r.getMessage()]
    assert len(warnings) == 1 and "tester" in warnings[0].getMessage()
    env.sandbox.clear_faults()


async def test_a_notification_429_with_retry_after_zero_is_retried_after_a_second(env, web):
    env.sandbox.add_fault("notification", status=429, retry_after=0)
    token = await setup_token(web, env.uid)
    user = env.user(user_id="7071", name="Quota Edge")
    await user.command("link", token)
    assert "Almost linked" in await user.reply_text()
    deadline = await env.clock.next_sleeper(before=env.clock.now() + 5)  # the retry, after the 429
    assert sum(1 for r in env.sandbox.requests() if r["route"] == "notification") == 1
    assert deadline - env.clock.now() >= 1.0 - 1e-6  # not at once
    env.clock.set(deadline)
    assert "I sent a 6-digit code" in await user.reply_text()
    assert len(codes_sent(env, env.uid)) == 1
