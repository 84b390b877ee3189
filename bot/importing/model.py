"""What every import source yields, and how a refused import is said (SPEC §10)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

#: Exit codes of `omi-bridge import` (SPEC §10).
EXIT_OK = 0
EXIT_FAILED = 1  # not linked, not in the channel, some items failed for good
EXIT_USAGE = 2  # invalid or unreadable file, wrong layout, bad flags
EXIT_INTERRUPTED = 130


@dataclass(frozen=True, slots=True)
class ImportedMessage:
    """One message of the past, source-neutral. `chat` and `message_id` key the ledger (ids only are kept)."""

    source: str  # "telegram" | "slack"
    chat: str  # Telegram chat id / Slack channel id, as the ledger keys it
    message_id: str  # unique within the chat (Slack: the message ts)
    author: str  # as SPEC §10 shows it: "Alice", "Bob (forwarded from Carol)", a channel's name
    text: str  # Markdown (SPEC §6), media placeholders ("[photo]", "[voice message 0:12]"…) then the caption
    sent_at: datetime  # aware, UTC


@dataclass(frozen=True, slots=True)
class ChatInfo:
    """A chat an export holds (for `--chat` and the error listing them)."""

    id: str
    name: str
    type: str
    messages: int | None = None


class ImportRefused(Exception):
    """The import cannot go ahead: one clear line for the user, and the exit code (SPEC §10)."""

    def __init__(self, message: str, code: int = EXIT_USAGE) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
