"""Importing history in chat (SPEC §10): a `result.json` sent to the bot as a document, through the real
python-telegram-bot against the fake Bot API, into the sandbox — the summary and its buttons, the one progress
message edited in place, Cancel, presses twice and after a restart, who may, what is refused, /status and /unlink.
Time is the manual clock: the progress job's rounds come when a test moves it."""

from __future__ import annotations

import asyncio
import itertools
import json
from datetime import UTC, datetime
from typing import Any

import pytest

from adapters.telegram.exports import TelegramExports
from bot.events import Command, InboundMessage, Platform
from bot.importing.chat import ChatImports
from bot.importing.progress import IDLE_SECONDS, LOOK_SECONDS, ImportProgress
from bot.store.imports import ImportState
from tests.telegram import export_fixtures as fx
from tests.telegram.conftest import ADA, command, recorded

BOTH_ENGINES = True

_ids = itertools.count(700)


def family() -> dict[str, Any]:
    """Six messages (and a service entry) in three conversations 30+ minutes apart, over a week."""
    return fx.chat("Family", "private_group", 4242, [
        fx.service(1, -5, "create_group", title="Family", members=["Bob Byrne"]),
        fx.message(2, 0, "Dinner on Sunday?"),
        fx.message(3, 1, "Yes, at 7", sender="Bob Byrne", sender_id="user1002"),
        fx.message(4, 2, "I'll bring cake"),
        fx.message(5, 3000, "Photos from Sunday", sender="Bob Byrne", sender_id="user1002"),
        fx.message(6, 3001, "Lovely!"),
        fx.message(7, 10000, "Happy birthday, Bob"),
    ])  # fmt: skip


SUMMARY = "6 messages from Family, 2024-03-05 – 2024-03-12 → 3 conversations.\nImport them into Omi?"


def document(telegram, content: bytes | None, *, name: str = "result.json", size: int | None = -1) -> dict:
    """A private-chat message carrying `content` as a document (the fake serves it); `size`: what the message
    announces (-1: the content's length, None: nothing)."""
    message_id = next(_ids)
    file_id = f"doc-export-{message_id}"
    if content is not None:
        telegram.api.add_file(file_id, f"documents/file_{message_id}.json", content)
    update = recorded("text_document")
    update["update_id"] = 910_000 + message_id
    update["message"]["message_id"] = message_id
    announced = len(content or b"") if size == -1 else size
    update["message"]["document"] = {
        "file_name": name, "mime_type": "application/json", "file_id": file_id, "file_unique_id": f"u{message_id}",
        **({"file_size": announced} if announced is not None else {}),
    }  # fmt: skip
    return update


def export_bytes(data: Any = None) -> bytes:
    return json.dumps(family() if data is None else data, ensure_ascii=False, indent=1).encode()


def tap(message_id: int, data: str) -> dict:
    """A press of a button with `data` under the bot's message `message_id`."""
    update = recorded("callback_query")
    number = next(_ids)
    update["update_id"] = 920_000 + number
    query = update["callback_query"]
    query.update(id=f"tap-{number}", data=data)
    query["message"].update(message_id=message_id, text="…")
    return update


async def summary(telegram) -> tuple[int, str, dict[str, str]]:
    """The newest message still showing buttons: its id, text and buttons (label → data)."""
    await telegram.api.wait_for("sendMessage", lambda p: "reply_markup" in p)
    (_, message_id), (text, markup) = [
        (key, shown) for key, shown in telegram.api.shown.items() if key[0] == str(ADA) and shown[1]
    ][-1]
    buttons = {b["text"]: b["callback_data"] for row in markup["inline_keyboard"] for b in row}
    return message_id, text, buttons


def edits(telegram, message_id: int) -> list[str]:
    return [p["text"] for p in telegram.api.calls_to("editMessageText") if int(p["message_id"]) == message_id]


async def tick(env, seconds: float = LOOK_SECONDS) -> None:
    """Move the manual clock and wait for the progress job's round at the new time."""
    target = env.clock.now() + seconds
    env.clock.advance(seconds)
    job = env.bridge.import_progress
    async with asyncio.timeout(5):
        while True:
            job.looked.clear()
            if job.last_look >= target:
                return
            await job.looked.wait()


async def offered(telegram, data: Any = None) -> tuple[int, dict[str, str]]:
    await telegram.receive(document(telegram, export_bytes(data)))
    message_id, _, buttons = await summary(telegram)
    return message_id, buttons


