"""Bursts become Omi conversations exactly as SPEC §6 describes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from itertools import count

import pytest

from bot.compose import MAX_PART_CHARS, burst_summary, compose_burst
from bot.events import ForwardOrigin, InboundMessage, Location, Platform
from bot.omi.models import NewConversation

FORWARDED_AT = datetime(2025, 3, 12, 18, 0, tzinfo=UTC)
_ids = count(100)


def message(
    text: str = "",
    *,
    sequence: int | None = None,
    origin: ForwardOrigin | None = None,
    sent_at: datetime = FORWARDED_AT,
    platform: Platform = Platform.TELEGRAM,
    sender: str = "Uma User",
    location: Location | None = None,
    language: str | None = None,
    media_group_id: str | None = None,
) -> InboundMessage:
    number = next(_ids) if sequence is None else sequence
    return InboundMessage(
        platform=platform,
        chat_id="42",
        sender_id="7",
        sender_name=sender,
        message_id=str(number),
        sequence=number,
        sent_at=sent_at,
        text=text,
        forward_origin=origin,
        location=location,
        language=language,
        media_group_id=media_group_id,
    )


def user(name: str, hour: int = 9, minute: int = 0) -> ForwardOrigin:
    return ForwardOrigin(kind="user", name=name, date=datetime(2025, 3, 12, hour, minute, tzinfo=UTC))


def only(conversations: list[NewConversation]) -> NewConversation:
    assert len(conversations) == 1
    return conversations[0]


# --- forwards -----------------------------------------------------------------------------------------------


def test_three_forwards_arriving_out_of_order_become_one_conversation_in_message_order() -> None:
    first = message("Are we still on for Friday?", sequence=10, origin=user("Alice Smith", 9, 0))
    second = message("Yes, 7pm at Luigi's", sequence=11, origin=user("Bob Jones", 9, 5))
    third = message("Great, I'll book", sequence=12, origin=user("Alice Smith", 9, 7))

    conversation = only(compose_burst([third, first, second]))

    assert conversation.text == (
        "Alice Smith: Are we still on for Friday?\n\nBob Jones: Yes, 7pm at Luigi's\n\nAlice Smith: Great, I'll book"
    )
    assert conversation.text_source == "message"
    assert conversation.text_source_spec == "telegram"


def test_comment_sent_before_the_forwards_goes_last_as_a_note() -> None:
    comment = message("this is the plan we agreed", sequence=20)
    forwards = [
        message("Meet at 7", sequence=21, origin=user("Alice Smith")),
        message("I'll bring the cake", sequence=22, origin=user("Bob Jones")),
    ]

    conversation = only(compose_burst([comment, *forwards]))

    assert conversation.text == (
        "Alice Smith: Meet at 7\n\nBob Jones: I'll bring the cake\n\nNote: this is the plan we agreed"
    )


def test_several_comments_each_become_a_note_in_message_order() -> None:
    messages = [
        message("second thought", sequence=32),
        message("Hello", sequence=31, origin=user("Alice Smith")),
        message("first thought", sequence=30),
    ]

    text = only(compose_burst(messages)).text

    assert text == "Alice Smith: Hello\n\nNote: first thought\n\nNote: second thought"


def test_all_four_origin_kinds_pass_their_names_through() -> None:
    origins = [
        ForwardOrigin(kind="user", name="Alice Smith", date=FORWARDED_AT),
        ForwardOrigin(kind="hidden_user", name="Secret Sam", date=FORWARDED_AT),
        ForwardOrigin(kind="chat", name="Book Club", date=FORWARDED_AT),
        ForwardOrigin(kind="channel", name="Daily News (Jane Editor)", date=FORWARDED_AT),
    ]
    messages = [message(f"said {index}", sequence=index, origin=o) for index, o in enumerate(origins)]

    text = only(compose_burst(messages)).text

    assert text.split("\n\n") == [
        "Alice Smith: said 0",
        "Secret Sam: said 1",
        "Book Club: said 2",
        "Daily News (Jane Editor): said 3",
    ]


def test_forward_from_a_hidden_user_uses_the_name_given() -> None:
    hidden = ForwardOrigin(kind="hidden_user", name="Anonymous Fox", date=FORWARDED_AT)

    conversation = only(compose_burst([message("psst", origin=hidden)]))

    assert conversation.text == "Anonymous Fox: psst"
    assert conversation.text_source == "message"


def test_multi_line_forward_stays_inside_its_block() -> None:
    messages = [
        message("line1\nline2\n\nline4", sequence=1, origin=user("Alice")),
        message("reply", sequence=2, origin=user("Bob")),
    ]

    assert only(compose_burst(messages)).text == "Alice: line1\nline2\n\nline4\n\nBob: reply"


def test_markdown_passes_through_and_only_block_edges_are_stripped() -> None:
    markdown = "  **bold** and [a link](https://example.com/a_b) and `code`  \n"

    text = only(compose_burst([message(markdown, origin=user("Alice"))])).text

    assert text == "Alice: **bold** and [a link](https://example.com/a_b) and `code`"


def test_forward_with_no_date_falls_back_to_when_it_arrived() -> None:
    undated = ForwardOrigin(kind="user", name="Alice")
    arrived = datetime(2025, 3, 12, 18, 30, tzinfo=UTC)

    conversation = only(compose_burst([message("hi", origin=undated, sent_at=arrived)]))

    assert conversation.started_at == arrived == conversation.finished_at


# --- plain text and albums ----------------------------------------------------------------------------------


def test_plain_messages_join_with_blank_lines_and_no_prefix() -> None:
    messages = [message("buy milk", sequence=2), message("call mum", sequence=3)]

    conversation = only(compose_burst(messages))

    assert conversation.text == "buy milk\n\ncall mum"
    assert conversation.text_source == "other_text"


def test_album_with_a_caption_on_the_second_item_keeps_only_the_caption() -> None:
    album = [
        message("", sequence=50, media_group_id="g1"),
        message("Our trip to Rome", sequence=51, media_group_id="g1"),
        message("", sequence=52, media_group_id="g1"),
    ]

    conversation = only(compose_burst(album))

    assert conversation.text == "Our trip to Rome"
    assert burst_summary(album) == "1 message from Uma User · 12 Mar"


def test_burst_of_only_caption_less_photos_composes_nothing() -> None:
    assert compose_burst([message("", sequence=1), message("   ", sequence=2)]) == []
    assert compose_burst([]) == []


def test_caption_less_forwarded_photo_does_not_make_the_comment_a_forward_burst() -> None:
    photo = message("", sequence=1, origin=user("Alice", 3))
    comment = message("look at this", sequence=2, sent_at=FORWARDED_AT)

    conversation = only(compose_burst([photo, comment]))

    assert conversation.text == "look at this"
    assert conversation.text_source == "other_text"
    assert conversation.started_at == FORWARDED_AT


@pytest.mark.parametrize(("platform", "spec"), [(Platform.SLACK, "slack"), (Platform.CONSOLE, "console")])
def test_text_source_spec_is_the_platform(platform: Platform, spec: str) -> None:
    conversation = only(compose_burst([message("hello", platform=platform)]))

    assert conversation.text_source_spec == spec
    assert conversation.body()["text_source_spec"] == spec


# --- times --------------------------------------------------------------------------------------------------


def test_times_come_from_original_dates_not_from_when_they_were_forwarded() -> None:
    messages = [
        message("late", sequence=1, origin=user("Alice", 11, 30), sent_at=FORWARDED_AT),
        message("early", sequence=2, origin=user("Bob", 8, 15), sent_at=FORWARDED_AT + timedelta(seconds=1)),
        message("my comment", sequence=3, sent_at=FORWARDED_AT + timedelta(seconds=2)),
    ]

    conversation = only(compose_burst(messages))

    assert conversation.started_at == datetime(2025, 3, 12, 8, 15, tzinfo=UTC)
    assert conversation.finished_at == datetime(2025, 3, 12, 11, 30, tzinfo=UTC)
    body = conversation.body()
    assert body["started_at"] == "2025-03-12T08:15:00+00:00"
    assert body["finished_at"] == "2025-03-12T11:30:00+00:00"


def test_one_plain_message_starts_and_finishes_at_its_own_date() -> None:
    conversation = only(compose_burst([message("note to self", sent_at=FORWARDED_AT)]))

    assert conversation.started_at == FORWARDED_AT == conversation.finished_at


def test_plain_burst_spans_its_messages_dates() -> None:
    messages = [
        message("b", sequence=2, sent_at=FORWARDED_AT + timedelta(seconds=4)),
        message("a", sequence=1, sent_at=FORWARDED_AT),
    ]

    conversation = only(compose_burst(messages))

    assert (conversation.started_at, conversation.finished_at) == (
        FORWARDED_AT,
        FORWARDED_AT + timedelta(seconds=4),
    )


def test_times_are_always_sent_as_utc() -> None:
    berlin = timezone(timedelta(hours=1))
    local = datetime(2025, 3, 12, 10, 0, tzinfo=berlin)
    naive = datetime(2025, 3, 12, 12, 0)

    first = only(compose_burst([message("x", sent_at=local)]))
    second = only(compose_burst([message("y", sent_at=naive)]))

    assert first.started_at.utcoffset() == timedelta(0)
    assert first.body()["started_at"] == "2025-03-12T09:00:00+00:00"
    assert second.body()["started_at"] == "2025-03-12T12:00:00+00:00"


# --- language and location ----------------------------------------------------------------------------------


def test_language_is_the_first_known_one_in_message_order() -> None:
    messages = [
        message("hallo", sequence=3, language="de"),
        message("hello", sequence=1),
        message("hola", sequence=2, language="es"),
    ]

    assert only(compose_burst(messages)).language == "es"


def test_unknown_language_is_left_out_of_the_body() -> None:
    conversation = only(compose_burst([message("hello")]))

    assert conversation.language is None
    assert "language" not in conversation.body()


def test_burst_that_is_only_a_location_says_where() -> None:
    conversation = only(compose_burst([message(location=Location(latitude=51.5007, longitude=-0.1246))]))

    assert conversation.text == "Location: 51.5007, -0.1246"
    assert conversation.text_source == "other_text"
    assert conversation.geolocation is not None
    assert conversation.body()["geolocation"] == {"latitude": 51.5007, "longitude": -0.1246}


def test_location_with_text_becomes_geolocation_and_adds_no_block() -> None:
    messages = [
        message("dinner here tonight", sequence=1),
        message(sequence=2, location=Location(latitude=41.9, longitude=12.5)),
    ]

    conversation = only(compose_burst(messages))

    assert conversation.text == "dinner here tonight"
    assert conversation.geolocation is not None
    assert (conversation.geolocation.latitude, conversation.geolocation.longitude) == (41.9, 12.5)


def test_last_location_in_message_order_wins() -> None:
    messages = [
        message(sequence=2, location=Location(latitude=2.0, longitude=2.0)),
        message("where we went", sequence=3),
        message(sequence=1, location=Location(latitude=1.0, longitude=1.0)),
    ]

    geolocation = only(compose_burst(messages)).geolocation

    assert geolocation is not None
    assert (geolocation.latitude, geolocation.longitude) == (2.0, 2.0)


def test_no_location_means_no_geolocation_key() -> None:
    assert "geolocation" not in only(compose_burst([message("hi")])).body()


# --- long text ----------------------------------------------------------------------------------------------


def _paragraphs(total: int) -> list[str]:
    line = "All work and no play makes Jack a dull boy. " * 20
    texts: list[str] = []
    while sum(len(text) + 2 for text in texts) < total:
        texts.append(f"{len(texts)}: {line.strip()}")
    return texts


def test_sixty_thousand_characters_become_two_numbered_parts_deterministically() -> None:
    texts = _paragraphs(60_000)
    messages = [message(text, sequence=index) for index, text in enumerate(texts)]
    assert len("\n\n".join(texts)) > 60_000

    parts = compose_burst(messages)
    again = compose_burst(list(reversed(messages)))

    assert len(parts) == 2
    assert parts[0].text.startswith("(1/2) 0: ")
    assert parts[1].text.startswith("(2/2) ")
    assert all(len(part.text) <= MAX_PART_CHARS for part in parts)
    assert [part.body() for part in parts] == [part.body() for part in again]
    # Split at a message boundary: no message is cut in two, and nothing is lost.
    rejoined = parts[0].text.removeprefix("(1/2) ") + "\n\n" + parts[1].text.removeprefix("(2/2) ")
    assert rejoined == "\n\n".join(texts)


def test_every_part_carries_the_same_times_language_and_location() -> None:
    messages = [message(text, sequence=index, language="en") for index, text in enumerate(_paragraphs(120_000))]
    messages.append(message(sequence=10_000, location=Location(latitude=1.5, longitude=2.5)))

    parts = compose_burst(messages)

    assert len(parts) == 3
    assert [part.text[:6] for part in parts] == ["(1/3) ", "(2/3) ", "(3/3) "]
    shared = [{key: value for key, value in part.body().items() if key != "text"} for part in parts]
    assert shared == [shared[0]] * 3
    assert shared[0]["language"] == "en"
    assert shared[0]["geolocation"] == {"latitude": 1.5, "longitude": 2.5}
    assert shared[0]["started_at"] == shared[0]["finished_at"] == "2025-03-12T18:00:00+00:00"


def test_one_huge_message_splits_at_line_breaks() -> None:
    lines = [f"line {index} " + "x" * 90 for index in range(600)]
    text = "\n".join(lines)
    assert len(text) > MAX_PART_CHARS

    parts = compose_burst([message(text)])

    assert len(parts) == 2
    bodies = [part.text.split(" ", 1)[1] for part in parts]
    assert all(len(part.text) <= MAX_PART_CHARS for part in parts)
    assert bodies[0].endswith("x") and bodies[1].startswith("line ")
    assert "\n".join(bodies) == text


def test_one_huge_line_splits_at_whitespace() -> None:
    words = [f"word{index:05d}" for index in range(6_000)]
    text = " ".join(words)

    parts = compose_burst([message(text)])

    bodies = [part.text.split(" ", 1)[1] for part in parts]
    assert len(parts) == 2
    assert all(len(part.text) <= MAX_PART_CHARS for part in parts)
    assert " ".join(bodies) == text


def test_text_without_any_whitespace_is_cut_hard() -> None:
    text = "a" * 120_000

    parts = compose_burst([message(text)])

    assert [part.text[:6] for part in parts] == ["(1/3) ", "(2/3) ", "(3/3) "]
    assert all(len(part.text) <= MAX_PART_CHARS for part in parts)
    assert "".join(part.text[6:] for part in parts) == text


def test_exactly_the_limit_is_one_unlabelled_part() -> None:
    text = "b" * MAX_PART_CHARS

    assert only(compose_burst([message(text)])).text == text
    assert len(compose_burst([message(text + "b")])) == 2


def test_ten_or_more_parts_still_fit_with_their_wider_labels() -> None:
    text = "c" * (MAX_PART_CHARS * 10)

    parts = compose_burst([message(text)])

    assert len(parts) == 11
    assert parts[0].text.startswith("(1/11) ")
    assert parts[-1].text.startswith("(11/11) ")
    assert all(len(part.text) <= MAX_PART_CHARS for part in parts)
    assert "".join(part.text.split(" ", 1)[1] for part in parts) == text


# --- summary ------------------------------------------------------------------------------------------------


def test_summary_names_forward_origins_in_order_of_first_appearance() -> None:
    messages = [
        message("a", sequence=1, origin=user("Alice", 9)),
        message("b", sequence=2, origin=user("Bob", 10)),
        message("c", sequence=3, origin=user("Alice", 11)),
    ]

    assert burst_summary(list(reversed(messages))) == "3 messages from Alice, Bob · 12 Mar"


def test_summary_counts_only_messages_with_content() -> None:
    messages = [message("hi", sequence=1), message("", sequence=2), message("there", sequence=3)]

    assert burst_summary(messages) == "2 messages from Uma User · 12 Mar"


def test_summary_with_more_than_three_names_counts_the_rest() -> None:
    names = ["Alice", "Bob", "Carol", "Dan", "Eve"]
    messages = [message("x", sequence=index, origin=user(name)) for index, name in enumerate(names)]

    assert burst_summary(messages) == "5 messages from Alice, Bob, Carol and 2 others · 12 Mar"
    assert burst_summary(messages[:4]) == "4 messages from Alice, Bob, Carol and 1 other · 12 Mar"


def test_summary_date_is_the_start_in_the_users_time_zone() -> None:
    late_evening = ForwardOrigin(kind="user", name="Alice", date=datetime(2025, 3, 12, 23, 30, tzinfo=UTC))
    messages = [message("x", origin=late_evening)]

    assert burst_summary(messages).endswith("· 12 Mar")
    assert burst_summary(messages, tz=timezone(timedelta(hours=2))) == "1 message from Alice · 13 Mar"


def test_summary_of_nothing() -> None:
    assert burst_summary([message("")]) == "0 messages"
