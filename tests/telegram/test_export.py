"""Reading Telegram Desktop's JSON export (SPEC §10): both layouts, `--chat`, every quirk of the format, every
refusal (exit 2), and memory that does not grow with the file."""

from __future__ import annotations

import json
import os
import time
import tracemalloc
import zipfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adapters.telegram.export import ChatChoiceNeeded, ReadStats, TelegramExport, read_chats, read_messages
from adapters.telegram.export.content import clean, text_to_markdown
from adapters.telegram.export.message import convert
from bot.importing.model import EXIT_USAGE, ChatInfo, ImportedMessage, ImportRefused
from tests.mutations import mutated
from tests.telegram.export_fixtures import (
    NOT_INCLUDED,
    at,
    chat,
    family_group,
    full_export,
    message,
    news_channel,
    private_chat,
    saved_messages,
    service,
    write,
    write_large,
)


def messages_of(path: Path, wanted: str | None = None) -> list[ImportedMessage]:
    return list(read_messages(path, wanted))


def texts(data: Any, tmp_path: Path) -> list[str]:
    return [m.text for m in messages_of(write(tmp_path, data))]


def one(tmp_path: Path, **fields: Any) -> ImportedMessage:
    text = fields.pop("text", "")
    [found] = messages_of(write(tmp_path, chat("Bob Byrne", "personal_chat", 1002, [message(7, 0, text, **fields)])))
    return found


@pytest.fixture
def local_zone(monkeypatch):
    """Run as if this computer's time zone were the one given (an old export's `date` is read as local time)."""

    def use(zone: str) -> None:
        monkeypatch.setenv("TZ", zone)
        time.tzset()

    yield use
    monkeypatch.undo()
    time.tzset()


def refusal(path: Path | str) -> ImportRefused:
    with pytest.raises(ImportRefused) as caught:
        TelegramExport.open(path)
    assert caught.value.code == EXIT_USAGE
    return caught.value


# Layouts and --chat ------------------------------------------------------------------------------------------


def test_a_single_chat_export_yields_its_messages_in_order_with_authors_forwards_and_media(tmp_path):
    path = write(tmp_path, family_group())
    assert read_chats(path) == [ChatInfo("-1001234567890", "Семья 👨‍👩‍👧 Liddell", "private_supergroup", 7)]
    found = messages_of(path)
    assert [m.message_id for m in found] == ["2", "3", "4", "5", "6", "7", "9"]  # service messages 1 and 8 left out
    assert {m.chat for m in found} == {"-1001234567890"} and {m.source for m in found} == {"telegram"}
    assert [(m.author, m.text) for m in found] == [
        ("Alice Liddell", "Look at **this** 👉 [recipe](https://ex.am/ple)"),
        ("Ольга Петрова", "Это прекрасно! 🎉"),
        ("Bob Byrne", "From my sister:"),
        ("Bob Byrne (forwarded from Carol Byrne)", "Dinner at 7, bring 🍰"),
        ("Bob Byrne (forwarded from Tech News)", "[photo]"),
        ("Deleted Account", "[sticker 😀]"),
        ("Ольга Петрова", "[voice message 0:12]"),
    ]
    assert found[0].sent_at == at(0) == datetime(2024, 3, 5, 14, 2, 11, tzinfo=UTC)  # date_unixtime, not local `date`


def test_the_full_export_lists_every_chat_left_ones_too_and_refuses_to_guess(tmp_path):
    data = full_export(family_group(), news_channel(), saved_messages(), private_chat(), left=[private_chat("Old", 9)])
    path = write(tmp_path, data)
    assert [(c.id, c.name, c.type, c.messages) for c in read_chats(path)] == [
        ("-1001234567890", "Семья 👨‍👩‍👧 Liddell", "private_supergroup", 7),
        ("-1001500000001", "Tech News ⚡", "public_channel", 3),
        ("1001", "Saved Messages", "saved_messages", 2),
        ("1002", "Bob Byrne", "personal_chat", 3),
        ("9", "Old", "personal_chat", 3),
    ]
    with pytest.raises(ChatChoiceNeeded) as caught:
        read_messages(path)
    assert caught.value.code == EXIT_USAGE and len(caught.value.chats) == 5
    lines = caught.value.message.splitlines()
    assert lines[0] == "This export holds 5 chats: choose one with --chat NAME_OR_ID."
    assert lines[1] == '  "Семья 👨‍👩‍👧 Liddell" · group · id -1001234567890 · 7 messages'  # most messages first
    assert '  "Saved Messages" · saved messages · id 1001 · 2 messages' in lines


