"""Importing a Slack channel through the Web API (SPEC §10): every page, oldest first, threads in place after their
parent, Retry-After honoured, names asked once, and Slack's refusals said plainly — against the fake Slack."""

from __future__ import annotations

from collections import Counter

import pytest

from adapters.slack.history import MAX_WAITS, channel_info, import_client, read_channel
from bot.importing.model import EXIT_FAILED, EXIT_USAGE, ChatInfo, ImportedMessage, ImportRefused
from tests.slack.fake_slack import BOT_TOKEN, FakeSlack
from tests.slack.workspace import ADA, ALAN, GRACE

CHANNEL = "C0DESIGN01"


def ts(minute: int) -> str:
    """A message time: minutes after 2024-03-01 10:00 UTC."""
    return f"{1709287200 + minute * 60}.000100"


class Sleeps:
    """The injected sleep: records what it was asked to wait, waits for nothing."""

    def __init__(self) -> None:
        self.seconds: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.seconds.append(seconds)


async def read(
    fake: FakeSlack,
    channel: str = CHANNEL,
    *,
    oldest: float | None = None,
    latest: float | None = None,
    sleep: Sleeps | None = None,
    token: str = BOT_TOKEN,
    into: list[ImportedMessage] | None = None,
    pages: list[int] | None = None,
) -> list[ImportedMessage]:
    messages = [] if into is None else into
    client = import_client(token, fake.api_url)
    on_page = pages.append if pages is not None else None
    reading = read_channel(client, channel, oldest=oldest, latest=latest, sleep=sleep or Sleeps(), on_page=on_page)
    async for message in reading:
        messages.append(message)
    return messages


@pytest.fixture
def fake(fake_slack: FakeSlack) -> FakeSlack:
    for person in (ADA, GRACE, ALAN):
        fake_slack.add_user(person.id, person.name)
    fake_slack.add_channel(CHANNEL, "design")
    return fake_slack


async def test_a_channel_comes_out_oldest_first_across_pages(fake):
    for minute in range(7):
        fake.post(CHANNEL, ts(minute), f"message {minute}", user=(ADA, GRACE)[minute % 2].id)
    pages: list[int] = []
    messages = await read(fake, pages=pages)
    assert pages == [2, 4, 6, 7]  # messages read so far, after each page
    assert [message.text for message in messages] == [f"message {minute}" for minute in range(7)]
    assert [message.author for message in messages[:2]] == ["Ada Lovelace", "Grace Hopper"]
    assert {(message.source, message.chat) for message in messages} == {("slack", CHANNEL)}
    assert [message.message_id for message in messages] == [ts(minute) for minute in range(7)]
    assert messages[0].sent_at.isoformat() == "2024-03-01T10:00:00.000100+00:00"
    pages = fake.calls_to("conversations.history")
    assert [call.args.get("cursor") for call in pages] == [None, "page_2", "page_4", "page_6"]  # page size 2
    assert {call.args["limit"] for call in pages} == {"200"}


async def test_a_thread_comes_right_after_its_parent_and_nothing_twice(fake):
    fake.post(CHANNEL, ts(0), "before the thread", user=GRACE.id)
    parent = fake.add_thread(
        CHANNEL,
        [
            (ADA.id, ts(1), "shall we ship on Friday?"),
            (GRACE.id, ts(2), "yes"),
            (ALAN.id, ts(5), "after the tests"),
            (ADA.id, ts(9), "agreed, Friday"),
        ],
    )
    fake.threads[(CHANNEL, parent)].messages[3]["subtype"] = "thread_broadcast"  # also in the channel's history
    fake.post(CHANNEL, ts(3), "meanwhile in the channel", user=ALAN.id)
    fake.post(CHANNEL, ts(4), "lunch?", user=GRACE.id)
    messages = await read(fake)
    assert [message.text for message in messages] == [
        "before the thread",
        "shall we ship on Friday?",
        "yes",
        "after the tests",
        "agreed, Friday",
        "meanwhile in the channel",
        "lunch?",
    ]
    replies = fake.calls_to("conversations.replies")
    assert [(call.args["ts"], call.args.get("cursor")) for call in replies] == [(parent, None), (parent, "page_2")]


