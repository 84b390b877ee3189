"""In-chat imports (SPEC §10): a Telegram Desktop export a user sent the bot as a document, fetched through the Bot
API (≤ 20 MB, its download limit) and read as an export (adapters/telegram/export). What is done with it — who may,
the summary, the buttons — is the core's (bot/importing/chat.py)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

from telegram import Bot
from telegram.error import BadRequest, NetworkError, TelegramError

from adapters.telegram.export import TelegramExport
from bot.events import Attachment
from bot.importing.model import ChatInfo, ImportedMessage, ImportRefused
from bot.importing.sources import MAX_DOWNLOAD_BYTES, FileTooBig, FileUnavailable

DOWNLOAD_ATTEMPTS = 3
#: A 20 MB file over a slow link: the Bot's usual 15 s read timeout is too short for it.
DOWNLOAD_TIMEOUT_SECONDS = 120.0
DEFAULT_NAME = "result.json"


def local_name(name: str) -> str:
    """The user's file name as a plain name in our folder (never a path), kept ending `.json`."""
    plain = Path(name.replace("\\", "/")).name.strip()
    return plain if plain.lower().endswith(".json") and plain not in (".json",) else DEFAULT_NAME


class _Export:
    """A validated export whose refusals name the file as the user sent it, not our temporary copy."""

    def __init__(self, export: TelegramExport, path: Path) -> None:
        self._export = export
        self._path = path

    @property
    def chats(self) -> list[ChatInfo]:
        return self._export.chats

    def messages(self, chat: ChatInfo) -> Iterator[ImportedMessage]:
        try:
            yield from self._export.messages(chat)
        except ImportRefused as exc:
            raise _renamed(exc, self._path) from exc


def _renamed(exc: ImportRefused, path: Path) -> ImportRefused:
    return ImportRefused(exc.message.replace(str(path), path.name), exc.code)


class TelegramExports:
    """`bot.importing.sources.ExportSource` for Telegram."""

    def __init__(self, bot: Bot, *, retry_wait: float = 1.0) -> None:
        self._bot = bot
        self._retry_wait = retry_wait

    async def fetch(self, attachment: Attachment, folder: Path) -> Path:
        """getFile, then the download into `folder`, with a few tries for a flaky network."""
        if attachment.size is not None and attachment.size > MAX_DOWNLOAD_BYTES:
            raise FileTooBig(attachment.size)
        target = folder / local_name(attachment.name)
        for attempt in range(1, DOWNLOAD_ATTEMPTS + 1):
            try:
                file = await self._bot.get_file(attachment.ref)
                if file.file_size is not None and file.file_size > MAX_DOWNLOAD_BYTES:
                    raise FileTooBig(file.file_size)
                await file.download_to_drive(target, read_timeout=DOWNLOAD_TIMEOUT_SECONDS)
                break
            except BadRequest as exc:  # gone, or over the Bot API's limit ("file is too big"): no use trying again
                if "too big" in str(exc).lower():
                    raise FileTooBig(attachment.size) from exc
                raise FileUnavailable(str(exc)) from exc
            except NetworkError as exc:
                if attempt == DOWNLOAD_ATTEMPTS:
                    raise FileUnavailable(type(exc).__name__) from exc
                await asyncio.sleep(self._retry_wait * attempt)
            except TelegramError as exc:
                raise FileUnavailable(type(exc).__name__) from exc
        if target.stat().st_size > MAX_DOWNLOAD_BYTES:
            raise FileTooBig(target.stat().st_size)
        return target

    def open(self, path: Path) -> _Export:
        try:
            return _Export(TelegramExport.open(path), path)
        except ImportRefused as exc:
            raise _renamed(exc, path) from exc
