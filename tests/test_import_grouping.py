"""Past messages become conversations (SPEC §10): gaps, the 50,000-character split, date filters, the ledger."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from bot.importing.grouping import MAX_CHARS, conversations
from bot.importing.model import ImportedMessage

START = datetime(2024, 3, 5, 14, 2, tzinfo=UTC)


def message(n: int, minutes: float, text: str = "", author: str = "Alice") -> ImportedMessage:
    return ImportedMessage("telegram", "42", str(n), author, text or f"message {n}", START + timedelta(minutes=minutes))


def test_messages_less_than_the_gap_apart_are_one_conversation_and_a_gap_starts_the_next():
    stream = [message(1, 0), message(2, 10, author="Bob"), message(3, 38), message(4, 38 + 30), message(5, 200)]
    groups = list(conversations(stream, gap_minutes=30))
    assert [g.message_ids for g in groups] == [["1", "2", "3"], ["4"], ["5"]]
    first = groups[0]
    assert first.text == "Alice: message 1\n\nBob: message 2\n\nAlice: message 3"
    assert (first.started_at, first.finished_at) == (START, START + timedelta(minutes=38))
    assert first.dry_run_line() == "2024-03-05 14:02–14:40 UTC · 3 messages · Alice, Bob · message 1"


def test_a_conversation_is_split_at_message_boundaries_below_fifty_thousand_characters():
    long = "word " * 4_000  # 20,000 characters
    groups = list(conversations([message(n, n, long.strip()) for n in range(5)]))
    assert [g.message_ids for g in groups] == [["0", "1"], ["2", "3"], ["4"]]
    assert all(len(g.text) <= MAX_CHARS for g in groups)


def test_one_message_over_the_limit_is_cut_at_whitespace_into_parts_that_fit():
    huge = " ".join(f"w{n}" for n in range(30_000))  # about 190,000 characters
    groups = list(conversations([message(1, 0, huge)]))
    assert len(groups) >= 4 and all(len(g.text) <= MAX_CHARS for g in groups)
    words = " ".join(g.text.removeprefix("Alice: ") for g in groups).split()
    assert words == huge.split()


def test_since_and_until_are_whole_utc_days_and_imported_ids_are_skipped():
    day = timedelta(days=1).total_seconds() / 60
    stream = [message(n, n * day) for n in range(5)]  # 5, 6, 7, 8, 9 March
    kept = [g.message_ids for g in conversations(stream, since=date(2024, 3, 6), until=date(2024, 3, 8))]
    assert kept == [["1"], ["2"], ["3"]]
    assert [g.message_ids for g in conversations(stream, skip={"0", "2", "4"})] == [["1"], ["3"]]


def test_dry_run_line_spanning_midnight_names_the_end_date_and_cuts_long_previews():
    stream = [message(1, 0, "one two three four five six seven eight nine ten"), message(2, 60 * 10 + 5)]
    [group] = list(conversations(stream, gap_minutes=24 * 60))
    assert group.dry_run_line() == (
        "2024-03-05 14:02–2024-03-06 00:07 UTC · 2 messages · Alice · one two three four five six seven eight…"
    )


@given(st.lists(st.tuples(st.floats(0, 120), st.integers(1, 3000)), min_size=1, max_size=40))
def test_every_message_lands_once_in_order_and_no_conversation_is_over_the_limit(gaps):
    minutes, stream = 0.0, []
    for n, (gap, size) in enumerate(gaps):
        minutes += gap
        stream.append(message(n, minutes, "x" * size))
    groups = list(conversations(stream, gap_minutes=30))
    assert [i for g in groups for i in g.message_ids] == [m.message_id for m in stream]
    assert all(g.size == len(g.text) <= MAX_CHARS for g in groups)


def test_the_eta_follows_the_observed_rate_but_never_beats_the_share_omi_leaves_an_import():
    from bot.import_cli import Eta

    eta = Eta()
    assert eta.left(0, 100, None, now=0.0) == "estimating…"
    assert eta.left(10, 100, None, now=60.0) == "about 9 min left"  # 10 a minute observed: 90 left
    capped = Eta()
    capped.left(0, 100, 7, now=0.0)
    assert capped.left(10, 100, 7, now=60.0) == "about 12.9 h left"  # 7 an hour is what the limit leaves
    assert capped.left(100, 100, 7, now=120.0) == ""