async def test_an_export_is_summarised_imported_and_followed_by_one_message_edited_in_place(telegram):
    await telegram.link()
    await telegram.receive(document(telegram, export_bytes()))

    message_id, text, buttons = await summary(telegram)
    assert text == SUMMARY
    assert list(buttons) == ["Import", "Cancel"]
    assert telegram.conversations() == []  # offered, not sent

    await telegram.receive(tap(message_id, buttons["Import"]))
    await telegram.deliver()

    texts = sorted(c["external_data"]["text"] for c in telegram.conversations())
    assert texts == [
        "Alice Liddell: Dinner on Sunday?\n\nBob Byrne: Yes, at 7\n\nAlice Liddell: I'll bring cake",
        "Alice Liddell: Happy birthday, Bob",
        "Bob Byrne: Photos from Sunday\n\nAlice Liddell: Lovely!",
    ]
    assert {c["external_data"]["text_source_spec"] for c in telegram.conversations()} == {"telegram_import"}
    await tick(telegram.env)
    await tick(telegram.env, IDLE_SECONDS)  # nothing more to say: no edit
    assert edits(telegram, message_id) == [
        "Importing Family into Omi: 0/3 delivered…",
        "Imported 3/3 from Family.",
    ]
    # One message for the whole import: no reaction, no "Saved …" per conversation.
    assert telegram.api.sent_texts(ADA) == [SUMMARY]
    assert telegram.api.calls_to("setMessageReaction") == []

    await telegram.receive(document(telegram, export_bytes()))  # the ledger: nothing is imported twice
    assert await telegram.reply(count=2) == "Nothing new to import from Family: all 6 messages were imported before."


async def test_a_later_export_of_the_chat_brings_only_what_is_new(telegram):
    await telegram.link()
    first_week = family()
    first_week["messages"] = first_week["messages"][:4]  # the service entry and the first conversation
    message_id, buttons = await offered(telegram, first_week)
    await telegram.receive(tap(message_id, buttons["Import"]))
    await telegram.deliver()
    assert len(telegram.conversations()) == 1

    await telegram.receive(document(telegram, export_bytes()))

    _, text, _ = await summary(telegram)
    assert text == (
        "3 messages from Family, 2024-03-07 – 2024-03-12 → 2 conversations. 3 messages already imported before are"
        " left out.\nImport them into Omi?"
    )


async def test_import_typed_by_hand_says_how_to_import(telegram):
    await telegram.link()
    await telegram.receive(command("import"))

    assert (await telegram.reply()).startswith("To import a chat's history, send me its export as a file")


async def test_failures_are_named_in_the_last_edit(telegram):
    await telegram.link()
    message_id, buttons = await offered(telegram)
    telegram.env.sandbox.add_fault("create_conversation", status=422, times=3)

    await telegram.receive(tap(message_id, buttons["Import"]))
    await telegram.deliver()
    await tick(telegram.env)

    last = edits(telegram, message_id)[-1]
    assert last.startswith("Imported 0/3 from Family. 3 conversations failed:\n• imported · 2024-03-05 14:02–14:04")


async def test_cancel_queues_nothing_and_says_so_in_the_summary(telegram):
    await telegram.link()
    message_id, buttons = await offered(telegram)

    await telegram.receive(tap(message_id, buttons["Cancel"]))
    await telegram.deliver()

    assert edits(telegram, message_id) == ["Cancelled: nothing was imported."]
    assert telegram.conversations() == []
    rows = await telegram.env.store.db.fetchall("SELECT state FROM outbox")
    assert rows == []
    # Nothing was imported, so the same file is offered whole again (no "already imported").
    await telegram.receive(document(telegram, export_bytes()))
    assert await telegram.reply(count=2) == SUMMARY


async def test_pressing_import_twice_imports_once(telegram):
    await telegram.link()
    message_id, buttons = await offered(telegram)

    await telegram.receive(tap(message_id, buttons["Import"]), tap(message_id, buttons["Import"]))
    await telegram.receive(tap(message_id, buttons["Cancel"]))  # too late: it is under way
    await telegram.deliver()

    assert len(telegram.conversations()) == 3
    assert edits(telegram, message_id) == ["Importing Family into Omi: 0/3 delivered…"]
    [record] = await telegram.env.store.imports.listed()
    assert record.state is ImportState.QUEUED and record.total == 3


