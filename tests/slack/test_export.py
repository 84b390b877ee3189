"""Importing a Slack workspace export (SPEC §10): one channel's messages in time order over its day files, threads
right after their parent, names from users.json — and every unsafe or wrong file refused before anything is read
out."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from adapters.slack.export import list_channels, read_export
from bot.importing.model import EXIT_USAGE, ChatInfo, ImportedMessage, ImportRefused
from tests.slack.export_fixtures import (
    SlackExport,
    damaged_zip,
    lying_zip,
    telegram_zip,
    write_zip,
    zip_bomb,
)
from tests.slack.workspace import ADA, ALAN, GRACE

GENERAL = "C0GENERAL1"
MB = 1024 * 1024


def ts(day: int, minute: int = 0) -> str:
    """A message time: `day` of March 2024, minutes after 10:00 UTC."""
    return f"{1709287200 + (day - 1) * 86400 + minute * 60}.000100"


@pytest.fixture
def export() -> SlackExport:
    built = SlackExport()
    for person in (ADA, GRACE, ALAN):
        built.user(person.id, person.name)
    built.channel(GENERAL, "general", members=[ADA.id, GRACE.id, ALAN.id])
    built.channel("G0DESIGN01", "design", kind="private")
    built.channel("C0MPIM0001", "mpdm-ada--grace-1", kind="mpim")
    built.channel("D0ADAGRACE", "", kind="dm", members=[ADA.id, GRACE.id])
    return built


def read_all(path: Path, channel: str = "general", **limits: int) -> list[ImportedMessage]:
    return list(read_export(path, channel, **limits))


def refusal(path: Path, channel: str = "general", **limits: int) -> str:
    """The refusal's line; asserts it is a usage error and that not one message was handed out first."""
    got: list[ImportedMessage] = []
    with pytest.raises(ImportRefused) as refused:
        for message in read_export(path, channel, **limits):
            got.append(message)
    assert got == []
    assert refused.value.code == EXIT_USAGE
    return refused.value.message


def test_messages_come_out_in_time_order_over_the_day_files(export, tmp_path):
    export.message("general", ts(3, 5), "day three", user=ALAN.id)
    export.message("general", ts(1, 0), "day one", user=ADA.id)
    export.message("general", ts(1, 9), "day one, later", user=GRACE.id)
    export.message("general", ts(2, 0), "day two", user=GRACE.id)
    export.message("design", ts(2, 1), "another channel", user=ADA.id)
    messages = read_all(export.write(tmp_path / "export.zip"))
    assert [message.text for message in messages] == ["day one", "day one, later", "day two", "day three"]
    assert [message.author for message in messages] == ["Ada Lovelace", "Grace Hopper", "Grace Hopper", "Alan Turing"]
    assert {(message.source, message.chat) for message in messages} == {("slack", GENERAL)}  # the id, as the API's
    assert messages[0].message_id == ts(1, 0)
    assert messages[0].sent_at.isoformat() == "2024-03-01T10:00:00.000100+00:00"


def test_a_thread_comes_right_after_its_parent_even_with_replies_in_later_day_files(export, tmp_path):
    export.message("general", ts(1, 0), "good morning", user=ALAN.id)
    export.thread(
        "general",
        (ADA.id, ts(1, 5), "shall we ship on Friday?"),
        (GRACE.id, ts(1, 6), "yes"),
        (ALAN.id, ts(3, 0), "after the tests, two days later"),
    )
    export.message("general", ts(2, 0), "day two in the channel", user=GRACE.id)
    export.message("general", ts(2, 30), "a reply to a thread older than the export", user=ADA.id, thread_ts=ts(0))
    messages = read_all(export.write(tmp_path / "export.zip"))
    assert [message.text for message in messages] == [
        "good morning",
        "shall we ship on Friday?",
        "yes",
        "after the tests, two days later",
        "day two in the channel",
        "a reply to a thread older than the export",
    ]


def test_text_and_names_read_as_the_live_bridge_shows_them(export, tmp_path):
    export.message(
        "general", ts(1, 0), f"<@{GRACE.id}> see <#G0DESIGN01> and <https://example.com|*this*>", user=ADA.id
    )
    export.message("general", ts(1, 1), "", user=ALAN.id, subtype="channel_join")
    export.message("general", ts(1, 2), "the notes", user=ADA.id, subtype="file_share", files=[{"name": "notes.pdf"}])
    export.message("general", ts(1, 3), "deployed", subtype="bot_message", bot_id="B0CI", bot_profile={"name": "CI"})
    guest = {"real_name": "Katherine Johnson", "display_name": "katherine"}
    export.message("general", ts(1, 4), "hello from the partner workspace", user="U0GUEST001", user_profile=guest)
    messages = read_all(export.write(tmp_path / "export.zip"))
    assert [(message.author, message.text) for message in messages] == [
        ("Ada Lovelace", "@Grace Hopper see #design and **this** (https://example.com)"),
        ("Ada Lovelace", "[file notes.pdf]\nthe notes"),
        ("CI", "deployed"),
        ("Katherine Johnson", "hello from the partner workspace"),
    ]


@pytest.mark.parametrize("wanted", ["general", "#general", "GENERAL", GENERAL])
def test_a_channel_is_found_by_its_name_or_its_id(export, tmp_path, wanted):
    export.message("general", ts(1), "hello", user=ADA.id)
    [message] = read_all(export.write(tmp_path / "export.zip"), wanted)
    assert message.text == "hello"


