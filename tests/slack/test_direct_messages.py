"""Direct messages to the bot become bursts; the bot's own messages, other subtypes and retries are answered 200
and kept out; the App Home tab shows the link, what waits and recent memories."""

from __future__ import annotations

from tests.slack.conftest import link
from tests.slack.workspace import ADA, GRACE, fixture


async def stored_rows(env) -> int:
    """Inbox rows ever stored (done or not): what was accepted from Slack."""
    row = await env.store.db.fetchone("SELECT COUNT(*) AS n FROM inbox")
    return int(row["n"])


async def test_a_burst_of_direct_messages_becomes_one_conversation(env, slack):
    await link(env, ADA)
    lines = ["Idea: a *quiet* hour every morning", "no meetings before 10", "ask <@U0GRACE01> to try it first"]
    for n, line in enumerate(lines):
        sent = await slack.write_dm(ADA, line, ts=f"1773306000.00030{n}")
        assert sent.status == 200
    await env.bridge.processor.wait_idle()
    await env.close_bursts()
    saved = await slack.fake.said("Saved 3 messages from Ada Lovelace · 12 Mar.", method="chat.postMessage")
    assert saved.args["channel"] == f"D{ADA.id}"
    [conversation] = env.sandbox.conversations(env.uid)
    assert conversation["external_data"]["text"] == (
        "Idea: a **quiet** hour every morning\n\nno meetings before 10\n\nask @Grace Hopper to try it first"
    )
    assert conversation["external_data"]["text_source"] == "other_text"
    assert conversation["external_data"]["text_source_spec"] == "slack"


async def test_an_edit_inside_the_window_replaces_the_text(env, slack):
    await link(env, ADA)
    assert (await slack.write_dm(ADA, "lunch at 12 tomorrow", ts="1773306000.000700")).status == 200
    edit = slack.dm_event(ADA, "", ts="1773306005.000100")
    edit["event"] |= {
        "subtype": "message_changed",
        "message": {
            "type": "message",
            "user": ADA.id,
            "text": "lunch at 1pm tomorrow",
            "ts": "1773306000.000700",
            "edited": {"user": ADA.id, "ts": "1773306005.000100"},
        },
    }
    edit["event"].pop("user", None)
    edit["event_id"] = "Ev0EDITLUNCH"
    assert (await slack.deliver("events_api", edit)).status == 200
    await env.bridge.processor.wait_idle()
    await env.close_bursts()
    await slack.fake.said("Saved 1 message", method="chat.postMessage")
    [conversation] = env.sandbox.conversations(env.uid)
    assert conversation["external_data"]["text"] == "lunch at 1pm tomorrow"


async def test_a_photo_without_text_gets_a_clear_answer(env, slack):
    await link(env, ADA)
    body = slack.dm_event(ADA, "", ts="1773306000.000500")
    body["event"] |= {"subtype": "file_share", "files": [{"id": "F0PHOTO01", "mimetype": "image/jpeg"}]}
    assert (await slack.deliver("events_api", body)).status == 200
    await slack.fake.said("Photos without a caption can't be saved to Omi yet.", method="chat.postMessage")
    assert env.sandbox.conversations(env.uid) == []


async def test_a_retried_event_is_processed_once(env, slack):
    await link(env, ADA)
    first = fixture("dm_event")
    retried = fixture("dm_event_retried")
    assert retried["body"]["event_id"] == first["event_id"]
    assert (await slack.deliver("events_api", first)).status == 200
    assert (await slack.deliver("events_api", retried["body"], headers=retried["headers"])).status == 200
    await env.bridge.processor.wait_idle()
    await env.close_bursts()
    await slack.fake.said("Saved 1 message", method="chat.postMessage")
    assert await stored_rows(env) == 1
    assert len(env.sandbox.conversations(env.uid)) == 1


async def test_the_bots_own_messages_and_other_subtypes_are_acknowledged_and_ignored(env, slack):
    await link(env, ADA)
    own = fixture("dm_event_from_bot")
    another_bot = fixture("dm_event_from_bot")
    another_bot["event"] |= {"bot_id": "B0OTHER01", "user": "U0OTHER01"}
    another_bot["event_id"] = "Ev0OTHERBOT1"
    edited = fixture("dm_event")
    edited["event"] |= {"subtype": "message_changed", "message": {"text": "changed"}}
    edited["event_id"] = "Ev0EDITED001"
    for body in (own, another_bot, edited):
        sent = await slack.deliver("events_api", body)
        assert sent.status == 200
    assert await stored_rows(env) == 0
    assert slack.fake.calls_to("chat.postMessage") == []


async def test_a_stranger_writing_to_the_bot_is_told_how_to_link(env, slack):
    await slack.write_dm(GRACE, "hello there", ts="1773306000.000900")
    answer = await slack.fake.said("not linked", method="chat.postMessage")
    assert answer.args["channel"] == f"D{GRACE.id}"
    assert "/omi link" in answer.text
    assert env.sandbox.conversations(env.uid) == []


async def test_home_tab_shows_the_link_waiting_items_and_recent_memories(env, slack):
    await link(env, ADA)
    env.sandbox.add_manual_memory(env.uid, "I am vegetarian", ["food"])
    sent = await slack.open_home(ADA)
    assert sent.status == 200
    [published] = await slack.fake.wait_for("views.publish")
    assert published.args["user_id"] == ADA.id
    view = published.args["view"]
    assert view["type"] == "home"
    texts = " ".join(block.get("text", {}).get("text", "") for block in view["blocks"])
    assert "linked to your Omi account" in texts
    assert "Nothing is waiting for Omi." in texts
    assert "• I am vegetarian  #food" in texts


async def test_home_tab_of_a_stranger_says_how_to_link(env, slack):
    await slack.open_home(GRACE)
    [published] = await slack.fake.wait_for("views.publish")
    texts = " ".join(block.get("text", {}).get("text", "") for block in published.args["view"]["blocks"])
    assert "/omi link" in texts
    assert "Recent memories" not in texts