@pytest.mark.parametrize(
    ("wanted", "name"),
    [
        ("Tech News ⚡", "Tech News ⚡"),  # by name
        ("tech news ⚡", "Tech News ⚡"),  # ignoring case
        ("-1001500000001", "Tech News ⚡"),  # by the id the bridge uses
        ("1500000001", "Tech News ⚡"),  # by the bare id Telegram Desktop writes
        ("1002", "Bob Byrne"),
        ("  Saved Messages ", "Saved Messages"),
        ("Old", "Old"),  # a left chat
    ],
)
def test_chat_is_chosen_by_name_or_id(tmp_path, wanted, name):
    data = full_export(family_group(), news_channel(), saved_messages(), private_chat(), left=[private_chat("Old", 9)])
    export = TelegramExport.open(write(tmp_path, data))
    chosen = export.choose(wanted)
    assert chosen.name == name
    assert {m.chat for m in export.messages(chosen)} == {chosen.id}


def test_an_unknown_or_ambiguous_chat_is_refused_with_the_list(tmp_path):
    path = write(tmp_path, full_export(private_chat("Bob", 1), private_chat("bob", 2), news_channel()))
    with pytest.raises(ChatChoiceNeeded) as caught:
        read_messages(path, "Nobody")
    assert caught.value.message.startswith('No chat "Nobody" in this export. Its chats:')
    assert "Tech News ⚡" in caught.value.message and caught.value.code == EXIT_USAGE
    with pytest.raises(ChatChoiceNeeded) as caught:
        read_messages(path, "BOB")
    assert caught.value.message.splitlines()[0] == '2 chats are named "BOB": choose one by its id.'
    assert read_messages(path, "bob") is not None  # an exact name is one match
    assert [m.chat for m in read_messages(path, "2")] == ["2", "2", "2"]


def test_a_full_export_with_one_chat_needs_no_choice_and_a_long_list_is_cut(tmp_path):
    path = write(tmp_path, full_export(news_channel()))
    assert [m.message_id for m in read_messages(path)] == ["2", "3", "4"]
    many = write(tmp_path, full_export(*(private_chat(f"P{n}", 100 + n, n % 4) for n in range(40))), "many.json")
    with pytest.raises(ChatChoiceNeeded) as caught:
        read_messages(many)
    assert len(caught.value.chats) == 40
    assert caught.value.message.splitlines()[-1] == "  … and 10 more with fewer messages"


def test_an_empty_chat_is_fine_and_yields_nothing(tmp_path):
    path = write(tmp_path, chat("Quiet", "private_group", 77, []))
    assert read_chats(path) == [ChatInfo("-77", "Quiet", "private_group", 0)]
    assert messages_of(path) == []
    only_service = write(tmp_path, chat("Quiet", "private_group", 77, [service(1, 0, "create_group")]), "s.json")
    stats = ReadStats()
    assert list(read_messages(only_service, None, stats)) == [] and stats.service == 1


def test_a_folder_holding_result_json_is_read_as_that_file(tmp_path):
    write(tmp_path, private_chat())
    assert [c.name for c in read_chats(tmp_path)] == ["Bob Byrne"]


def test_a_header_written_after_the_messages_is_still_read(tmp_path):
    data = chat("Late Header", "private_group", 5, [message(1, 0, "hi"), service(2, 1, "pin_message")])
    reordered = {"messages": data["messages"], "name": data["name"], "type": data["type"], "id": data["id"]}
    path = write(tmp_path, reordered)
    assert read_chats(path) == [ChatInfo("-5", "Late Header", "private_group", 1)]
    assert [m.text for m in messages_of(path)] == ["hi"]
    name_last = {"type": data["type"], "id": data["id"], "messages": data["messages"], "name": data["name"]}
    assert read_chats(write(tmp_path, name_last, "name_last.json"))[0].name == "Late Header"
    replies = chat(None, "replies", 1271266957, [message(1, 0, "a reply", forwarded_from="Bob")])
    assert read_chats(write(tmp_path, replies, "replies.json")) == [ChatInfo("1271266957", "Replies", "replies", 1)]


