"""Every kind of Telegram message, from a recorded update through the real core to Omi (the sandbox) and back."""

from __future__ import annotations

import pytest

from tests.telegram.conftest import recorded


def saved_text(conversation: dict) -> str:
    return conversation["external_data"]["text"]


async def test_the_four_kinds_of_forward_become_one_conversation_with_original_senders(telegram):
    await telegram.link()
    names = ["forward_user", "forward_hidden_user", "forward_chat", "forward_channel", "forward_channel_signed"]
    await telegram.receive(*(recorded(name) for name in names))
    await telegram.deliver()

    [conversation] = telegram.conversations()
    assert saved_text(conversation) == (
        "Charles Babbage: The engine can weave algebraic patterns.\n\n"
        "Mystery Person: I'd rather stay anonymous.\n\n"
        "Difference Engine Society (Admin Ann): Meeting moved to Thursday.\n\n"
        "Engine News: New gears arrived.\n\n"
        "Engine News (Editor): Editorial: punch cards are the future."
    )
    assert conversation["external_data"]["text_source"] == "message"
    assert conversation["external_data"]["text_source_spec"] == "telegram"
    # The original send times (a day before the forwards), not the time of forwarding.
    assert conversation["started_at"].startswith("2026-03-11T09:00:00")
    assert conversation["finished_at"].startswith("2026-03-11T09:04:00")
    assert conversation["language"] == "en"
    [reaction] = await telegram.api.wait_for("setMessageReaction")
    assert reaction["message_id"] == 15 and reaction["reaction"] == [{"type": "emoji", "emoji": "👍"}]


async def test_an_album_arriving_out_of_order_is_one_conversation_with_its_caption(telegram):
    await telegram.link()
    first, second, third = recorded("album")
    await telegram.receive(third, first, second)
    await telegram.deliver()

    [conversation] = telegram.conversations()
    assert saved_text(conversation) == "Blueprints of the **mill**, with notes"
    [reaction] = await telegram.api.wait_for("setMessageReaction")
    assert reaction["message_id"] == 33  # the album's last item
    assert telegram.api.sent_texts() == []  # no "unsupported" complaint about the caption-less items


async def test_the_comment_sent_before_forwards_becomes_the_note(telegram):
    await telegram.link()
    await telegram.receive(*recorded("comment_and_forwards"))
    await telegram.deliver()

    [conversation] = telegram.conversations()
    assert saved_text(conversation) == (
        "Charles Babbage: Let's use punched cards.\n\n"
        "Mystery Person: And a separate store for numbers.\n\n"
        "Note: Notes from yesterday's call"
    )


async def test_an_edit_inside_the_window_replaces_the_text(telegram):
    await telegram.link()
    original, edit = recorded("edited_message")
    await telegram.receive(original, edit)
    await telegram.deliver()

    [conversation] = telegram.conversations()
    assert saved_text(conversation) == "Meeting at 6"


async def test_plain_text_and_a_caption_are_saved_with_links_kept(telegram):
    await telegram.link()
    await telegram.receive(recorded("photo_caption"), recorded("plain_text"))
    await telegram.deliver()

    [conversation] = telegram.conversations()
    assert saved_text(conversation) == (
        "The finished mill, see https://example.com/mill\n\nRemember to oil the gears on Friday."
    )
    assert conversation["external_data"]["text_source"] == "other_text"


async def test_entities_become_markdown_and_text_links_keep_their_url(telegram):
    await telegram.link()
    await telegram.receive(recorded("text_entities"))
    await telegram.deliver()

    [conversation] = telegram.conversations()
    assert saved_text(conversation) == (
        "👋 Read [the spec](https://example.com/spec): https://omi.me/docs — **_bold_ move**, then run `make test`"
    )


