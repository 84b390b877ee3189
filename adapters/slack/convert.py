"""Stored Slack payloads → neutral `InboundMessage`s (real names, readable text, times from `ts`).

The payloads were stored as they came (jobs.py takes in any shape): a field the parser cannot use is read as
absent where the message still makes sense without it, and `UnreadableJob` says why otherwise."""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime
from typing import Any

from adapters.slack.channels import ChannelDirectory
from adapters.slack.files import audio_of
from adapters.slack.jobs import as_dict, as_str
from adapters.slack.markup import mentioned_users, referenced_channels, slack_to_markdown, unlabelled_channels
from adapters.slack.people import Directory, SlackPerson
from bot.events import Command, ForwardOrigin, InboundMessage, Platform, Unsupported

#: Slack lets a response_url be used for 30 minutes (and 5 times: send.py counts those).
RESPONSE_URL_SECONDS = 30 * 60
_TS = re.compile(r"[0-9]{1,12}(?:\.[0-9]{1,6})?")


class UnreadableJob(Exception):
    """A stored request without what its kind needs (a user to answer, first of all)."""


def ts_time(ts: str) -> datetime:
    """Slack's `ts` ("1712345678.123456") is the message's send time in UTC seconds."""
    return datetime.fromtimestamp(float(ts), UTC)


def ts_sequence(ts: str) -> int:
    """`ts` in microseconds: orders the messages of a chat exactly (a float would round)."""
    seconds, _, fraction = ts.partition(".")
    return int(seconds) * 1_000_000 + int((fraction + "000000")[:6])


def parse_ts(value: object) -> str | None:
    """A `ts` as Slack writes it ("1712345678.123456"), from a string or a number (attachments carry either);
    None for anything else."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        if not math.isfinite(value) or not 0 <= value < 10**12:
            return None
        value = f"{value:.6f}"
    if isinstance(value, str) and _TS.fullmatch(value):
        return value
    return None


async def readable_text(text: str, people: Directory, channels: ChannelDirectory | None = None) -> str:
    """Slack markup as Markdown, mentions with real names and channels with their names (looked up, cached)."""
    if not text:
        return ""
    channel_names = await channels.names(unlabelled_channels(text)) if channels is not None else {}
    return slack_to_markdown(text, await people.names(mentioned_users(text)), channel_names)


async def command_text(text: str, people: Directory, channels: ChannelDirectory | None) -> Command:
    """A command's text read as Slack markup; the channels it mentions are kept as references (SPEC §6: a
    `#name` from a channel mention is never a hashtag)."""
    channel_names = await channels.names(unlabelled_channels(text)) if channels is not None else {}
    command = parse_command_text(await readable_text(text, people, channels))
    return Command(command.name, command.args, references=referenced_channels(text, channel_names))


def _invoker(
    *,
    person: SlackPerson,
    chat_id: str,
    message_id: str,
    received_at: float,
    response_url: str | None,
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
    )


def parse_command_text(text: str) -> Command:
    """`/omi remember buy milk` → Command("remember", "buy milk"); `/omi` alone → help."""
    words = text.strip().split(maxsplit=1)  # any whitespace: "remember\n- a\n- b" keeps its lines
    if not words:
        return Command("help")
    return Command(words[0].lower(), words[1].strip() if len(words) > 1 else "")


async def _person(people: Directory, user_id: object, fallback_name: object = None) -> SlackPerson:
    if not as_str(user_id):
        raise UnreadableJob("no user")
    return await people.person(as_str(user_id), as_str(fallback_name) or None)


def _trigger(body: dict[str, Any], received_at: float) -> str:
    return as_str(body.get("trigger_id")) or str(received_at)


def _response_url(body: dict[str, Any]) -> str | None:
    url = as_str(body.get("response_url"))
    return url if url.startswith(("https://", "http://")) else None


async def command_message(
    body: dict[str, Any], received_at: float, people: Directory, channels: ChannelDirectory | None = None
) -> InboundMessage:
    """`/omi …`: the manifest has Slack escape the text, so mentions arrive as ids and are shown as real names."""
    person = await _person(people, body.get("user_id"), body.get("user_name"))
    return _invoker(
        person=person,
        chat_id=as_str(body.get("channel_id")),
        message_id=_trigger(body, received_at),
        received_at=received_at,
        response_url=_response_url(body),
        command=await command_text(as_str(body.get("text")), people, channels),
    )


async def action_message(body: dict[str, Any], received_at: float, people: Directory) -> InboundMessage:
    """A click on a bridge button: its value is the core's Button.data, e.g. "recent 5 @5"."""
    user = as_dict(body.get("user"))
    person = await _person(people, user.get("id"), user.get("name"))
    actions = body.get("actions")
    value = as_dict(actions[0]).get("value") if isinstance(actions, list) and actions else None
    name, _, args = as_str(value).partition(" ")
    if not name:
        raise UnreadableJob("no button value")
    channel = as_str(as_dict(body.get("channel")).get("id")) or as_str(as_dict(body.get("container")).get("channel_id"))
    return _invoker(
        person=person,
        chat_id=channel,
        message_id=_trigger(body, received_at),
        received_at=received_at,
        response_url=_response_url(body),
        command=Command(name, args),
    )


