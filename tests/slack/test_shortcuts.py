"""Message shortcuts: "Save to Omi" saves one message with its author's real name, "Save thread to Omi" the whole
thread (every page of `conversations.replies`) as one conversation of attributed blocks."""

from __future__ import annotations

from tests.slack.conftest import link
from tests.slack.workspace import ADA, ALAN, GENERAL, GRACE, fixture

FIVE_MESSAGES = [
    (GRACE.id, "1773306000.000100", "Launch plan: we ship on Thursday"),
    (ADA.id, "1773306060.000200", "I will write the *release notes*"),
    (ALAN.id, "1773306120.000300", "Staging is green, see <https://ci.example.org/run/42|run 42>"),
    (GRACE.id, "1773306180.000400", "<@U0ALAN001> can you freeze main on Wednesday?"),
    (ALAN.id, "1773306240.000500", "Done &amp; announced in <#C0GENERAL1|general>"),
]


async def test_save_to_omi_keeps_the_authors_real_name_time_and_readable_text(env, slack):
    await link(env, ADA)
    message = fixture("shortcut_save_to_omi")["message"]
    sent = await slack.save_message(ADA, message)
    assert sent.status == 200 and sent.body == ""
    await slack.fake.said("Saved 1 message from Grace Hopper · 12 Mar.", method="chat.postMessage")
    [conversation] = env.sandbox.conversations(env.uid)
    assert conversation["external_data"]["text"] == (
        "Grace Hopper: The deploy window is **Thursday** evening, see the runbook"
        " (https://wiki.example.org/deploy?env=prod&v=2) & ask @Ada Lovelace in #general"
    )
    assert conversation["external_data"]["text_source"] == "message"
    assert conversation["started_at"].startswith("2026-03-12T09:00:00")
    assert conversation["language"] == "en"
    names = [call.args["user"] for call in slack.fake.calls_to("users.info")]
    assert len(names) == len(set(names))  # each person looked up once (cached)


async def test_save_thread_to_omi_reads_every_page_and_saves_one_attributed_conversation(env, slack):
    await link(env, ADA)
    thread_ts = slack.fake.add_thread(GENERAL, FIVE_MESSAGES)
    sent = await slack.save_thread(ADA, thread_ts)
    assert sent.status == 200
    await slack.fake.said("Saved 5 messages from Grace Hopper, Ada Lovelace, Alan Turing", method="chat.postMessage")
    pages = slack.fake.calls_to("conversations.replies")
    assert [call.args.get("cursor") for call in pages] == [None, "page_2", "page_4"]
    assert {call.args["ts"] for call in pages} == {thread_ts}
    [conversation] = env.sandbox.conversations(env.uid)
    blocks = conversation["external_data"]["text"].split("\n\n")
    assert blocks == [
        "Grace Hopper: Launch plan: we ship on Thursday",
        "Ada Lovelace: I will write the **release notes**",
        "Alan Turing: Staging is green, see run 42 (https://ci.example.org/run/42)",
        "Grace Hopper: @Alan Turing can you freeze main on Wednesday?",
        "Alan Turing: Done & announced in #general",
    ]
    assert conversation["started_at"].startswith("2026-03-12T09:00:00")
    assert conversation["finished_at"].startswith("2026-03-12T09:04:00")


async def test_a_thread_keeps_bots_but_not_joins_or_deleted_messages(env, slack):
    await link(env, ADA)
    thread_ts = slack.fake.add_thread(GENERAL, FIVE_MESSAGES[:2])
    thread = slack.fake.threads[(GENERAL, thread_ts)].messages
    thread[0] |= {"subtype": "tombstone", "text": "This message was deleted."}
    thread.append({"type": "message", "subtype": "channel_join", "user": ALAN.id, "ts": "1773306100.000250"})
    bot = {"subtype": "bot_message", "bot_id": "B0CI00001", "username": "CI", "text": "build #42 passed"}
    thread.append({"type": "message", "ts": "1773306110.000260", **bot})
    await slack.save_thread(ADA, thread_ts)
    await slack.fake.said("Saved 2 messages from Ada Lovelace, CI", method="chat.postMessage")
    [conversation] = env.sandbox.conversations(env.uid)
    assert (
        conversation["external_data"]["text"]
        == "Ada Lovelace: I will write the **release notes**\n\nCI: build #42 passed"
    )


async def test_a_thread_the_bot_cannot_read_gets_a_clear_answer_and_nothing_is_saved(env, slack):
    await link(env, ADA)
    thread_ts = slack.fake.add_thread(GENERAL, FIVE_MESSAGES)
    slack.fake.fail("conversations.replies", "not_in_channel")
    await slack.save_thread(ADA, thread_ts)
    answer = await slack.fake.said("Invite me to #general first: /invite @omi-bridge")
    assert answer.args["response_type"] == "ephemeral"
    await env.settle()
    assert env.sandbox.conversations(env.uid) == []
    assert await env.store.inbox.pending_count() == 0  # answered and done, not left to be replayed


async def test_a_rate_limited_page_is_fetched_again_after_retry_after(env, slack):
    await link(env, ADA)
    thread_ts = slack.fake.add_thread(GENERAL, FIVE_MESSAGES)
    slack.fake.fail("conversations.replies", "ratelimited", status=429, retry_after=0)
    await slack.save_thread(ADA, thread_ts)
    await slack.fake.said("Saved 5 messages", method="chat.postMessage")
    assert len(slack.fake.calls_to("conversations.replies")) == 4  # the refused first page, then three pages
    [conversation] = env.sandbox.conversations(env.uid)
    assert conversation["external_data"]["text"].count("\n\n") == 4


async def test_saving_needs_a_link(env, slack):
    await slack.save_message(GRACE, fixture("shortcut_save_to_omi")["message"])
    answer = await slack.fake.said("not linked")
    assert "/omi link" in answer.text
    assert env.sandbox.conversations(env.uid) == []