async def test_a_text_document_is_downloaded_and_saved_as_its_content(telegram):
    await telegram.link()
    content = "# Mill plan\n\n- build the store\n- build the mill\n"
    telegram.api.add_file("doc-notes-md", "documents/file_7.md", content.encode())
    await telegram.receive(recorded("text_document"))
    await telegram.deliver()

    [conversation] = telegram.conversations()
    assert saved_text(conversation) == content.strip()
    assert telegram.api.calls_to("getFile") == [{"file_id": "doc-notes-md"}]
    assert telegram.api.calls_to("download") == [{"path": "documents/file_7.md"}]


async def test_a_text_document_download_survives_a_network_hiccup(telegram):
    await telegram.link()
    telegram.api.add_file("doc-notes-md", "documents/file_8.md", b"fetched on the second try")
    telegram.api.fail("getFile", 502, "Bad Gateway")
    await telegram.receive(recorded("text_document"))
    await telegram.deliver()

    [conversation] = telegram.conversations()
    assert saved_text(conversation) == "fetched on the second try"
    assert len(telegram.api.calls_to("getFile")) == 2


async def test_a_text_document_that_cannot_be_fetched_is_asked_for_again(telegram):
    await telegram.link()  # and no such file at the fake: "invalid file_id"
    await telegram.receive(recorded("text_document"))

    assert "could not download notes.md" in await telegram.reply()
    assert telegram.conversations() == []


async def test_other_documents_are_answered_as_unsupported(telegram):
    await telegram.link()
    await telegram.receive(recorded("other_document"))

    assert "Files other than .txt/.md" in await telegram.reply()
    assert telegram.api.calls_to("getFile") == []


@pytest.mark.parametrize(
    ("fixture", "answer"),
    [("voice", "Voice messages"), ("sticker", "Stickers"), ("photo", "Photos without a caption")],
)
async def test_media_without_text_gets_a_clear_reply_never_silence(telegram, fixture, answer):
    await telegram.link()
    await telegram.receive(recorded(fixture))

    assert (await telegram.reply()).startswith(f"{answer} can't be saved to Omi yet")
    await telegram.deliver()
    assert telegram.conversations() == []


async def test_a_location_is_saved_with_its_geolocation(telegram):
    await telegram.link()
    await telegram.receive(recorded("location"))
    await telegram.deliver()

    [conversation] = telegram.conversations()
    assert saved_text(conversation) == "Location: 51.5194, -0.127"
    assert conversation["geolocation"]["latitude"] == 51.5194


async def test_a_shared_contact_becomes_a_tagged_memory(telegram):
    await telegram.link()
    await telegram.receive(recorded("contact"))
    await telegram.env.settle()

    [memory] = telegram.env.sandbox.memories(telegram.env.uid)
    assert memory["content"] == "Contact: Mary Somerville, +447700900123"
    assert memory["tags"] == ["contact"]


async def test_a_forwarded_remember_is_saved_as_a_forward_not_run_as_a_command(telegram):
    await telegram.link()
    await telegram.receive(recorded("forward_remember"))
    await telegram.deliver()

    [conversation] = telegram.conversations()
    assert saved_text(conversation) == "Charles Babbage: /remember buy more brass"
    assert telegram.env.sandbox.memories(telegram.env.uid) == []


async def test_the_same_update_or_the_same_message_again_is_processed_once(telegram):
    await telegram.link()
    update = recorded("plain_text")
    again_in_a_new_update = {**recorded("plain_text"), "update_id": update["update_id"] + 500}
    assert await telegram.receive(update, update, again_in_a_new_update) == [True, False, False]
    await telegram.deliver()

    [conversation] = telegram.conversations()
    assert saved_text(conversation) == "Remember to oil the gears on Friday."


async def test_someone_not_linked_is_told_how_to_link_and_nothing_is_kept(telegram):
    await telegram.receive(recorded("plain_text"))

    assert "not linked to an Omi account" in await telegram.reply()
    assert await telegram.env.store.inbox.pending_count() == 0
