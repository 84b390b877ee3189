"""What the listeners store before acknowledging: the job kind, a payload without the legacy token, dedupe keys."""

from __future__ import annotations

from adapters.slack.convert import parse_command_text
from adapters.slack.jobs import JobKind, job_for
from bot.events import Command
from tests.slack.fake_slack import BOT_USER_ID
from tests.slack.workspace import fixture


def test_each_kind_with_its_dedupe_keys_and_never_the_legacy_token():
    cases = {
        "slash_command": (JobKind.COMMAND, ("slack:cmd:7349812930123.6411027382.8cf5b8e2a5c3d4f1e0a9b8c7d6e5f4a3",)),
        "shortcut_save_to_omi": (
            JobKind.SHORTCUT,
            ("slack:action:7349812930555.6411027382.1f2e3d4c5b6a79880a9b8c7d6e5f4a3b",),
        ),
        "block_actions": (JobKind.ACTION, ("slack:action:7349812930999.6411027382.0f1e2d3c4b5a69788796a5b4c3d2e1f0",)),
        "dm_event": (JobKind.EVENT, ("slack:event:Ev0DM0000001", "slack:msg:D0ADA0001:1773306000.000300")),
        "app_home_opened": (JobKind.HOME, ("slack:event:Ev0HOME00001",)),
    }
    for name, (kind, keys) in cases.items():
        job = job_for(fixture(name), BOT_USER_ID)
        assert job is not None, name
        assert (job.kind, job.dedupe_keys) == (kind, keys), name
        assert "token" not in job.payload and "gIkuvaNzQIHg97ATvDxqgjtO" not in job.arrival().payload, name


def test_a_thread_job_is_only_the_reference():
    job = job_for(fixture("shortcut_save_thread_to_omi"), BOT_USER_ID)
    assert job is not None and job.kind is JobKind.SHORTCUT
    assert job.payload["thread_ts"] == "1773306000.000100"
    assert job.payload["channel"] == {"id": "C0GENERAL1", "name": "general"}
    assert "message" not in job.payload and "Launch plan" not in job.arrival().payload


def test_ignored_requests_are_no_jobs():
    own = fixture("dm_event_from_bot")
    own_without_bot_id = fixture("dm_event")
    own_without_bot_id["event"]["user"] = BOT_USER_ID
    foreign_button = fixture("block_actions")
    foreign_button["actions"][0]["action_id"] = "someone_elses_button"
    messages_tab = fixture("app_home_opened")
    messages_tab["event"]["tab"] = "messages"
    channel_message = fixture("dm_event")
    channel_message["event"]["channel_type"] = "channel"
    for body in (own, own_without_bot_id, foreign_button, messages_tab, channel_message):
        assert job_for(body, BOT_USER_ID) is None


def test_a_request_without_ids_gets_no_dedupe_key_rather_than_a_shared_empty_one():
    body = fixture("slash_command")
    del body["trigger_id"]
    job = job_for(body, BOT_USER_ID)
    assert job is not None and job.dedupe_keys == ()


def test_command_text():
    assert parse_command_text("") == Command("help")
    assert parse_command_text("  Recent 3 ") == Command("recent", "3")
    assert parse_command_text("remember\n- milk\n- eggs") == Command("remember", "- milk\n- eggs")