@pytest.mark.parametrize("method", ["conversations.history", "conversations.replies", "users.info"])
async def test_a_429_is_waited_out_for_as_long_as_retry_after_says(fake, method):
    fake.post(CHANNEL, ts(0), "hello", user=ADA.id)
    fake.add_thread(CHANNEL, [(GRACE.id, ts(1), "a question"), (ADA.id, ts(2), "an answer")])
    fake.rate_limit(method, retry_after=7)
    sleeps = Sleeps()
    messages = await read(fake, sleep=sleeps)
    assert sleeps.seconds == [7.0]
    assert [message.text for message in messages] == ["hello", "a question", "an answer"]
    assert [message.author for message in messages] == ["Ada Lovelace", "Grace Hopper", "Ada Lovelace"]


async def test_without_rate_limits_nothing_waits(fake):
    fake.post(CHANNEL, ts(0), "hello", user=ADA.id)
    sleeps = Sleeps()
    await read(fake, sleep=sleeps)
    assert sleeps.seconds == []


async def test_slack_rate_limiting_without_end_gives_up_with_a_clear_line(fake):
    fake.post(CHANNEL, ts(0), "hello", user=ADA.id)
    fake.rate_limit("conversations.history", retry_after=1, times=MAX_WAITS + 1)
    sleeps = Sleeps()
    with pytest.raises(ImportRefused) as refused:
        await read(fake, sleep=sleeps)
    assert len(sleeps.seconds) == MAX_WAITS
    assert "rate limited" in refused.value.message
    assert refused.value.code == EXIT_FAILED


async def test_names_are_asked_once_per_person_and_text_reads_as_in_the_bridge(fake):
    fake.add_channel("C0RANDOM01", "random")
    fake.post(CHANNEL, ts(0), f"<@{GRACE.id}> see <https://example.com/spec|the *spec*>", user=ADA.id)
    fake.post(CHANNEL, ts(1), f"thanks <@{ADA.id}>, moving it to <#C0GENERAL1|general>", user=GRACE.id)
    fake.post(CHANNEL, ts(2), "and <#C0RANDOM01>", user=GRACE.id)
    fake.post(CHANNEL, ts(3), "the notes", user=ADA.id, subtype="file_share", files=[{"name": "notes.pdf"}])
    fake.post(CHANNEL, ts(4), "build #42 passed", subtype="bot_message", bot_id="B0CI", bot_profile={"name": "CI"})
    fake.post(CHANNEL, ts(5), "", user=ALAN.id, subtype="channel_join")
    fake.post(CHANNEL, ts(6), "This message was deleted.", subtype="tombstone")
    messages = await read(fake)
    assert [(message.author, message.text) for message in messages] == [
        ("Ada Lovelace", "@Grace Hopper see the **spec** (https://example.com/spec)"),
        ("Grace Hopper", "thanks @Ada Lovelace, moving it to #general"),
        ("Grace Hopper", "and #random"),
        ("Ada Lovelace", "[file notes.pdf]\nthe notes"),
        ("CI", "build #42 passed"),
    ]
    asked = Counter(call.args["user"] for call in fake.calls_to("users.info"))
    assert asked == {ADA.id: 1, GRACE.id: 1}


async def test_an_author_slack_cannot_show_keeps_the_name_on_the_message(fake):
    fake.post(CHANNEL, ts(0), "from an old account", user="U0GONE0001", username="old-ada")
    [message] = await read(fake)
    assert message.author == "old-ada"