# Chats, authors and dates ------------------------------------------------------------------------------------


def test_saved_messages_a_channel_and_a_deleted_account(tmp_path):
    saved = messages_of(write(tmp_path, saved_messages()))
    assert [(m.chat, m.author) for m in saved] == [
        ("1001", "Alice Liddell"), ("1001", "Alice Liddell (forwarded from Bob Byrne)")
    ]  # fmt: skip
    posts = messages_of(write(tmp_path, news_channel(), "channel.json"))
    assert [(m.author, m.text) for m in posts] == [
        ("Tech News ⚡", "Release `v2.0` is out: https://ex.am/v2"),
        ("Tech News ⚡ (Dana Scully)", "Interview today"),  # a signed post, as SPEC §6 writes it
        ("Tech News ⚡", "An old post"),  # no `from` at all: the channel's
    ]
    gone = write(tmp_path, private_chat(None, 1003), "gone.json")
    assert read_chats(gone)[0].name == "Deleted Account"
    assert {m.author for m in messages_of(gone)} == {"Deleted Account"}


def test_a_forward_from_a_nameless_origin_and_an_empty_from(tmp_path):
    assert one(tmp_path, text="x", forwarded_from=None).author == "Alice Liddell (forwarded from Deleted Account)"
    assert one(tmp_path, text="x", sender="  ").author == "Deleted Account"
    assert one(tmp_path, text="x", sender="Ann\u00a0 Lee").author == "Ann Lee"


def test_times_come_from_date_unixtime_and_else_from_the_local_date(tmp_path, local_zone):
    local_zone("Asia/Tokyo")
    entries = [message(1, 0, "unix"), message(2, 1, "local"), message(3, 2, "no date"), message(4, 3, "1969")]
    del entries[1]["date_unixtime"]
    entries[1]["date"] = "2024-03-05T23:03:11"  # an old export: local time (Tokyo) without a zone
    del entries[2]["date_unixtime"], entries[2]["date"]
    entries[3]["date_unixtime"] = "-100"
    entries[3]["date"] = "not a date"
    stats = ReadStats()
    found = list(read_messages(write(tmp_path, chat("T", "private_group", 3, entries)), None, stats))
    assert [(m.text, m.sent_at) for m in found] == [
        ("unix", at(0)), ("local", datetime(2024, 3, 5, 14, 3, 11, tzinfo=UTC))
    ]  # fmt: skip
    assert (stats.read, stats.undated, stats.skipped) == (2, 2, 2)


def test_dates_out_of_range_leave_only_that_message_out(tmp_path, local_zone):
    local_zone("Europe/Berlin")  # where the fixtures' exporting computer is
    entries = [message(n, n, f"m{n}") for n in range(1, 5)]
    entries[0]["date_unixtime"] = "99999999999999999999"
    entries[0]["date"] = "9999-12-31T23:59:59"
    entries[1]["date_unixtime"] = str(int(datetime(2150, 1, 1, tzinfo=UTC).timestamp()))  # falls back to `date`
    entries[2]["date_unixtime"] = 1709647331  # a number rather than a string: fine
    for n, odd in enumerate(["500000000000", "--5", "²", "1e9", "", None, [], 1.5], start=10):
        entries.append(message(n, n, f"odd {n}", date_unixtime=odd, date=None))
    stats = ReadStats()
    found = list(read_messages(write(tmp_path, chat("T", "private_group", 3, entries)), None, stats))
    assert [m.text for m in found] == ["m2", "m3", "m4"] and stats.undated == 9
    assert found[0].sent_at == at(2) and found[1].sent_at == datetime.fromtimestamp(1709647331, UTC)


