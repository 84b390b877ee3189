"""What a chat platform offers in-chat imports (SPEC §10): fetching a file a user sent, and reading it as an export.
Telegram's is `adapters.telegram.exports.TelegramExports`; the core (bot/importing/chat.py) only sees these types."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

from bot.events import Attachment
from bot.files import MAX_DOWNLOAD_BYTES, FileTooBig, FileUnavailable
from bot.importing.model import ChatInfo, ImportedMessage

__all__ = ["MAX_DOWNLOAD_BYTES", "ExportFile", "ExportSource", "FileTooBig", "FileUnavailable"]


class ExportFile(Protocol):
    """One export, validated: its chats, and a chat's messages in time order (read from the file as they go)."""

    @property
    def chats(self) -> list[ChatInfo]: ...

    def messages(self, chat: ChatInfo) -> Iterator[ImportedMessage]: ...


class ExportSource(Protocol):
    async def fetch(self, attachment: Attachment, folder: Path) -> Path:
        """The file, downloaded into `folder` (FileTooBig, FileUnavailable)."""
        ...

    def open(self, path: Path) -> ExportFile:
        """Read and validate the whole file (blocking: run it in a thread). `ImportRefused` with a message for the
        user, naming the file as they sent it."""
        ...