async def test_only_the_window_between_oldest_and_latest_is_read(fake):
    fake.post(CHANNEL, ts(0), "too early", user=ADA.id)
    fake.add_thread(
        CHANNEL, [(ADA.id, ts(10), "in the window"), (GRACE.id, ts(11), "so is this"), (ALAN.id, ts(90), "late")]
    )
    fake.post(CHANNEL, ts(20), "the last one", user=GRACE.id)
    fake.post(CHANNEL, ts(30), "too late", user=GRACE.id)
    messages = await read(fake, oldest=float(ts(10)), latest=float(ts(20)))
    assert [message.text for message in messages] == ["in the window", "so is this", "the last one"]
    [first, *_] = fake.calls_to("conversations.history")
    assert (first.args["oldest"], first.args["latest"], first.args["inclusive"]) == (ts(10), ts(20), "1")


async def test_a_channel_the_bot_is_not_in_says_to_invite_it_and_hands_out_nothing(fake):
    fake.post(CHANNEL, ts(0), "hello", user=ADA.id)
    fake.leave(CHANNEL)
    got: list[ImportedMessage] = []
    with pytest.raises(ImportRefused) as refused:
        await read(fake, into=got)
    assert refused.value.message == (
        "the bot is not in #design: type /invite @omi-bridge in the channel, then import again"
    )
    assert refused.value.code == EXIT_FAILED
    assert got == []


async def test_a_thread_the_bot_may_no_longer_read_stops_the_import_before_anything_is_handed_out(fake):
    fake.post(CHANNEL, ts(0), "hello", user=ADA.id)
    fake.add_thread(CHANNEL, [(GRACE.id, ts(1), "a question"), (ADA.id, ts(2), "an answer")])
    fake.fail("conversations.replies", "not_in_channel")
    got: list[ImportedMessage] = []
    with pytest.raises(ImportRefused) as refused:
        await read(fake, into=got)
    assert "/invite @omi-bridge" in refused.value.message
    assert got == []


@pytest.mark.parametrize(
    ("method", "needed", "named"),
    [
        ("conversations.history", "channels:history", "channels:history"),
        ("conversations.history", None, "channels:history (groups:history for a private channel)"),
        ("users.info", None, "users:read"),
    ],
)
async def test_a_missing_scope_is_named_with_the_advice_to_reinstall(fake, method, needed, named):
    fake.post(CHANNEL, ts(0), "hello", user=ADA.id)
    fake.fail(method, "missing_scope", **({"needed": needed} if needed else {}))
    got: list[ImportedMessage] = []
    with pytest.raises(ImportRefused) as refused:
        await read(fake, into=got)
    assert f"lacks the {named} scope that {method} needs" in refused.value.message
    assert "reinstall the app" in refused.value.message
    assert refused.value.code == EXIT_FAILED
    assert got == []


async def test_an_unknown_channel_is_a_usage_error(fake):
    with pytest.raises(ImportRefused) as refused:
        await read(fake, "C0NOSUCH01")
    assert refused.value.message.startswith("Slack has no channel C0NOSUCH01 that the bot can see")
    assert refused.value.code == EXIT_USAGE


async def test_a_wrong_token_is_said_plainly_before_any_history_is_asked_for(fake):
    with pytest.raises(ImportRefused) as refused:
        await read(fake, token="xoxb-not-the-token")
    assert "Slack refused the bot token (invalid_auth): check SLACK_BOT_TOKEN" in refused.value.message
    assert refused.value.code == EXIT_FAILED
    assert fake.calls_to("conversations.history") == []


async def test_a_channel_is_described_by_its_name_and_kind(fake):
    fake.add_channel("G0SECRET01", "plans", private=True)
    client = import_client(BOT_TOKEN, fake.api_url)
    assert await channel_info(client, CHANNEL) == ChatInfo(CHANNEL, "design", "channel")
    assert await channel_info(client, "G0SECRET01") == ChatInfo("G0SECRET01", "plans", "private")
    with pytest.raises(ImportRefused) as refused:
        await channel_info(client, "C0NOSUCH01")
    assert refused.value.code == EXIT_USAGE
