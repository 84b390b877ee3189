"""Stored Slack payloads → neutral `InboundMessage`s (real names, readable text, times from `ts`)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from adapters.slack.markup import mentioned_users, slack_to_markdown
from adapters.slack.people import Directory, SlackPerson
from bot.events import Command, ForwardOrigin, InboundMessage, Platform, Unsupported

#: Slack lets a response_url be used for 30 minutes (and 5 times: send.py counts those).
RESPONSE_URL_SECONDS = 30 * 60


def ts_time(ts: str) -> datetime:
    """Slack's `ts` ("1712345678.123456") is the message's send time in UTC seconds."""
    return datetime.fromtimestamp(float(ts), UTC)


def ts_sequence(ts: str) -> int:
    """`ts` in microseconds: orders the messages of a chat exactly (a float would round)."""
    seconds, _, fraction = ts.partition(".")
    return int(seconds) * 1_000_000 + int((fraction + "000000")[:6])


async def readable_text(text: str, people: Directory) -> str:
    """Slack markup as Markdown, mentions with real names (looked up, cached)."""
    if not text:
        return ""
    return slack_to_markdown(text, await people.names(mentioned_users(text)))


def _invoker(
    *,
    person: SlackPerson,
    chat_id: str,
    message_id: str,
    received_at: float,
    response_url: str | None,
    raw: dict[str, Any],
    command: Command,
) -> InboundMessage:
    """The user who typed a command, used a shortcut or clicked a button. Every answer to them is ephemeral or
    a DM, so it counts as a private chat (the core then answers there instead of redirecting)."""
    extra = {}
    if response_url:
        extra = {"response_url": response_url, "response_url_expires": str(received_at + RESPONSE_URL_SECONDS)}
    return InboundMessage(
        platform=Platform.SLACK,
        chat_id=chat_id or person.id,
        sender_id=person.id,
        sender_name=person.name,
        message_id=message_id,
        sequence=int(received_at * 1_000_000),
        sent_at=datetime.fromtimestamp(received_at, UTC),
        chat_kind="private",
        language=person.language,
        command=command,
        address_extra=extra,
        raw=raw,
    )


def parse_command_text(text: str) -> Command:
    """`/omi remember buy milk` → Command("remember", "buy milk"); `/omi` alone → help."""
    words = text.strip().split(maxsplit=1)  # any whitespace: "remember\n- a\n- b" keeps its lines
    if not words:
        return Command("help")
    return Command(words[0].lower(), words[1].strip() if len(words) > 1 else "")


async def command_message(body: dict[str, Any], received_at: float, people: Directory) -> InboundMessage:
    """`/omi …`: the manifest has Slack escape the text, so mentions arrive as ids and are shown as real names."""
    person = await people.person(body["user_id"], body.get("user_name"))
    return _invoker(
        person=person,
        chat_id=body.get("channel_id", ""),
        message_id=body.get("trigger_id") or str(received_at),
        received_at=received_at,
        response_url=body.get("response_url"),
        raw=body,
        command=parse_command_text(await readable_text(body.get("text", ""), people)),
    )


async def action_message(body: dict[str, Any], received_at: float, people: Directory) -> InboundMessage:
    """A click on a bridge button: its value is the core's Button.data, e.g. "recent 5 @5"."""
    user = body.get("user") or {}
    person = await people.person(user["id"], user.get("name"))
    name, _, args = str(body["actions"][0]["value"]).partition(" ")
    channel = (body.get("channel") or {}).get("id") or (body.get("container") or {}).get("channel_id", "")
    return _invoker(
        person=person,
        chat_id=channel,
        message_id=body.get("trigger_id") or str(received_at),
        received_at=received_at,
        response_url=body.get("response_url"),
        raw=body,
        command=Command(name, args),
    )


async def shortcut_invoker(body: dict[str, Any], received_at: float, people: Directory) -> InboundMessage:
    """The user behind a message shortcut, asking to `save` (what is saved is added by the caller)."""
    user = body.get("user") or {}
    person = await people.person(user["id"], user.get("name") or user.get("username"))
    return _invoker(
        person=person,
        chat_id=(body.get("channel") or {}).get("id", ""),
        message_id=body.get("trigger_id") or str(received_at),
        received_at=received_at,
        response_url=body.get("response_url"),
        raw={key: value for key, value in body.items() if key != "message"},
        command=Command("save"),
    )


def _unsupported(message: dict[str, Any]) -> Unsupported | None:
    files = message.get("files") or []
    if not files:
        return None
    mimetype = str(files[0].get("mimetype", ""))
    for prefix, kind in (("image/", "photo"), ("audio/", "audio"), ("video/", "video")):
        if mimetype.startswith(prefix):
            return kind  # type: ignore[return-value]
    return "document"


async def _author(message: dict[str, Any], people: Directory) -> SlackPerson:
    if message.get("user"):
        return await people.person(message["user"], message.get("username"))
    # A bot's or an integration's message: no user, a display name on the message itself.
    name = (message.get("bot_profile") or {}).get("name") or message.get("username") or "Bot"
    return SlackPerson(id=message.get("bot_id") or "bot", name=str(name))


async def channel_message(message: dict[str, Any], channel_id: str, people: Directory) -> InboundMessage:
    """A message someone wrote in a channel (a shortcut's target, a thread's message): its author's real name,
    its own time, as an attributed origin so the core writes `Name: text` blocks."""
    author = await _author(message, people)
    ts = str(message["ts"])
    sent_at = ts_time(ts)
    return InboundMessage(
        platform=Platform.SLACK,
        chat_id=channel_id,
        sender_id=author.id,
        sender_name=author.name,
        message_id=ts,
        sequence=ts_sequence(ts),
        sent_at=sent_at,
        text=await readable_text(message.get("text", ""), people),
        chat_kind="group",
        forward_origin=ForwardOrigin(kind="user", name=author.name, date=sent_at),
        language=author.language,
        unsupported=None if message.get("text") else _unsupported(message),
    )


async def direct_message(body: dict[str, Any], people: Directory) -> InboundMessage:
    """A message in the user's DM with the bot: plain text for a burst (or an edit of one)."""
    event = body["event"]
    edited = event.get("subtype") == "message_changed"
    if edited:
        event = {**(event.get("message") or {}), "channel": event.get("channel")}
    person = await people.person(event["user"])
    ts = str(event["ts"])
    return InboundMessage(
        platform=Platform.SLACK,
        chat_id=event.get("channel", person.id),
        sender_id=person.id,
        sender_name=person.name,
        message_id=ts,
        sequence=ts_sequence(ts),
        sent_at=ts_time(ts),
        text=await readable_text(event.get("text", ""), people),
        chat_kind="private",
        language=person.language,
        unsupported=None if event.get("text") else _unsupported(event),
        edited=edited,
        raw=body,
    )
