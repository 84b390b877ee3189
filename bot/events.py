"""Platform-neutral inbound messages and outbound replies: what adapters translate to and from."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, Literal


class Platform(StrEnum):
    TELEGRAM = "telegram"
    SLACK = "slack"
    CONSOLE = "console"

    @property
    def title(self) -> str:  # type: ignore[override]
        return {"telegram": "Telegram", "slack": "Slack", "console": "Console"}[self.value]


ChatKind = Literal["private", "group", "channel"]
OriginKind = Literal["user", "hidden_user", "chat", "channel"]
#: What a message carries that the bridge cannot save yet, by the platform's name for it (answered with a clear
#: reply, never silence): "voice", "video_note", "video", "audio", "sticker", "photo", "animation", "document",
#: a newer kind ("story", "dice", …, or a field name this bridge has never heard of), "other" when unnamed.
Unsupported = str


def session_key(platform: Platform | str, chat_id: object, user_id: object) -> str:
    """Which conversation a message belongs to: one chat user in one chat (nonebot's `get_session_id`). The one
    place the key is built: messages, bursts and the adapters' cheap look at a stored payload all use it, so
    processing and bursts agree on whose rows are still waiting."""
    return f"{Platform(platform).value}:{chat_id}:{user_id}"


@dataclass(frozen=True, slots=True)
class ForwardOrigin:
    """Who originally wrote a forwarded message, and when (Telegram's four `forward_origin` kinds)."""

    kind: OriginKind
    name: str  # already as SPEC §6 wants it: "First Last", a hidden user's name, "Title (Signature)"
    date: datetime | None = None  # the ORIGINAL send time, aware UTC
    handle: str | None = None


@dataclass(frozen=True, slots=True)
class Location:
    latitude: float
    longitude: float
    #: A venue's name and street address (Telegram `venue`); None for a plain location.
    title: str | None = None
    address: str | None = None


@dataclass(frozen=True, slots=True)
class Contact:
    name: str
    phone: str


@dataclass(frozen=True, slots=True)
class Command:
    """A command addressed to the bot: `/remember foo` → name "remember", args "foo"."""

    name: str
    args: str = ""
    #: Words in `args` written `#word` that refer to something (a Slack channel mention): never hashtags.
    references: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Attachment:
    """A file sent with a message that the bridge does not read at parse time (a Telegram `result.json` to import,
    SPEC §10): what the platform says of it, and `ref`, the adapter's handle to fetch it (Telegram's file_id)."""

    name: str
    size: int | None  # bytes, as the platform announces it (None: not said)
    ref: str


AudioKind = Literal["voice", "audio", "video_note"]


@dataclass(frozen=True, slots=True)
class Audio:
    """A voice message, audio file or video note to transcribe (SPEC §11), as the platform announced it. The bytes
    are fetched later, by the transcription job, through `ref` (the adapter's handle: Telegram's file_id, Slack's
    file id)."""

    kind: AudioKind
    ref: str
    duration: float | None = None  # seconds, when the platform says
    size: int | None = None  # bytes, when the platform says
    mime: str = "application/octet-stream"
    filename: str = "audio"


def clock_text(seconds: float | None) -> str:
    """A duration as people read one: `0:42`, `12:05`, `1:02:03`; "" when unknown."""
    if seconds is None or seconds < 0:
        return ""
    total = round(seconds)
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


@dataclass(frozen=True, slots=True)
class Address:
    """Where replies about a message go, kept on outbox items so outcomes find their way back after a restart."""

    platform: Platform
    chat_id: str
    user_id: str
    message_id: str | None = None  # the message to react to or reply to
    private: bool = True  # False in groups: answers about a user's data go to their private chat instead
    extra: dict[str, str] = field(default_factory=dict)  # platform hints, e.g. a Slack response_url

    def to_dict(self) -> dict[str, Any]:
        return {
            "platform": self.platform.value,
            "chat_id": self.chat_id,
            "user_id": self.user_id,
            "message_id": self.message_id,
            "private": self.private,
            "extra": dict(self.extra),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Address:
        return cls(
            platform=Platform(data["platform"]),
            chat_id=str(data["chat_id"]),
            user_id=str(data["user_id"]),
            message_id=data.get("message_id"),
            private=bool(data.get("private", True)),
            extra=dict(data.get("extra") or {}),
        )


@dataclass(slots=True)
class InboundMessage:
    """One message from a chat user, whatever the platform. `raw` keeps the platform payload."""

    platform: Platform
    chat_id: str
    sender_id: str
    sender_name: str  # display name of the person who sent it to the bot ("First Last")
    message_id: str
    sequence: int  # orders messages of one chat: Telegram message_id, Slack ts in microseconds, a counter
    sent_at: datetime  # the platform's date of this message (for a forward: when it was forwarded), aware UTC
    text: str = ""  # Markdown, links kept; a caption for media
    chat_kind: ChatKind = "private"
    forward_origin: ForwardOrigin | None = None
    media_group_id: str | None = None
    reply_to: InboundMessage | None = None
    location: Location | None = None
    contact: Contact | None = None
    language: str | None = None
    command: Command | None = None
    unsupported: Unsupported | None = None
    edited: bool = False  # an edit of `message_id`, which replaces its text inside a burst's window
    document_name: str | None = None
    #: A file sent with the message, other than a text document (whose content is `text`).
    attachment: Attachment | None = None
    #: A voice message, audio file or video note (SPEC §11); `text` is then its caption, if any.
    audio: Audio | None = None
    #: What was heard in `audio`, set when its burst closes; `untranscribed`: why nothing was, when it failed for
    #: good (the fixed phrase of SPEC §11).
    transcript: str | None = None
    untranscribed: str | None = None
    #: Messages a command acts on as one conversation (a Slack thread for `save`), in any order.
    attached: tuple[InboundMessage, ...] = ()
    #: When the bridge accepted it (its receive clock, epoch seconds): bursts are measured on this.
    received_at: float = 0.0
    #: Platform hints for replies, copied into `address().extra` (e.g. a Slack response_url).
    address_extra: dict[str, str] = field(default_factory=dict)

    @property
    def session_key(self) -> str:
        """Which conversation this belongs to: see `session_key`."""
        return session_key(self.platform, self.chat_id, self.sender_id)

    @property
    def account(self) -> str:
        """The linked-account key: `telegram:12345`."""
        return f"{self.platform.value}:{self.sender_id}"

    @property
    def original_time(self) -> datetime:
        """When the words were first written: a forward's original date, else this message's date."""
        if self.forward_origin is not None and self.forward_origin.date is not None:
            return self.forward_origin.date
        return self.sent_at

    def address(self) -> Address:
        return Address(
            platform=self.platform,
            chat_id=self.chat_id,
            user_id=self.sender_id,
            message_id=self.message_id,
            private=self.chat_kind == "private",
            extra=dict(self.address_extra),
        )


@dataclass(frozen=True, slots=True)
class Button:
    label: str
    data: str  # opaque callback data, ≤ 64 bytes (Telegram's limit)


@dataclass(frozen=True, slots=True)
class Reply:
    """Something to show a user. An adapter that cannot do `reaction` sends `text` instead."""

    address: Address
    text: str = ""
    buttons: tuple[Button, ...] = ()
    reaction: str | None = None  # an emoji on `address.message_id`
    ephemeral: bool = False  # Slack: only the user sees it
    #: Replace the text (and buttons) of `address.message_id`, a message the bot sent, instead of sending a new one
    #: (an import's summary becoming its progress). An adapter that cannot edit sends `text` as a new message.
    edit: bool = False