async def shortcut_invoker(body: dict[str, Any], received_at: float, people: Directory) -> InboundMessage:
    """The user behind a message shortcut, asking to `save` (what is saved is added by the caller)."""
    user = as_dict(body.get("user"))
    person = await _person(people, user.get("id"), user.get("name") or user.get("username"))
    return _invoker(
        person=person,
        chat_id=as_str(as_dict(body.get("channel")).get("id")),
        message_id=_trigger(body, received_at),
        received_at=received_at,
        response_url=_response_url(body),
        command=Command("save"),
    )


def _unsupported(message: dict[str, Any]) -> Unsupported | None:
    files = message.get("files")
    if not isinstance(files, list) or not files:
        return None
    mimetype = as_str(as_dict(files[0]).get("mimetype"))
    for prefix, kind in (("image/", "photo"), ("audio/", "audio"), ("video/", "video")):
        if mimetype.startswith(prefix):
            return kind
    return "document"


async def _author(message: dict[str, Any], people: Directory) -> SlackPerson:
    if as_str(message.get("user")):
        return await people.person(as_str(message.get("user")), as_str(message.get("username")) or None)
    # A bot's or an integration's message: no user, a display name on the message itself.
    name = as_str(as_dict(message.get("bot_profile")).get("name")) or as_str(message.get("username")) or "Bot"
    return SlackPerson(id=as_str(message.get("bot_id")) or "bot", name=name)


def _is_share(attachment: dict[str, Any]) -> bool:
    """A message shared (or linked and unfurled) into this one: written by someone, at its own time."""
    return bool(
        attachment.get("is_share")
        or attachment.get("is_msg_unfurl")
        or as_str(attachment.get("author_id"))
        or (attachment.get("from_url") and parse_ts(attachment.get("ts")))
    )


async def _attachment_words(attachment: dict[str, Any], people: Directory, channels: ChannelDirectory | None) -> str:
    """What an attachment shows in words: a share's text; otherwise its pretext, title, text and fields (the
    plain `fallback` when it has none of them)."""
    if _is_share(attachment):
        pieces = [as_str(attachment.get("text"))]
    else:
        title = as_str(attachment.get("title"))
        link = as_str(attachment.get("title_link"))
        pieces = [as_str(attachment.get("pretext")), f"{title} ({link})" if title and link else title]
        pieces.append(as_str(attachment.get("text")))
        fields = attachment.get("fields")
        for field in fields if isinstance(fields, list) else []:
            field = as_dict(field)
            label, value = as_str(field.get("title")), as_str(field.get("value"))
            pieces.append(f"{label}: {value}" if label and value else value)
    words = [await readable_text(piece, people, channels) for piece in pieces if piece.strip()]
    text = "\n".join(word.strip() for word in words if word.strip())
    return text or as_str(attachment.get("fallback")).strip()


async def _share_origin(attachment: dict[str, Any], people: Directory) -> ForwardOrigin:
    """The shared message's original author (real name via users.info, cached) and time (the attachment's ts)."""
    author_id = as_str(attachment.get("author_id"))
    fallback = as_str(attachment.get("author_name")) or as_str(attachment.get("author_subname"))
    if author_id:
        name = (await people.person(author_id, fallback or None)).name
    else:
        name = fallback or as_str(attachment.get("service_name")) or "Unknown"
    ts = parse_ts(attachment.get("ts"))
    return ForwardOrigin(kind="user", name=name, date=ts_time(ts) if ts else None)


