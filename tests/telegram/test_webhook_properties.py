"""Property: whatever shape a correctly authenticated update has, `POST /telegram/webhook` answers 200 (a non-2xx
makes Telegram resend it forever), the text of a message that still names its sender is saved, and an update
that cannot be read costs at most one WARN line — never a traceback (SPEC §4, §6)."""

from __future__ import annotations

import itertools
import json
import logging
import re
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from tests.mutations import at, mutated
from tests.telegram.conftest import ADA, recorded

URL = "https://bridge.example.com/telegram/webhook"
SECRET = "property-webhook-secret_0123456789"
EXAMPLES = 150

#: Real-shaped updates to mutate: every kind of message the bridge reads, and the odd ones it must tolerate.
BASES = [
    "plain_text", "text_entities", "photo_caption", "forward_user", "forward_hidden_user", "forward_chat",
    "forward_channel_signed", "forward_remember", "location", "contact", "sticker", "command_start",
    "command_remember", "group_save_reply", "group_text", "odd/venue", "odd/checklist", "odd/poll_without_newer_keys",
    "odd/forward_hidden_user_without_name", "odd/rich_message", "odd/giveaway", "odd/link_preview_only",
    "odd/unknown_kind", "odd/private_message_without_from",
]  # fmt: skip
_ids = itertools.count(1)


def _fresh(name: str) -> tuple[dict[str, Any], str | None]:
    """A base update with ids no other example has, and a token in its text (to find it saved)."""
    update = recorded(name)
    n = next(_ids)
    update["update_id"] = 5_000_000 + n
    message = update.get("message")
    token = None
    if isinstance(message, dict):
        message["message_id"] = 700_000 + n
        for field in ("text", "caption"):
            if isinstance(message.get(field), str) and not message[field].startswith("/"):
                token = f"tok{n}x"
                message[field] = f"{message[field]} {token}"
    return update, token


def should_be_saved(update: Any, token: str | None) -> bool:
    """A private message from Ada whose text is intact and whose sender can still be told: the chat is Ada's, or
    `from` is Ada and the chat is unreadable or private."""
    message = at(update, "message")
    if token is None or not isinstance(message, dict):
        return False
    text = message.get("text") if "text" in message else message.get("caption")
    if not isinstance(text, str) or not text.endswith(token) or ("text" in message and "caption" in message):
        return False
    chat, sender = message.get("chat"), message.get("from")
    chat_id, sender_id = at(chat, "id"), at(sender, "id")
    chat_readable = type(chat_id) is int
    chat_private = chat_readable and (
        chat_id > 0 if not isinstance(at(chat, "type"), str) else at(chat, "type") == "private"
    )
    sender_readable = type(sender_id) is int
    if chat_readable and chat_id == ADA and chat_private:
        return sender_id == ADA or not sender_readable
    return sender_id == ADA and (not chat_readable or chat_private)


def _words(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]", "", text)


@pytest.fixture
async def webhook(transport, env):
    _, web = await transport.start(TELEGRAM_WEBHOOK_URL=URL, TELEGRAM_WEBHOOK_SECRET=SECRET)
    base_url = await web.start("127.0.0.1", 0)
    await env.store.links.link_verified(f"telegram:{ADA}", env.uid)
    async with httpx.AsyncClient(base_url=base_url) as client:
        yield client


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
async def test_any_shape_is_answered_200_and_nothing_with_text_is_lost(webhook, env, caplog, data):
    update, token = _fresh(data.draw(st.sampled_from(BASES), label="base"))
    payload = data.draw(mutated(update), label="payload")
    caplog.clear()
    caplog.set_level(logging.INFO)

    answer = await webhook.post(
        "/telegram/webhook",
        content=json.dumps(payload).encode(),
        headers={"Content-Type": "application/json", "X-Telegram-Bot-Api-Secret-Token": SECRET},
    )
    assert answer.status_code == 200
    await env.bridge.processor.wait_idle()
    await env.close_bursts()
    await env.settle()

    expected = should_be_saved(payload, token)
    event("text and sender intact: must be saved" if expected else "may be dropped with one WARN")
    if expected:
        assert token is not None
        saved = [_words(c["external_data"]["text"]) for c in env.sandbox.conversations(env.uid)]
        assert any(token in text for text in saved), "a message with its text and sender was lost"
    assert [r.getMessage() for r in caplog.records if r.exc_info] == [], "no tracebacks"
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) <= 1, warnings
