"""Odd real Slack payloads (fixtures/odd/, written in the shapes Slack's documentation and the SDKs' test data
show), sent signed to `POST /slack/events`: each is a saved conversation, a clear answer, or — for what no
person wrote to the bot (a bot's message, a deletion) — answered 200 and kept out. Never a silent loss."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass

import pytest

from tests.slack.conftest import link
from tests.slack.workspace import ADA, FIXTURES, GENERAL

ODD = FIXTURES / "odd"


@dataclass(frozen=True)
class Saved:
    texts: tuple[str, ...]
    started_at: str | None = None


@dataclass(frozen=True)
class Answered:
    words: str


@dataclass(frozen=True)
class KeptOut:
    """Nobody's words to save: answered 200, nothing stored, nothing said."""


HUGE = ("The analytical engine weaves algebraic patterns. " * 1300).strip()

EXPECTED: dict[str, Saved | Answered | KeptOut] = {
    "shared_message": Saved(
        ("Grace Hopper: Compilers let people write **words**, not numbers",), "2026-03-10T09:00:00"
    ),
    "shared_message_with_comment": Saved(
        ("Grace Hopper: Compilers let people write **words**, not numbers\n\nNote: worth remembering",),
        "2026-03-10T09:00:00",
    ),
    "attachment_only_words": Saved(
        ("CI finished\nBuild 42 (https://ci.example.org/42)\nAll 812 tests passed\nBranch: main",)
    ),
    "link_with_unfurl": Saved(("read this (https://example.org/engines)",)),
    "bot_message": KeptOut(),
    "file_share_with_comment": Saved(("minutes of Tuesday's call",)),
    "file_share_alone": Answered("Files other than .txt/.md"),
    "message_deleted": KeptOut(),
    "channel_mention_without_label": Saved(("moving this to #general and #random",)),
    "me_message": Saved(("is thinking about gears",)),
    "dm_without_channel_type": Saved(("sent from an old client",)),
    "thread_broadcast": Saved(("also sent to the conversation",)),
    "huge_text": Saved(("(1/2) ", "(2/2) ")),
    "message_changed": Saved(("lunch at 1pm",)),
}


def odd(name: str) -> list[dict]:
    data = json.loads((ODD / f"{name}.json").read_text(encoding="utf-8"))
    return data if isinstance(data, list) else [data]


def test_every_odd_fixture_has_an_expected_outcome():
    assert sorted(path.stem for path in ODD.glob("*.json")) == sorted(EXPECTED)


async def stored_rows(env) -> int:
    row = await env.store.db.fetchone("SELECT COUNT(*) AS n FROM inbox")
    return int(row["n"])


@pytest.mark.parametrize("name", sorted(EXPECTED))
async def test_an_odd_payload_is_saved_answered_or_kept_out(env, slack, caplog, name):
    await link(env, ADA)
    slack.fake.add_channel(GENERAL, "general")
    slack.fake.add_channel("C0RANDOM01", "random")
    caplog.set_level(logging.INFO)
    for body in odd(name):
        assert (await slack.deliver("events_api", body)).status == 200
    await env.bridge.processor.wait_idle()
    await env.close_bursts()
    await env.settle()

    expected = EXPECTED[name]
    if isinstance(expected, Saved):
        await slack.fake.said("Saved", method="chat.postMessage")
        texts = sorted(c["external_data"]["text"] for c in env.sandbox.conversations(env.uid))
        if name == "huge_text":
            assert [text[:6] for text in texts] == list(expected.texts)
            assert " ".join(text[6:] for text in texts).split() == HUGE.split()
        else:
            assert texts == list(expected.texts)
        if expected.started_at is not None:
            [conversation] = env.sandbox.conversations(env.uid)
            assert conversation["started_at"].startswith(expected.started_at)
    elif isinstance(expected, Answered):
        await slack.fake.said(expected.words, method="chat.postMessage")
        assert env.sandbox.conversations(env.uid) == []
    else:
        assert await stored_rows(env) == 0
        assert slack.fake.calls_to("chat.postMessage") == []
    assert not [record for record in caplog.records if record.exc_info], "no tracebacks"


async def test_channel_names_are_looked_up_once_and_cached(env, slack):
    await link(env, ADA)
    slack.fake.add_channel(GENERAL, "general")
    for n in range(3):
        await slack.write_dm(ADA, f"see <#{GENERAL}> ({n})", ts=f"1773306{n:03d}.000900")
    await env.bridge.processor.wait_idle()
    await env.close_bursts()
    await slack.fake.said("Saved 3 messages", method="chat.postMessage")

    [conversation] = env.sandbox.conversations(env.uid)
    assert conversation["external_data"]["text"] == "see #general (0)\n\nsee #general (1)\n\nsee #general (2)"
    assert len(slack.fake.calls_to("conversations.info")) == 1


async def test_a_channel_slack_will_not_describe_keeps_its_id(env, slack):
    await link(env, ADA)  # no such channel at the fake: channel_not_found
    await slack.write_dm(ADA, "see <#C0SECRET01>", ts="1773306000.000901")
    await env.bridge.processor.wait_idle()
    await env.close_bursts()
    await slack.fake.said("Saved 1 message", method="chat.postMessage")

    [conversation] = env.sandbox.conversations(env.uid)
    assert conversation["external_data"]["text"] == "see #C0SECRET01"


async def test_socket_mode_acknowledges_shapes_bolt_cannot_read_and_keeps_their_words(env, socket_slack, caplog):
    await link(env, ADA)
    odd_envelope = socket_slack.dm_event(ADA, "kept although Bolt trips over this body", ts="1773306000.000950")
    odd_envelope["authorizations"] = 1.5  # Bolt's context helpers take len() of it
    unreadable = {"type": "event_callback", "event": 1.5, "event_id": "Ev0FLOAT0001"}

    for body in (odd_envelope, unreadable):
        assert (await socket_slack.deliver("events_api", body)).status == 200  # acknowledged on the socket
    await env.bridge.processor.wait_idle()
    await env.close_bursts()

    await socket_slack.fake.said("Saved 1 message", method="chat.postMessage")
    [conversation] = env.sandbox.conversations(env.uid)
    assert conversation["external_data"]["text"] == "kept although Bolt trips over this body"
    warnings = [record.getMessage() for record in caplog.records if record.levelno >= logging.WARNING]
    assert warnings == ["slack: a request of a shape the bridge cannot read was acknowledged and dropped"]
    assert not [record for record in caplog.records if record.exc_info]