def test_what_is_left_out_is_counted(tmp_path):
    entries = [
        message(1, 0, "kept"),
        service(2, 1, "invite_members", members=["Bob"]),
        {"id": 3, "type": "unsupported"},
        message(4, 2, ""),  # no text, no medium
        message(5, 3, "   \n "),  # only whitespace
        "not a message",
        {"type": "message", "text": "no id"},
        message(8, 4, "kept too", type="some_new_type"),
    ]
    stats = ReadStats()
    path = write(tmp_path, chat("T", "private_group", 3, entries))
    assert read_chats(path)[0].messages == 6  # entries with a type, minus service messages
    found = list(read_messages(path, None, stats))
    assert [m.text for m in found] == ["kept", "kept too"]
    assert (stats.read, stats.service, stats.empty, stats.odd, stats.undated) == (2, 1, 3, 2, 0)


# Text: pieces → Markdown (SPEC §6) ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pieces", "markdown"),
    [
        ([{"type": "bold", "text": "bold"}], "**bold**"),
        ([{"type": "italic", "text": "slanted "}, "word"], "_slanted_ word"),  # spaces go outside the markers
        ([{"type": "strikethrough", "text": "gone"}], "~~gone~~"),
        (["run ", {"type": "code", "text": "ls -la"}], "run `ls -la`"),
        ([{"type": "pre", "text": "print(1)\n", "language": "python"}], "```python\nprint(1)\n```"),
        ([{"type": "pre", "text": "x = 1", "language": ""}], "```\nx = 1\n```"),
        (
            [{"type": "text_link", "text": "the [docs]", "href": "https://ex.am/a (b)"}],
            "[the \\[docs\\]](https://ex.am/a%20%28b%29)",
        ),
        ([{"type": "text_link", "text": "no target", "href": ""}], "no target"),
        ([{"type": "link", "text": "https://ex.am"}], "https://ex.am"),
        (
            [{"type": "mention", "text": "@bob"}, " and ", {"type": "mention_name", "text": "Olga", "user_id": 1003}],
            "@bob and Olga",
        ),
        ([{"type": "hashtag", "text": "#trip"}, " ", {"type": "cashtag", "text": "$TON"}], "#trip $TON"),
        (
            [{"type": "email", "text": "a@ex.am"}, " ", {"type": "phone", "text": "+49 30 1234567"}],
            "a@ex.am +49 30 1234567",
        ),
        (
            [{"type": "bot_command", "text": "/start"}, " ", {"type": "bank_card", "text": "4111 1111 1111 1111"}],
            "/start 4111 1111 1111 1111",
        ),
        ([{"type": "underline", "text": "under"}, {"type": "spoiler", "text": " secret"}], "under secret"),
        ([{"type": "custom_emoji", "text": "🔥", "document_id": "5368324170671202286"}, " hot"], "🔥 hot"),
        ([{"type": "blockquote", "text": "first\nsecond", "collapsed": True}], "> first\n> second"),
        ([{"type": "plain", "text": "plain"}], "plain"),
        ([{"type": "sparkly_new_type", "text": "kept"}], "kept"),  # a type added after this reader
        (
            [{"type": "bold"}, {"text": "no type"}, 42, None, {"type": "bold", "text": ["nested ", {"text": "x"}]}],
            "no type42**nested x**",
        ),
        ("just a string", "just a string"),
    ],
)
def test_text_pieces_become_markdown_as_the_live_bridge_renders_them(tmp_path, pieces, markdown):
    assert one(tmp_path, text=pieces).text == markdown


def test_utf16_offsets_keep_formatting_after_emoji(tmp_path):
    pieces = ["👨‍👩‍👧 𝔘𝔫𝔦 ", {"type": "bold", "text": "çödé 🎉"}, " ", {"type": "italic", "text": "日本語"}]
    assert one(tmp_path, text=pieces).text == "👨‍👩‍👧 𝔘𝔫𝔦 **çödé 🎉** _日本語_"


def test_text_entities_are_read_when_text_is_missing(tmp_path):
    entry = message(7, 0, ["a ", {"type": "bold", "text": "b"}])
    del entry["text"]
    [found] = messages_of(write(tmp_path, chat("B", "personal_chat", 2, [entry])))
    assert found.text == "a **b**"