async def _content(
    message: dict[str, Any], people: Directory, channels: ChannelDirectory | None
) -> tuple[str, list[tuple[ForwardOrigin, str]]]:
    """A message's own words (or, without them, its attachments' words) and the messages shared into it."""
    own = await readable_text(as_str(message.get("text")), people, channels)
    listed = message.get("attachments")
    attachments = [item for item in listed if isinstance(item, dict)] if isinstance(listed, list) else []
    shares = [
        (await _share_origin(attachment, people), words)
        for attachment in attachments
        if _is_share(attachment) and (words := await _attachment_words(attachment, people, channels))
    ]
    if not own.strip() and not shares:
        # Words only in attachments (an integration's message, a card): those are the message.
        found = [await _attachment_words(attachment, people, channels) for attachment in attachments]
        own = "\n\n".join(words for words in found if words)
    return own, shares


def _with_shares(own: str, shares: list[tuple[ForwardOrigin, str]]) -> tuple[str, ForwardOrigin | None]:
    """One Slack message can carry a comment and several shared messages; the neutral message has one origin.
    The first share is the message (under its author), further ones and the comment are written as the core
    writes forwards and notes (`Name: text`, `Note: text`), so nothing is lost and authors stay attributed."""
    if not shares:
        return own, None
    (origin, text), rest = shares[0], shares[1:]
    blocks = [text, *(f"{other.name}: {words}" for other, words in rest)]
    if own.strip():
        blocks.append(f"Note: {own.strip()}")
    return "\n\n".join(blocks), origin


async def channel_message(
    message: dict[str, Any], channel_id: str, people: Directory, channels: ChannelDirectory | None = None
) -> InboundMessage:
    """A message someone wrote in a channel (a shortcut's target, a thread's message): its author's real name,
    its own time, as an attributed origin so the core writes `Name: text` blocks. A message that only shares
    another is saved under that one's author and time."""
    message = as_dict(message)
    ts = parse_ts(message.get("ts"))
    if ts is None:
        raise UnreadableJob("a message without its ts")
    author = await _author(message, people)
    sent_at = ts_time(ts)
    own, shares = await _content(message, people, channels)
    origin = ForwardOrigin(kind="user", name=author.name, date=sent_at)
    if shares and not own.strip():
        (origin, text), shares = shares[0], shares[1:]
    else:
        text = own
    text = "\n\n".join([text, *(f"{share.name}: {words}" for share, words in shares)])
    return InboundMessage(
        platform=Platform.SLACK,
        chat_id=channel_id,
        sender_id=author.id,
        sender_name=author.name,
        message_id=ts,
        sequence=ts_sequence(ts),
        sent_at=sent_at,
        text=text,
        chat_kind="group",
        forward_origin=origin,
        language=author.language,
        unsupported=None if text.strip() else _unsupported(message),
    )


async def direct_message(
    body: dict[str, Any], people: Directory, channels: ChannelDirectory | None = None, received_at: float = 0.0
) -> InboundMessage:
    """A message in the user's DM with the bot: plain text for a burst (or an edit of one). A message shared
    into the DM is saved under its original author and time; the user's comment on it becomes the note."""
    event = as_dict(body.get("event"))
    edited = event.get("subtype") == "message_changed"
    if edited:
        event = {**as_dict(event.get("message")), "channel": event.get("channel")}
    person = await _person(people, event.get("user"))
    ts = parse_ts(event.get("ts")) or parse_ts(event.get("event_ts"))
    own, shares = await _content(event, people, channels)
    text, origin = _with_shares(own, shares)
    return InboundMessage(
        platform=Platform.SLACK,
        chat_id=as_str(event.get("channel")) or person.id,
        sender_id=person.id,
        sender_name=person.name,
        # Without a ts (an odd payload) the message is still saved, ordered by when it was received.
        message_id=ts or f"received:{received_at:.6f}",
        sequence=ts_sequence(ts) if ts else int(received_at * 1_000_000),
        sent_at=ts_time(ts) if ts else datetime.fromtimestamp(received_at, UTC),
        text=text,
        chat_kind="private",
        forward_origin=origin,
        language=person.language,
        unsupported=None if text.strip() else _unsupported(event),
        # Only in the DM (a shortcut on a channel message is not transcribed), and not again for an edit.
        audio=None if edited else audio_of(event),
        edited=edited,
    )
