"""Telegram entities → Markdown: offsets in UTF-16 units, nesting, and text that is never lost."""

from __future__ import annotations

from telegram import MessageEntity

from adapters.telegram.markdown import entities_to_markdown


def entity(text: str, part: str, kind: str, **extra: str) -> MessageEntity:
    before = text[: text.index(part)]
    return MessageEntity(kind, len(before.encode("utf-16-le")) // 2, len(part.encode("utf-16-le")) // 2, **extra)


def test_offsets_after_emoji_count_utf16_units():
    text = "🎉🎉 party at the mill"
    assert entities_to_markdown(text, [entity(text, "the mill", "bold")]) == "🎉🎉 party at **the mill**"


def test_a_link_inside_bold_and_bold_inside_a_link_both_survive():
    text = "read the spec now"
    link = entity(text, "the spec", "text_link", url="https://example.com/spec")
    assert entities_to_markdown(text, [entity(text, "read the spec", "bold"), link]) == (
        "**read [the spec](https://example.com/spec)** now"
    )
    assert entities_to_markdown(text, [link, entity(text, "spec", "bold")]) == (
        "read [the **spec**](https://example.com/spec) now"
    )


def test_spaces_stay_outside_the_markers():
    text = "a bold move"
    assert entities_to_markdown(text, [entity(text, " bold ", "bold")]) == "a **bold** move"


def test_code_keeps_backticks_and_pre_keeps_its_language():
    text = "run `make` then\nprint(1)"
    assert entities_to_markdown(text, [entity(text, "`make`", "code")]) == "run `` `make` `` then\nprint(1)"
    pre = MessageEntity("pre", text.index("print"), len("print(1)"), language="python")
    assert entities_to_markdown(text, [pre]) == "run `make` then\n```python\nprint(1)\n```"


def test_link_targets_with_parentheses_and_labels_with_brackets_stay_one_link():
    text = "see [1] here"
    link = entity(text, "[1]", "text_link", url="https://en.wikipedia.org/wiki/Mill_(grinding)")
    assert entities_to_markdown(text, [link]) == "see [\\[1\\]](https://en.wikipedia.org/wiki/Mill_%28grinding%29) here"


def test_entities_pointing_past_the_text_lose_formatting_never_words():
    text = "short"
    assert entities_to_markdown(text, [MessageEntity("bold", 2, 99), MessageEntity("italic", 40, 3)]) == "sh**ort**"