# Media placeholders (SPEC §10) -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "text"),
    [
        ({"photo": "photos/photo_1@05-03-2024_14-02-11.jpg", "width": 800, "height": 600}, "[photo]"),
        ({"photo": NOT_INCLUDED}, "[photo]"),
        ({"file": NOT_INCLUDED, "file_name": "report.pdf", "mime_type": "application/pdf"}, "[file report.pdf]"),
        ({"file": "files/Q1 report.pdf", "mime_type": "application/pdf"}, "[file Q1 report.pdf]"),  # older export
        ({"file": NOT_INCLUDED, "mime_type": "application/pdf"}, "[file]"),
        ({"file": "(File exceeds maximum size. Change data exporting settings to download.)"}, "[file]"),
        ({"file": NOT_INCLUDED, "media_type": "voice_message", "duration_seconds": 12}, "[voice message 0:12]"),
        ({"file": NOT_INCLUDED, "media_type": "voice_message"}, "[voice message]"),
        ({"file": NOT_INCLUDED, "media_type": "video_message", "duration_seconds": 7}, "[video message 0:07]"),
        ({"file": NOT_INCLUDED, "media_type": "video_file", "duration_seconds": 3725}, "[video]"),
        ({"file": NOT_INCLUDED, "media_type": "animation", "mime_type": "video/mp4"}, "[animation]"),
        ({"file": NOT_INCLUDED, "media_type": "sticker", "sticker_emoji": "😀"}, "[sticker 😀]"),
        ({"file": NOT_INCLUDED, "media_type": "sticker"}, "[sticker]"),
        (
            {"file": NOT_INCLUDED, "media_type": "audio_file", "performer": "Queen", "title": "Bohemian Rhapsody"},
            "[audio Queen – Bohemian Rhapsody]",
        ),
        ({"file": NOT_INCLUDED, "file_name": "song.mp3", "media_type": "audio_file"}, "[audio song.mp3]"),
        ({"file": NOT_INCLUDED, "media_type": "hologram"}, "[hologram]"),  # a kind added later: named
        ({"location_information": {"latitude": 52.52, "longitude": 13.405}}, "[location]"),
        (
            {"location_information": {"latitude": 52.5, "longitude": 13.4}, "live_location_period_seconds": 900},
            "[live location]",
        ),
        (
            {
                "place_name": "Café Central",
                "address": "Herrengasse 14, Wien",
                "location_information": {"latitude": 48.21, "longitude": 16.36},
            },
            "[location Café Central, Herrengasse 14, Wien]",
        ),
        (
            {"contact_information": {"first_name": "Bob", "last_name": "Byrne", "phone_number": "+44 20 7946 0000"}},
            "[contact Bob Byrne, +44 20 7946 0000]",
        ),
        (
            {
                "poll": {
                    "question": "Lunch?",
                    "closed": False,
                    "total_voters": 2,
                    "answers": [{"text": "Pizza", "voters": 1, "chosen": True}, {"text": "Sushi", "voters": 1}],
                }
            },
            "[poll Lunch?]\n- Pizza\n- Sushi",
        ),
        ({"game_title": "Lumberjack", "game_description": "Chop"}, "[game Lumberjack]"),
        (
            {"invoice_information": {"title": "Coffee", "description": "x", "amount": 300, "currency": "EUR"}},
            "[invoice Coffee]",
        ),
        ({"giveaway_information": {"quantity": 3}}, "[giveaway]"),
        ({"paid_stars_amount": 50}, "[paid media]"),
    ],
)
def test_media_become_placeholders(tmp_path, fields, text):
    assert one(tmp_path, **fields).text == text


def test_the_caption_follows_its_placeholder(tmp_path):
    caption = ["Our ", {"type": "bold", "text": "new"}, " flat 🏠"]
    assert one(tmp_path, text=caption, photo=NOT_INCLUDED).text == "[photo] Our **new** flat 🏠"
    code = [{"type": "pre", "text": "make all", "language": "sh"}]
    assert one(tmp_path, text=code, file="files/Makefile").text == "[file Makefile]\n```sh\nmake all\n```"


# Refusals (exit 2) -------------------------------------------------------------------------------------------


