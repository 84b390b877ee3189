"""Property: whatever shape a validly signed request has, `POST /slack/events` answers 2xx (a 404 or 5xx makes
Slack retry and can get the subscription disabled), a direct message whose text and author are intact is saved,
and a request that cannot be read costs at most one WARN line — never a traceback (SPEC §4, §6)."""

from __future__ import annotations

import itertools
import json
import logging
import re
from typing import Any
from urllib.parse import urlencode

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from tests.mutations import at, mutated
from tests.slack.conftest import link
from tests.slack.workspace import ADA, FIXTURES, fixture

EXAMPLES = 150

#: (fixture, how Slack sends it): every kind of request the bridge reads, and odd DMs it must tolerate.
BASES = [
    ("dm_event", "events_api"),
    ("dm_event", "events_api"),  # twice: the case the "nothing lost" property is about
    ("odd/shared_message", "events_api"),
    ("odd/attachment_only_words", "events_api"),
    ("odd/file_share_with_comment", "events_api"),
    ("odd/channel_mention_without_label", "events_api"),
    ("odd/me_message", "events_api"),
    ("dm_event_from_bot", "events_api"),
    ("app_home_opened", "events_api"),
    ("slash_command", "slash_commands"),
    ("block_actions", "interactive"),
    ("shortcut_save_to_omi", "interactive"),
]
_ids = itertools.count(1)


def _base(name: str) -> dict[str, Any]:
    if name.startswith("odd/"):
        return json.loads((FIXTURES / f"{name}.json").read_text(encoding="utf-8"))
    return fixture(name)


def _fresh(name: str, response_url: str) -> tuple[dict[str, Any], str | None]:
    """A base request with ids no other example has, a token in a DM's text, and response URLs at the fake."""
    body = _base(name)
    n = next(_ids)
    token = None
    ts = f"17733{n:05d}.000100"
    if isinstance(body.get("event"), dict):
        body["event_id"] = f"Ev0PROP{n:07d}"
        body["event"]["ts"] = body["event"]["event_ts"] = ts
        if body["event"].get("text"):
            token = f"tok{n}x"
            body["event"]["text"] = f"{body['event']['text']} {token}"
    for key in ("trigger_id", "response_url"):
        if key in body:
            body[key] = f"{n}.6411027382.prop" if key == "trigger_id" else response_url
    if isinstance(body.get("message"), dict):
        body["message"]["ts"] = body["message_ts"] = ts
    return body, token


def should_be_saved(body: Any, token: str | None) -> bool:
    """A direct message from Ada (not a bot's, no subtype) whose text is intact."""
    event = at(body, "event")
    if token is None or not isinstance(event, dict) or not isinstance(body, dict):
        return False
    kind, channel_type = body.get("type"), event.get("channel_type")
    direct = channel_type == "im" or (not isinstance(channel_type, str) and str(event.get("channel")).startswith("D"))
    return (
        (kind == "event_callback" or not isinstance(kind, str))
        and event.get("type") == "message"
        and direct
        and event.get("subtype") is None
        and not event.get("bot_id")
        and event.get("user") == ADA.id
        and isinstance(event.get("text"), str)
        and event["text"].endswith(token)
    )


def _encoded(body: Any, kind: str) -> tuple[str, str]:
    if kind == "slash_commands" and isinstance(body, dict):
        return urlencode({key: str(value) for key, value in body.items()}), "application/x-www-form-urlencoded"
    if kind == "interactive":
        return urlencode({"payload": json.dumps(body)}), "application/x-www-form-urlencoded"
    return json.dumps(body), "application/json"


def _words(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]", "", text)


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
async def test_any_signed_shape_is_answered_2xx_and_nothing_with_text_is_lost(env, slack, caplog, data):
    await link(env, ADA)
    name, kind = data.draw(st.sampled_from(BASES), label="base")
    body, token = _fresh(name, slack.fake.response_url())
    payload = data.draw(mutated(body), label="payload")
    content, content_type = _encoded(payload, kind)
    caplog.clear()
    caplog.set_level(logging.INFO)

    answer = await slack.post(content, content_type)
    assert 200 <= answer.status_code < 300, answer.text
    await env.bridge.processor.wait_idle()
    await env.close_bursts()
    await env.settle()

    expected = should_be_saved(payload, token)
    event("text and author intact: must be saved" if expected else "may be dropped with one WARN")
    if expected:
        assert token is not None
        saved = [_words(c["external_data"]["text"]) for c in env.sandbox.conversations(env.uid)]
        assert any(token in text for text in saved), "a direct message with its text and author was lost"
    assert [r.getMessage() for r in caplog.records if r.exc_info] == [], "no tracebacks"
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) <= 1, warnings