def test_direct_messages_and_group_messages_are_read_from_their_folders(export, tmp_path):
    export.message("D0ADAGRACE", ts(1), "just between us", user=ADA.id)
    export.message("mpdm-ada--grace-1", ts(1), "the three of us", user=GRACE.id)
    path = export.write(tmp_path / "export.zip")
    assert [message.text for message in read_all(path, "D0ADAGRACE")] == ["just between us"]
    assert [message.chat for message in read_all(path, "mpdm-ada--grace-1")] == ["C0MPIM0001"]


def test_the_export_lists_its_conversations(export, tmp_path):
    export.message("old-channel", ts(1), "a folder no listing describes", user=ADA.id)
    assert list_channels(export.write(tmp_path / "export.zip")) == [
        ChatInfo(GENERAL, "general", "channel"),
        ChatInfo("G0DESIGN01", "design", "private"),
        ChatInfo("C0MPIM0001", "mpdm-ada--grace-1", "mpim"),
        ChatInfo("D0ADAGRACE", "Ada Lovelace, Grace Hopper", "dm"),
        ChatInfo("old-channel", "old-channel", "channel"),
    ]


def test_an_export_zipped_again_inside_a_folder_is_read(export, tmp_path):
    export.message("general", ts(1), "hello", user=ADA.id)
    [message] = read_all(export.write(tmp_path / "export.zip", root="Acme Slack export Mar 1 2024/"))
    assert (message.author, message.text) == ("Ada Lovelace", "hello")


def test_an_unknown_channel_is_refused_with_the_channels_there_are(export, tmp_path):
    why = refusal(export.write(tmp_path / "export.zip"), "genral")
    assert why == (
        "export.zip: it has no channel 'genral'; it has: #general, #design, mpdm-ada--grace-1,"
        " Ada Lovelace, Grace Hopper; nothing was imported"
    )


def test_a_file_that_is_not_a_zip_is_refused(tmp_path):
    path = tmp_path / "export.zip"
    path.write_text("just some notes\n")
    assert "not a zip file, so not a Slack export" in refusal(path)


def test_a_telegram_result_json_is_refused_with_the_right_command(tmp_path):
    path = tmp_path / "result.json"
    path.write_text(json.dumps({"name": "Family", "type": "private_group", "id": 42, "messages": []}))
    assert "omi-bridge import telegram result.json --as telegram:ID" in refusal(path)


def test_a_zipped_telegram_export_is_not_a_slack_export(tmp_path):
    assert "this is a Telegram export, not a Slack export" in refusal(telegram_zip(tmp_path / "export.zip"))


def test_a_zip_without_an_export_in_it_is_refused(tmp_path):
    path = write_zip(tmp_path / "export.zip", {"readme.txt": b"hello"})
    assert "not a Slack export (it has no users.json or channels.json)" in refusal(path)


def test_a_truncated_zip_is_refused_as_damaged(export, tmp_path):
    export.message("general", ts(1), "hello", user=ADA.id)
    path = export.write(tmp_path / "export.zip")
    path.write_bytes(path.read_bytes()[:-60])  # the end of the central directory lost
    assert "the zip file is damaged" in refusal(path)


def test_a_member_with_scrambled_bytes_is_refused_as_damaged(export, tmp_path):
    export.message("general", ts(1), "hello", user=ADA.id)
    assert "general/2024-03-09.json is damaged" in refusal(damaged_zip(tmp_path / "export.zip", export, "general"))


def test_a_day_file_that_is_not_json_is_refused(export, tmp_path):
    export.extra["general/2024-03-02.json"] = b'[{"type": "message", "ts": '
    assert "general/2024-03-02.json is not valid JSON" in refusal(export.write(tmp_path / "export.zip"))


@pytest.mark.parametrize("member", ["../../.bashrc", "general/../../escape.json", "/etc/cron.d/evil", "..\\evil.json"])
def test_a_member_that_leaves_the_export_folder_refuses_the_whole_file(export, tmp_path, member):
    export.message("general", ts(1), "hello", user=ADA.id)
    export.extra[member] = b"[]"
    why = refusal(export.write(tmp_path / "export.zip"))
    assert f"it holds {member!r}, a path outside the export's folder: refused as unsafe" in why


def test_a_zip_bomb_is_refused_from_the_zip_directory(export, tmp_path):
    export.message("general", ts(1), "hello", user=ADA.id)
    path = zip_bomb(tmp_path / "export.zip", export, "general", 5 * MB)
    assert path.stat().st_size < 64 * 1024  # 5 MB that take a few kB: a bomb
    why = refusal(path, max_member_bytes=1 * MB)
    assert "general/2024-03-09.json would unpack to 5 MB, over the 1 MB a file of an export may have" in why


def test_a_member_that_unpacks_to_more_than_its_directory_says_is_refused(export, tmp_path):
    export.message("general", ts(1), "hello", user=ADA.id)
    path = lying_zip(tmp_path / "export.zip", export, "general", size=3 * MB, claimed=1000)
    assert "general/2024-03-09.json" in refusal(path, max_member_bytes=1 * MB)


def test_too_many_members_are_refused(export, tmp_path):
    export.message("general", ts(1), "hello", user=ADA.id)
    export.extra |= {f"general/attachment-{n}.txt": b"x" for n in range(20)}
    assert "the zip holds 26 files, more than an export has (10)" in refusal(
        export.write(tmp_path / "export.zip"), max_members=10
    )


def test_a_file_that_cannot_be_read_is_refused(tmp_path):
    assert "missing.zip: cannot be read" in refusal(tmp_path / "missing.zip")