def test_missing_unreadable_and_empty_files_are_refused(tmp_path, monkeypatch):
    assert refusal(tmp_path / "nope.json").message == f"No such file: {tmp_path / 'nope.json'}"
    assert "folder without result.json" in refusal(tmp_path).message
    empty = tmp_path / "empty.json"
    empty.write_bytes(b"  \n")
    assert refusal(empty).message.endswith("is empty: not a Telegram export.")
    locked = write(tmp_path, private_chat(), "locked.json")
    real_open = Path.open

    def denied(self, *args, **kwargs):
        if self == locked:
            raise PermissionError(13, "Permission denied")
        return real_open(self, *args, **kwargs)

    monkeypatch.setattr(Path, "open", denied)
    assert refusal(locked).message == f"Cannot read {locked}: Permission denied"


@pytest.mark.parametrize("case", ["messages.html", "doctype", "html_tag", "folder"])
def test_an_html_export_is_refused_saying_how_to_export_json(tmp_path, case):
    page = '<!DOCTYPE html>\n<html>\n <head><meta charset="utf-8"/><title>Exported Data</title></head>\n'
    if case == "messages.html":
        target = tmp_path / "messages.html"
        target.write_text(page)
    elif case == "doctype":
        target = tmp_path / "result.json"  # renamed, still HTML inside
        target.write_text(page)
    elif case == "html_tag":
        target = tmp_path / "export.txt"
        target.write_text("\ufeff  <html><body>Семья</body></html>")
    else:
        (tmp_path / "messages.html").write_text(page)
        (tmp_path / "messages2.html").write_text(page)
        target = tmp_path
    message = refusal(target).message
    assert "HTML export" in message
    assert "Telegram Desktop → Settings → Advanced → Export Telegram data → Format: Machine-readable JSON" in message


def test_not_json_a_zip_and_damaged_json_are_refused(tmp_path):
    text = tmp_path / "notes.txt"
    text.write_text("Dear diary,\n")
    assert refusal(text).message.endswith("is not JSON, so not a Telegram Desktop export (result.json).")
    archive = tmp_path / "export.zip"
    archive.write_bytes(b"PK\x03\x04\x14\x00\x00\x00")
    assert "zip archive: unpack it" in refusal(archive).message
    slack = tmp_path / "Acme Slack export.zip"
    with zipfile.ZipFile(slack, "w") as zipped:
        for name in ("users.json", "channels.json", "general/2024-03-05.json"):
            zipped.writestr(name, "[]")
    assert refusal(slack).message.endswith(
        "is a Slack workspace export: import it with `omi-bridge import slack-export FILE.zip`."
    )
    whole = json.dumps(family_group(), ensure_ascii=False)
    damaged = tmp_path / "damaged.json"
    damaged.write_text(whole.replace('"type": "message"', '"type" "message"', 1))
    assert refusal(damaged).message == f"{damaged} is damaged: it is not valid JSON, so it cannot be read as an export."
    garbage = tmp_path / "garbage.json"
    garbage.write_text(whole + "\n{}")
    assert "is damaged" in refusal(garbage).message
    latin1 = tmp_path / "latin1.json"
    latin1.write_bytes(whole.encode("utf-8").replace("прекрасно".encode(), b"caf\xe9"))  # not UTF-8
    assert "is damaged" in refusal(latin1).message


@pytest.mark.parametrize("layout", ["single", "full"])
@pytest.mark.parametrize("cut", [0.1, 0.5, 0.97, -1])
def test_a_cut_off_file_is_refused_before_any_message_is_yielded(tmp_path, layout, cut):
    data = family_group() if layout == "single" else full_export(family_group(), news_channel())
    whole = json.dumps(data, ensure_ascii=False, indent=1).encode()
    path = tmp_path / "result.json"
    path.write_bytes(whole[: int(len(whole) * cut) if cut > 0 else -1])
    message = refusal(path).message
    assert message.startswith(f"{path} ends too early: the file is cut off")
    with pytest.raises(ImportRefused):
        read_messages(path, "Семья 👨‍👩‍👧 Liddell")  # refused at the call, before iterating