async def test_two_instances_handling_presses_at_once_import_once(telegram):
    env = telegram.env
    await telegram.link()
    message_id, buttons = await offered(telegram)
    other = ChatImports(env.store.imports, env.store.links, env.clock)  # another instance's
    name, args = buttons["Import"].split(" ", 1)
    tapped = InboundMessage(
        platform=Platform.TELEGRAM, chat_id=str(ADA), sender_id=str(ADA), sender_name="Ada Lovelace",
        message_id=str(message_id), sequence=message_id, sent_at=datetime.now(UTC), command=Command(name, args),
    )  # fmt: skip

    answers = await asyncio.gather(env.bridge.imports.choose(tapped, args), other.choose(tapped, args))

    assert sorted(len(replies) for replies in answers) == [0, 1]
    # Queued once: three items, not six (delivery, woken by the press, may already be sending the first).
    rows = await env.store.db.fetchall("SELECT COUNT(*) AS n FROM outbox")
    assert rows[0]["n"] == 3


async def test_an_offer_survives_a_restart_and_its_old_buttons_import_once(telegram):
    env = telegram.env
    await telegram.link()
    message_id, buttons = await offered(telegram)

    async def restart() -> None:
        await env.restart_with(env.omi)
        exports = TelegramExports(telegram.adapter.bot, retry_wait=0.01)
        env.bridge.register_adapter(telegram.adapter, telegram.adapter.parse, exports=exports)

    await restart()
    await telegram.receive(tap(message_id, buttons["Import"]))
    await telegram.deliver()
    await restart()
    await telegram.receive(tap(message_id, buttons["Import"]))  # the same old button, after another restart
    await telegram.deliver()
    await tick(env)

    assert len(telegram.conversations()) == 3
    assert edits(telegram, message_id) == ["Importing Family into Omi: 0/3 delivered…", "Imported 3/3 from Family."]


async def test_a_newer_file_replaces_an_offer_still_waiting(telegram):
    await telegram.link()
    first, old_buttons = await offered(telegram)
    second, buttons = await offered(telegram)
    assert second != first and await telegram.reply(count=2) == SUMMARY  # not "already imported"

    await telegram.receive(tap(first, old_buttons["Import"]))
    await telegram.deliver()

    assert telegram.conversations() == []
    assert edits(telegram, first) == [
        "This import is no longer waiting for a choice (it was cancelled, expired or replaced by a newer file)."
        " Send the export again to import it."
    ]
    await telegram.receive(tap(second, buttons["Import"]))
    await telegram.deliver()
    assert len(telegram.conversations()) == 3


@pytest.mark.parametrize("claimed", [False, True], ids=["not linked", "only claimed"])
async def test_only_a_verified_account_may_import(telegram, claimed):
    if claimed:
        token = await telegram.env.bridge.linking.issue_token(telegram.env.uid)
        await telegram.env.bridge.linking.claim(f"telegram:{ADA}", token, handle_hint=str(ADA))
    await telegram.receive(document(telegram, export_bytes()))

    text = await telegram.reply()
    assert ("Finish linking first" in text) if claimed else ("not linked to an Omi account" in text)
    assert telegram.api.calls_to("getFile") == []
    assert await telegram.env.store.imports.listed() == []


@pytest.mark.parametrize("announced", [25 * 1024 * 1024, None], ids=["announced", "found by getFile"])
async def test_a_file_over_the_bot_api_download_limit_is_sent_to_the_command_line(telegram, announced):
    await telegram.link()
    big = b" " * (20 * 1024 * 1024 + 1)
    await telegram.receive(document(telegram, big, size=announced))

    text = await telegram.reply()
    assert "at most 20.0 MB" in text and f"omi-bridge import telegram result.json --as telegram:{ADA}" in text
    assert telegram.api.calls_to("download") == []
    assert await telegram.env.store.imports.listed() == []


@pytest.mark.parametrize(
    ("content", "said"),
    [
        (export_bytes()[:-40], "result.json ends too early: the file is cut off"),
        (b"<!DOCTYPE html><html><body>Exported Data</body></html>", "result.json is Telegram's HTML export"),
        (b'{"hello": "world"}', "not a Telegram"),
        (b"\x89PNG not json", "result.json is not JSON"),
    ],
    ids=["truncated", "html", "other json", "not json"],
)
async def test_a_broken_file_is_refused_with_its_reason_and_nothing_staged(telegram, content, said):
    await telegram.link()
    await telegram.receive(document(telegram, content))

    text = await telegram.reply()
    assert said in text, text
    assert "/tmp" not in text and "omi-bridge-import" not in text  # named as the user sent it
    assert await telegram.env.store.db.fetchall("SELECT id FROM outbox") == []
    assert await telegram.env.store.db.fetchall("SELECT 1 FROM import_ledger") == []


