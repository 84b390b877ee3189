"""`POST /slack/events` at the edge: only validly signed requests are taken in (401 otherwise, nothing stored);
every signed one gets a 2xx, ignored ones included; a database outage answers 503 so that Slack retries."""

from __future__ import annotations

import json
import time

import httpx

from tests.slack.workspace import ADA, fixture, sign


async def stored_rows(env) -> int:
    row = await env.store.db.fetchone("SELECT COUNT(*) AS n FROM inbox")
    return int(row["n"])


async def post_raw(slack, content: str, headers: dict[str, str]) -> httpx.Response:
    async with httpx.AsyncClient() as client:
        return await client.post(
            slack.events_url, content=content.encode(), headers={"content-type": "application/json", **headers}
        )


async def test_bad_missing_or_stale_signatures_and_altered_bodies_get_401_and_nothing_is_stored(env, slack):
    body = json.dumps(fixture("dm_event"))
    altered = body.replace("quiet", "noisy")
    cases = {
        "wrong secret": (body, sign(body, secret="not-the-signing-secret")),
        "no headers": (body, {}),
        "stale timestamp": (body, sign(body, timestamp=int(time.time()) - 600)),
        "altered body": (altered, sign(body)),
    }
    calls_before = len(slack.fake.calls)
    for name, (content, headers) in cases.items():
        answer = await post_raw(slack, content, headers)
        assert answer.status_code == 401, name
    assert await stored_rows(env) == 0
    assert len(slack.fake.calls) == calls_before  # nothing reached Slack either: the signature is checked first


async def test_url_verification_is_answered_with_the_challenge(env, slack):
    body = json.dumps(
        {"token": "x", "challenge": "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P", "type": "url_verification"}
    )
    answer = await post_raw(slack, body, sign(body))
    assert answer.status_code == 200
    assert "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P" in answer.text


async def test_every_validly_signed_request_gets_a_2xx_even_when_ignored(env, slack):
    reaction = fixture("dm_event")
    reaction["event"] = {"type": "reaction_added", "user": ADA.id, "reaction": "tada", "item": {"type": "message"}}
    rate_limited = {"token": "x", "type": "app_rate_limited", "team_id": "T0FAKE001", "minute_rate_limited": 1}
    view_closed = {"type": "view_closed", "user": {"id": ADA.id}, "view": {"callback_id": "old", "type": "modal"}}
    global_shortcut = {"type": "shortcut", "callback_id": "something_else", "user": {"id": ADA.id}, "trigger_id": "1"}
    for kind, body in [
        ("events_api", reaction),
        ("events_api", rate_limited),
        ("interactive", view_closed),
        ("interactive", global_shortcut),
    ]:
        sent = await slack.deliver(kind, body)
        assert sent.status == 200, body
    assert await stored_rows(env) == 0


async def test_database_unavailable_answers_503_then_the_retry_is_taken(env, slack):
    await env.store.db.close()
    try:
        refused = await slack.command(ADA, "help")
        assert refused.status == 503
    finally:
        await env.store.db.open()
    again = await slack.command(ADA, "help")
    assert again.status == 200
    await slack.fake.said("I save what you send me")


async def test_health_shows_slack(env, slack):
    async with httpx.AsyncClient(base_url=slack.web_url) as client:
        health = (await client.get("/healthz")).json()
    assert health["components"]["slack"] == "ok"


async def test_a_slash_command_with_a_bad_signature_gets_401_whatever_path_it_takes(env, slack):
    """Slash commands are taken in on a fast path (transport.SlashCommands); what it does not vouch for goes to
    Bolt, which refuses it exactly as before."""
    from urllib.parse import urlencode

    fields = {"command": "/omi", "text": "remember a secret plan", "user_id": ADA.id, "trigger_id": "9.1.x"}
    body = urlencode({**fields, "team_id": "T0FAKE001", "channel_id": "D1", "response_url": slack.fake.response_url()})
    cases = {
        "wrong secret": (body, sign(body, secret="not-the-signing-secret")),
        "no headers": (body, {}),
        "stale timestamp": (body, sign(body, timestamp=int(time.time()) - 600)),
        "garbage timestamp": (body, {**sign(body), "x-slack-request-timestamp": "soon"}),
        "altered body": (body.replace("secret", "public"), sign(body)),
    }
    form = {"content-type": "application/x-www-form-urlencoded"}
    async with httpx.AsyncClient() as client:
        for name, (content, headers) in cases.items():
            answer = await client.post(slack.events_url, content=content.encode(), headers={**form, **headers})
            assert answer.status_code == 401, name
    assert await stored_rows(env) == 0
    good = await slack.post(body, "application/x-www-form-urlencoded")
    assert good.status_code == 200 and good.text == ""
    assert await stored_rows(env) == 1