@pytest.mark.parametrize(
    ("data", "why"),
    [
        ([{"type": "message", "user": "U1", "text": "hi", "ts": "1709647331.000100"}], "a list at the top"),
        ([{"id": "U1", "name": "alice", "real_name": "Alice"}], "a list at the top"),  # Slack users.json
        (
            {"ok": True, "messages": [{"type": "message", "user": "U1", "text": "hi", "ts": "1.2"}], "has_more": False},
            'no chat in it (no "messages" or "chats")',
        ),  # a Slack API history page: no chat id
        ({"id": 5, "messages": [{"user": "U1", "text": "hi"}]}, "its messages have no dates"),
        ({"version": 3, "items": []}, 'no chat in it (no "messages" or "chats")'),
        ("just a string", "a single value"),
    ],
)
def test_json_of_another_layout_is_not_a_telegram_export(tmp_path, data, why):
    message = refusal(write(tmp_path, data)).message
    assert message.startswith(f"{tmp_path / 'result.json'} is not a Telegram export: {why}")
    assert message.endswith("Give the result.json of a Telegram Desktop export.")


@pytest.mark.parametrize("how", ["no chats key", "empty list"])
def test_a_full_export_without_chats_says_to_tick_them(tmp_path, how):
    data = full_export()
    if how == "no chats key":
        del data["chats"]
    assert (
        "Telegram export without any chat: export again with the chats you want ticked"
        in refusal(write(tmp_path, data)).message
    )


def test_refusals_can_name_the_file_as_the_user_knows_it(tmp_path):
    sent = tmp_path / "tmp8f3k2.json"  # a document sent in chat, saved under a temporary name
    sent.write_text('{"name": "Family", "type": "private_group", "id": 5, "messages": [')
    with pytest.raises(ImportRefused) as caught:
        TelegramExport.open(sent, label="result.json")
    assert caught.value.message.startswith("result.json ends too early") and str(tmp_path) not in caught.value.message
    write(tmp_path, private_chat())
    export = TelegramExport.open(tmp_path, label="your export")
    (tmp_path / "result.json").write_text("{}")
    with pytest.raises(ImportRefused) as caught:
        list(export.messages())
    assert caught.value.message == "your export changed since it was read: run the command again."


def test_a_file_changed_since_it_was_read_is_refused(tmp_path):
    path = write(tmp_path, private_chat())
    export = TelegramExport.open(path)
    write(tmp_path, private_chat(n=5))
    os.utime(path, ns=(time.time_ns(), time.time_ns() + 10**9))
    with pytest.raises(ImportRefused) as caught:
        list(export.messages())
    assert caught.value.message == f"{path} changed since it was read: run the command again."


# Telegram Desktop's own quirks -------------------------------------------------------------------------------


def test_control_characters_written_as_backslash_x_are_read_and_escaped_backslashes_are_not_touched(tmp_path):
    body = json.dumps(chat("B", "personal_chat", 2, [message(1, 0, "TABLEVT"), message(2, 1, "path C:SLASHx41")]))
    body = body.replace("TABLEVT", "tab\\tend\\x0Bvt\\x1Fz").replace("SLASH", "\\\\\\\\")  # as SerializeString does
    assert "\\x0B" in body and "\\\\\\\\x41" in body
    path = tmp_path / "result.json"
    path.write_text(body)
    assert [m.text for m in messages_of(path)] == ["tab\tend\x0bvt\x1fz", "path C:\\\\x41"]


def test_an_escape_split_between_two_reads_is_still_read(tmp_path):
    from adapters.telegram.export.source import JsonBytes

    class Trickle:
        def __init__(self, data: bytes) -> None:
            self.data = data

        def read(self, size: int = -1) -> bytes:
            chunk, self.data = self.data[:3], self.data[3:]  # 3 bytes at a time, whatever is asked
            return chunk

    raw = b'\xef\xbb\xbf["a\\x0Bb", "c\\\\x41", "\\\\\\x1F", "\\u00e9"]'
    for size in (1, 2, 3, 4, 7, 64):
        source, out = JsonBytes(Trickle(raw)), b""
        while chunk := source.read(size):
            out += chunk
        assert json.loads(out) == ["a\x0bb", "c\\x41", "\\\x1f", "é"]


def test_a_byte_order_mark_and_lone_surrogates_do_no_harm(tmp_path):
    body = json.dumps(chat("B", "personal_chat", 2, [message(1, 0, ["x", {"type": "bold", "text": "SURROGATE"}])]))
    path = tmp_path / "result.json"
    path.write_bytes(b"\xef\xbb\xbf" + body.replace("SURROGATE", "\\ud83d y").encode())
    [found] = messages_of(path)
    assert found.text.startswith("x**") and found.text.encode("utf-8")
    assert text_to_markdown(["a\ud83d", {"type": "bold", "text": "\udc00b"}]) == "a\ufffd**\ufffdb**"