async def test_a_full_export_lists_its_chats_and_asks_for_one(telegram):
    await telegram.link()
    await telegram.receive(document(telegram, export_bytes(fx.full_export(family(), fx.private_chat("Bob Byrne")))))

    text = await telegram.reply()
    assert text.startswith("This export holds 2 chats; I import one chat at a time:\n• Family · 6 messages\n")
    assert "• Bob Byrne · 3 messages" in text and "Export chat history" in text
    assert await telegram.env.store.imports.listed() == []


async def test_status_shows_an_offer_and_a_running_import(telegram):
    env = telegram.env
    await telegram.link()
    message_id, buttons = await offered(telegram)
    await telegram.receive(command("status", message_id=next(_ids)))
    assert "Import of Family: waiting for you to press Import or Cancel." in await telegram.reply(count=2)

    env.sandbox.disable(env.app_id, env.uid)  # the items wait (blocked), the import runs on
    await telegram.receive(tap(message_id, buttons["Import"]))
    await telegram.deliver()
    await telegram.receive(command("status", message_id=next(_ids)))

    status = await telegram.reply(count=3)
    assert "Import of Family: 0/3 delivered" in status
    assert "Nothing is waiting." in status  # an import's items are its one line, not one each


async def test_unlink_cancels_the_import_and_deletes_what_was_not_sent(telegram):
    env = telegram.env
    await telegram.link()
    message_id, buttons = await offered(telegram)
    env.sandbox.disable(env.app_id, env.uid)
    await telegram.receive(tap(message_id, buttons["Import"]))
    await telegram.deliver()

    await telegram.receive(tap(50010, "unlink confirm"))

    text = await telegram.reply(count=2)
    assert text.startswith("Unlinked.")
    assert text.endswith("I cancelled your import of Family; 3 conversations not yet in Omi were deleted.")
    [record] = await env.store.imports.listed()
    assert record.state is ImportState.CANCELLED
    env.sandbox.enable(env.app_id, env.uid)
    await env.run_clock(3 * 3600)
    assert telegram.conversations() == []
    await telegram.api.wait_for("editMessageText", lambda p: "cancelled" in p["text"])
    assert edits(telegram, message_id)[-1] == (
        "Import of Family cancelled: you unlinked this chat, and what was not yet in Omi was deleted."
    )


async def rounds_by_hand(telegram) -> tuple[int, float, ImportProgress]:
    """An offer imported: the summary's id, when Import was pressed, and the progress job with its loop stopped (a
    test calls its rounds)."""
    env = telegram.env
    await env.bridge.import_progress.stop()
    await telegram.link()
    message_id, buttons = await offered(telegram)
    pressed = env.clock.now()
    await telegram.receive(tap(message_id, buttons["Import"]))
    return message_id, pressed, env.bridge.import_progress


async def test_progress_is_edited_no_sooner_than_ten_seconds_after_the_last_edit(telegram):
    env = telegram.env
    message_id, pressed, job = await rounds_by_hand(telegram)
    await env.settle()
    assert len(telegram.conversations()) == 3

    env.clock.set(pressed + LOOK_SECONDS - 1)
    assert await job.round()
    assert edits(telegram, message_id) == ["Importing Family into Omi: 0/3 delivered…"]
    env.clock.set(pressed + LOOK_SECONDS)
    assert await job.round()
    assert edits(telegram, message_id) == ["Importing Family into Omi: 0/3 delivered…", "Imported 3/3 from Family."]


async def test_the_same_progress_is_never_shown_twice(telegram):
    env = telegram.env
    env.sandbox.disable(env.app_id, env.uid)  # nothing moves
    message_id, pressed, job = await rounds_by_hand(telegram)
    await env.settle()

    for later in (1, 2, 3):
        env.clock.set(pressed + later * LOOK_SECONDS)
        assert await job.round()
    assert edits(telegram, message_id) == ["Importing Family into Omi: 0/3 delivered…"]
    [record] = await env.store.imports.listed()
    assert record.progress_at == pressed and not record.progress_final


async def test_one_instance_at_a_time_edits_progress(telegram):
    env = telegram.env
    message_id, pressed, job = await rounds_by_hand(telegram)
    await env.settle()
    other = ImportProgress(env.store.imports, env.store.db, env.clock, env.bridge.outbound.send, "other-instance")
    assert await job.round()  # this instance holds "job:import-progress" now

    env.clock.set(pressed + LOOK_SECONDS)
    assert not await other.round()
    assert edits(telegram, message_id) == ["Importing Family into Omi: 0/3 delivered…"]
    await job.stop()  # gives the lease back: the other instance takes over at once
    assert await other.round()
    assert edits(telegram, message_id)[-1] == "Imported 3/3 from Family."
    await other.stop()
