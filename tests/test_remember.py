"""`/remember` text becomes explicit memories as SPEC §6 describes."""

from __future__ import annotations

import pytest

from bot.omi.models import ExplicitMemory
from bot.remember import parse_remember


def pairs(memories: list[ExplicitMemory]) -> list[tuple[str, list[str]]]:
    return [(memory.content, memory.tags) for memory in memories]


def test_one_line_is_one_untagged_memory() -> None:
    memories = parse_remember("My passport expires in June 2027")

    assert pairs(memories) == [("My passport expires in June 2027", [])]
    assert memories[0].body() == {"content": "My passport expires in June 2027"}


def test_each_non_empty_line_is_a_memory() -> None:
    text = "Wifi password is hunter2\n\n   \nDentist is Dr. Patel\n"

    assert pairs(parse_remember(text)) == [("Wifi password is hunter2", []), ("Dentist is Dr. Patel", [])]


@pytest.mark.parametrize("bullet", ["-", "*", "•", "1.", "1)", "12.", "3)"])
def test_bullets_of_every_kind_are_stripped(bullet: str) -> None:
    memories = parse_remember(f"{bullet} Anna likes tulips\n  {bullet}\tTom hates olives")

    assert [memory.content for memory in memories] == ["Anna likes tulips", "Tom hates olives"]


@pytest.mark.parametrize(
    "line",
    ["-5 °C is too cold for the balcony plants", "3.14 is close enough to pi", "*really* important", "2)x"],
)
def test_a_bullet_character_not_followed_by_whitespace_is_content(line: str) -> None:
    assert [memory.content for memory in parse_remember(line)] == [line]


def test_a_bare_bullet_line_is_skipped() -> None:
    assert pairs(parse_remember("-\n- Real item\n•")) == [("Real item", [])]


def test_hashtag_at_start_middle_and_end_become_lower_case_tags_and_leave_the_text() -> None:
    text = "#Work deadline moved to Friday\nCall the #Bank about the card\nBook flights #travel"

    assert pairs(parse_remember(text)) == [
        ("deadline moved to Friday", ["work"]),
        ("Call the about the card", ["bank"]),
        ("Book flights", ["travel"]),
    ]


def test_hashtag_before_punctuation_leaves_the_punctuation_without_a_gap() -> None:
    assert pairs(parse_remember("Ask about #rent, then pay")) == [("Ask about, then pay", ["rent"])]


def test_hashtags_after_a_bullet_are_tags() -> None:
    assert pairs(parse_remember("- #family Mum's birthday is 3 May")) == [("Mum's birthday is 3 May", ["family"])]


def test_url_with_an_anchor_is_left_untouched() -> None:
    text = "Docs at https://example.com/page#anchor are good"

    assert pairs(parse_remember(text)) == [(text, [])]


def test_hash_inside_a_word_is_not_a_tag() -> None:
    assert pairs(parse_remember("Use a#b for the C# test")) == [("Use a#b for the C# test", [])]


def test_a_lone_hash_or_markdown_heading_is_not_a_tag() -> None:
    assert pairs(parse_remember("# Groceries\nPriority #1 thing")) == [
        ("# Groceries", []),
        ("Priority thing", ["1"]),
    ]


def test_a_line_of_only_hashtags_tags_every_memory_and_is_not_one_itself() -> None:
    text = "#Trip #Italy\nVisit the Colosseum\nEat gelato #food"

    assert pairs(parse_remember(text)) == [
        ("Visit the Colosseum", ["trip", "italy"]),
        ("Eat gelato", ["food", "trip", "italy"]),
    ]


def test_tags_only_line_at_the_end_also_tags_every_memory() -> None:
    text = "- Book hotel\n- Rent a car\n- #Holiday"

    assert pairs(parse_remember(text)) == [("Book hotel", ["holiday"]), ("Rent a car", ["holiday"])]


def test_duplicate_tags_are_kept_once_in_order_of_first_appearance() -> None:
    text = "Pay #Bills and #bills again #urgent\n#URGENT #home"

    assert pairs(parse_remember(text)) == [("Pay and again", ["bills", "urgent", "home"])]


def test_unicode_hashtags_are_tags() -> None:
    text = "Best croissant in town #Café #日本 #ёлка"

    assert pairs(parse_remember(text)) == [("Best croissant in town", ["café", "日本", "ёлка"])]


def test_as_a_reply_the_replied_text_is_one_memory_with_the_commands_hashtags() -> None:
    replied = "  Flight LH123 departs 07:40\nGate B12  "

    memories = parse_remember("#Travel important #work\n#travel", replied_text=replied)

    assert pairs(memories) == [("Flight LH123 departs 07:40\nGate B12", ["travel", "work"])]


def test_as_a_reply_the_replied_text_keeps_its_own_hashes() -> None:
    memories = parse_remember("", replied_text="Remember #this one")

    assert pairs(memories) == [("Remember #this one", [])]


def test_reply_to_a_message_without_text_falls_back_to_the_commands_own_lines() -> None:
    assert pairs(parse_remember("buy milk #shop", replied_text="   ")) == [("buy milk", ["shop"])]


@pytest.mark.parametrize("text", ["", "   ", "\n\n", "#just #tags", "- \n* "])
def test_nothing_to_save_gives_an_empty_list(text: str) -> None:
    assert parse_remember(text) == []


def test_no_automatic_platform_tag() -> None:
    memories = parse_remember("Telegram is where I chat with Bob")

    assert memories[0].tags == []
    assert "tags" not in memories[0].body()


def test_a_referenced_channel_is_no_hashtag():
    memories = parse_remember("notes go to #general #work", references=("general",))
    assert [(m.content, m.tags) for m in memories] == [("notes go to #general", ["work"])]