# Memory: a stream, whatever the file's size ------------------------------------------------------------------


@pytest.mark.parametrize("full", [False, True], ids=["single_chat", "full_export"])
def test_memory_does_not_grow_with_the_file(tmp_path, full):
    path = tmp_path / "result.json"
    count = write_large(path, 50_000_000, full=full)
    assert path.stat().st_size >= 50_000_000
    tracemalloc.start()
    try:
        export = TelegramExport.open(path)
        chosen = export.choose("Big Group 🐘")
        read, last = 0, None
        for last in export.messages(chosen):  # noqa: B007 (the last one is checked below)
            read += 1
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert chosen.messages == read == count and last is not None and last.message_id == str(count)
    assert peak < 3_000_000, f"peak {peak:,} bytes while reading a {path.stat().st_size:,}-byte export"


# Properties --------------------------------------------------------------------------------------------------

_KNOWN_TYPES = [
    "plain", "bold", "italic", "code", "pre", "text_link", "link", "mention", "mention_name", "hashtag", "email",
    "phone", "strikethrough", "underline", "spoiler", "blockquote", "custom_emoji", "bank_card", "cashtag",
    "bot_command", "unknown",
]  # fmt: skip
_words = st.text(st.characters() | st.sampled_from("`*_[]()>\n \\~\ud83d\udc00"))  # lone surrogates too
_piece = st.one_of(
    _words,
    st.fixed_dictionaries(
        {"type": st.sampled_from(_KNOWN_TYPES) | st.text(max_size=12), "text": _words},
        optional={
            "href": st.text(max_size=30) | st.none(),
            "language": st.text(max_size=10) | st.none(),
            "collapsed": st.booleans(),
            "user_id": st.integers(),
        },
    ),
    st.sampled_from([None, 42, True, {}, {"type": "bold"}, [], {"type": None, "text": None}]),
)


def _alnum(text: str) -> str:
    return "".join(char for char in text if char.isalnum())


def _is_subsequence(wanted: str, text: str) -> bool:
    rest = iter(text)
    return all(char in rest for char in wanted)


def _piece_words(piece: Any) -> str:
    if isinstance(piece, str):
        return piece
    if isinstance(piece, dict):
        return piece.get("text") if isinstance(piece.get("text"), str) else ""
    return str(piece) if isinstance(piece, int) and not isinstance(piece, bool) else ""


@settings(max_examples=300, deadline=None)
@given(st.lists(_piece, max_size=12))
def test_random_piece_lists_never_crash_and_their_words_survive_in_order(pieces):
    rendered = text_to_markdown(pieces)
    rendered.encode("utf-8")  # what Omi is sent
    words = "".join(clean(_piece_words(piece)) for piece in pieces)  # a lone surrogate becomes U+FFFD
    assert _is_subsequence(_alnum(words), _alnum(rendered))
    plain = all(
        not isinstance(piece, dict) or piece.get("type") not in _FORMATTING or not piece.get("text") for piece in pieces
    )
    if plain and all(isinstance(piece, str | dict) for piece in pieces):
        assert rendered == words


_FORMATTING = {"bold", "italic", "strikethrough", "code", "pre", "text_link", "blockquote"}
_BASES = [*family_group()["messages"], *news_channel()["messages"], *saved_messages()["messages"]]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(_BASES).flatmap(mutated))
def test_odd_entries_never_crash_and_what_is_read_is_well_formed(entry):
    info = ChatInfo("-1001500000001", "Tech News ⚡", "public_channel", 1)
    outcome = convert(entry, info)
    if isinstance(outcome, str):
        assert outcome in ("service", "empty", "undated", "odd")
        return
    assert outcome.text.strip() and outcome.author.strip() and outcome.chat == info.id
    assert outcome.sent_at.tzinfo is not None and outcome.sent_at.utcoffset().total_seconds() == 0
    (outcome.text + outcome.author).encode("utf-8")
