"""The deterministic stand-ins for Omi's LLM steps: the rules the sandbox documents."""

from __future__ import annotations

import hashlib
import uuid

import pytest

from bot.sandbox import derive


@pytest.mark.parametrize("text", ["", "   ", "ok", "ok thanks", "👍 👍 👍", "hi!!! :)"])
def test_fewer_than_three_words_is_trivial_and_gets_no_title(text: str) -> None:
    structure = derive.structure(text)
    assert (structure.title, structure.discarded) == ("", True)


def test_title_is_the_first_words_of_the_first_sentence_without_a_speaker_label() -> None:
    structure = derive.structure("\n\nsarah: we should book the flight to Lisbon. Also the hotel.\nMe: sure")
    assert structure.title == "We should book the flight to Lisbon"
    assert (structure.emoji, structure.category, structure.discarded) == ("✈️", "travel", False)
    assert structure.overview == "sarah: we should book the flight to Lisbon. Also the hotel."


def test_three_words_are_enough_and_unknown_topics_are_other() -> None:
    structure = derive.structure("purple elephants dance")
    assert (structure.title, structure.emoji, structure.category) == ("Purple elephants dance", "🧠", "other")


def test_overview_is_cut_at_a_word_boundary() -> None:
    overview = derive.structure("word " * 200).overview
    assert len(overview) <= derive.OVERVIEW_MAX_CHARS and overview.endswith("word…")


def test_extraction_keeps_sentences_of_four_words_or_more_once() -> None:
    text = "I live in Porto now. Nice! I live in Porto now.\nMy daughter started school this week"
    assert derive.extract_memories(text) == ["I live in Porto now.", "My daughter started school this week"]
    assert len(derive.extract_memories(". ".join(f"Fact number {n} is here" for n in range(50)))) == 20


def test_memory_id_is_omis_document_id_from_seed() -> None:
    expected = str(uuid.UUID(bytes=hashlib.sha256(b"User is vegetarian").digest()[:16], version=4))
    assert derive.memory_id("User is vegetarian") == expected
    assert derive.memory_id("User is vegetarian") != derive.memory_id("User is vegan")
