"""The Telegram adapter the core talks to: `parse` (stored update → InboundMessage) and `send` (Reply → Bot API)."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Coroutine
from datetime import UTC, datetime
from typing import Any

from telegram import Document, Update
from telegram.constants import ChatType
from telegram.error import BadRequest, NetworkError, TelegramError

from adapters.telegram.bot_api import IntakeBot
from adapters.telegram.convert import MAX_TEXT_DOCUMENT_BYTES, text_document, update_to_inbound
from adapters.telegram.intake import KIND_UPDATE
from adapters.telegram.send import ReplySender
from bot.events import Address, InboundMessage, Platform, Reply
from bot.store import InboxRow

log = logging.getLogger(__name__)

DOWNLOAD_ATTEMPTS = 3


class DocumentUnavailable(Exception):
    """A text document could not be fetched from Telegram."""


class TelegramAdapter:
    platform = Platform.TELEGRAM

    def __init__(self, bot: IntakeBot, sender: ReplySender | None = None, *, download_retry_wait: float = 1.0) -> None:
        self.bot = bot
        self._download_retry_wait = download_retry_wait
        self.username: str | None = None
        self._sender = sender or ReplySender(bot)
        self._ready = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()
        self._closed = False

    # --- life cycle ---------------------------------------------------------------------------------

    async def start(self) -> str:
        """Initialize the Bot (`getMe`); until then rows replayed at start wait instead of being parsed blind."""
        await self.bot.initialize()
        self.username = self.bot.username
        self._ready.set()
        return self.username

    async def close(self) -> None:
        self._closed = True
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=5.0)
        await self.bot.shutdown()

    # --- inbound --------------------------------------------------------------------------------------

    async def parse(self, row: InboxRow) -> InboundMessage | None:
        if row.kind != KIND_UPDATE:
            return None
        await self._ready.wait()
        data = json.loads(row.payload)
        update = Update.de_json(data, self.bot)
        if update.callback_query is not None:
            # Stops the spinner on the user's button, even for a stale one; the answer itself comes as a message.
            self._spawn(self._answer_callback(update.callback_query.id))
        message = update.message
        content = None
        document = text_document(message)
        # Only in private chats: a file posted in a group is passive chatter the bot does not read.
        if message is not None and document is not None and message.chat.type == ChatType.PRIVATE:
            try:
                content = await self._download_text(document)
            except DocumentUnavailable as exc:
                log.warning("telegram: could not fetch a text document (%s)", exc)
                address = Address(Platform.TELEGRAM, str(message.chat.id), str(message.chat.id))
                text = f"I could not download {document.file_name or 'the file'} from Telegram; please send it again."
                self._spawn(self.send(Reply(address, text=text)))  # not here: parsing must not wait on sending
                return None
        return update_to_inbound(
            update,
            bot_username=self.username,
            received_at=datetime.fromtimestamp(row.received_at, UTC),
            document_text=content,
            raw=data,
        )

    async def _download_text(self, document: Document) -> str | None:
        """getFile, then the download from the file base URL, with a few tries for a flaky network.
        None: the file is larger than the 1 MB a text document may have (the user hears it is unsupported)."""
        for attempt in range(1, DOWNLOAD_ATTEMPTS + 1):
            try:
                file = await self.bot.get_file(document.file_id)
                if file.file_size is not None and file.file_size > MAX_TEXT_DOCUMENT_BYTES:
                    return None
                data = bytes(await file.download_as_bytearray())
                break
            except BadRequest as exc:  # the file is gone or too big for the Bot API: trying again will not help
                raise DocumentUnavailable(str(exc)) from exc
            except NetworkError as exc:
                if attempt == DOWNLOAD_ATTEMPTS:
                    raise DocumentUnavailable(type(exc).__name__) from exc
                await asyncio.sleep(self._download_retry_wait * attempt)
            except TelegramError as exc:
                raise DocumentUnavailable(type(exc).__name__) from exc
        if len(data) > MAX_TEXT_DOCUMENT_BYTES:
            return None
        return data.decode("utf-8-sig", errors="replace")

    async def _answer_callback(self, query_id: str) -> None:
        try:
            await self.bot.answer_callback_query(query_id)
        except TelegramError as exc:
            log.info("telegram: answering a button tap failed (%s)", type(exc).__name__)

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # --- outbound -------------------------------------------------------------------------------------

    async def send(self, reply: Reply) -> None:
        await self._ready.wait()
        if self._closed:
            # Deliveries finishing during shutdown outlive the Bot's connections; their outcome stays in /status.
            log.info("telegram: stopped, a reply was not sent")
            return
        await self._sender.send(reply)
