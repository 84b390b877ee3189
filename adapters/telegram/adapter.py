"""The Telegram adapter the core talks to: `parse` (stored update → InboundMessage) and `send` (Reply → Bot API)."""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import Coroutine
from datetime import UTC, datetime
from typing import Any

from telegram import Document, Update
from telegram.error import BadRequest, NetworkError, TelegramError

from adapters.telegram.bot_api import IntakeBot
from adapters.telegram.convert import MAX_TEXT_DOCUMENT_BYTES, text_document, update_to_inbound
from adapters.telegram.intake import KIND_UPDATE
from adapters.telegram.lenient import is_coordinate, lenient_update
from adapters.telegram.send import TelegramSender
from bot.events import Address, InboundMessage, Platform, Reply
from bot.store import InboxRow

log = logging.getLogger(__name__)

DOWNLOAD_ATTEMPTS = 3
_TELEGRAM_ID = re.compile(r"-?[0-9]+")


class DocumentUnavailable(Exception):
    """A text document could not be fetched from Telegram."""


class UnreadableUpdate(Exception):
    """A stored update that is no JSON object at all (processing logs it once and drops it)."""


class _Malformed(Exception):
    """python-telegram-bot accepted the update, but the converter could not use what it made of it."""


def _ids_are_integers(data: dict[str, Any]) -> bool:
    """The library keeps an id of the wrong type as it came ("-1" for a user id, say), and such an id would name
    another account: an update whose chat or sender ids are not integers is read from its JSON instead."""
    holders: list[object] = []
    for key in ("message", "edited_message"):
        message = data.get(key)
        if isinstance(message, dict):
            holders += [message.get("chat"), message.get("from"), message.get("sender_chat")]
    query = data.get("callback_query")
    if isinstance(query, dict):
        inner = query.get("message")
        holders += [query.get("from"), inner.get("chat") if isinstance(inner, dict) else None]
    ids = [holder["id"] for holder in holders if isinstance(holder, dict) and "id" in holder]
    return all(isinstance(value, int) and not isinstance(value, bool) for value in ids)


def well_formed(message: InboundMessage) -> bool:
    """The fields the core relies on have their types (the library keeps whatever type a field arrived with)."""
    return _fields_well_formed(message) and (message.reply_to is None or _fields_well_formed(message.reply_to))


def _fields_well_formed(message: InboundMessage) -> bool:
    origin, location, contact = message.forward_origin, message.location, message.contact
    return (
        all(isinstance(value, str) for value in (message.text, message.sender_name, message.message_id))
        and all(_TELEGRAM_ID.fullmatch(value) is not None for value in (message.chat_id, message.sender_id))
        and isinstance(message.sequence, int)
        and isinstance(message.sent_at, datetime)
        and message.sent_at.tzinfo is not None
        and all(_optional_text(value) for value in (message.media_group_id, message.language))
        and (
            origin is None
            or (isinstance(origin.name, str) and (origin.date is None or isinstance(origin.date, datetime)))
        )
        and (
            location is None
            or (
                is_coordinate(location.latitude, 90)
                and is_coordinate(location.longitude, 180)
                and all(_optional_text(value) for value in (location.title, location.address))
            )
        )
        and (contact is None or (isinstance(contact.name, str) and isinstance(contact.phone, str)))
    )


def _optional_text(value: object) -> bool:
    return value is None or isinstance(value, str)


def _nothing_to_read(data: dict[str, Any]) -> bool:
    """An update of a kind the bridge does not ask for (a channel post, a reaction, …): ignored, not unreadable."""
    return not any(field in data for field in ("message", "edited_message", "callback_query"))


class TelegramAdapter:
    platform = Platform.TELEGRAM

    def __init__(
        self, bot: IntakeBot, sender: TelegramSender | None = None, *, download_retry_wait: float = 1.0
    ) -> None:
        self.bot = bot
        self._download_retry_wait = download_retry_wait
        self.username: str | None = None
        self._sender = sender or TelegramSender(bot)
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
        if not isinstance(data, dict):
            raise UnreadableUpdate("not a JSON object")
        received_at = datetime.fromtimestamp(row.received_at, UTC)
        update = self._library_update(data, row.id) if _ids_are_integers(data) else None
        if update is not None:
            try:
                return await self._inbound(update, data, received_at)
            except _Malformed:
                log.info("telegram: row %d has fields of types the converter cannot use; read from its JSON", row.id)
        update = lenient_update(data, received_at)
        if update.message is None and update.edited_message is None and update.callback_query is None:
            if not _nothing_to_read(data):
                # One line, no traceback: the shape is the sender's doing (SPEC §4: stored, logged, answered 200).
                log.warning("telegram: update in row %d names no chat or sender to answer; dropped", row.id)
            return None
        return await self._inbound(update, data, received_at)

    def _library_update(self, data: dict[str, Any], row_id: int) -> Update | None:
        """python-telegram-bot's reading, or None when it refuses the update (e.g. a field it requires is
        missing: an older or self-hosted Bot API server, or a kind newer than this library)."""
        try:
            return Update.de_json(data, self.bot)
        except Exception as exc:  # the library raises TypeError, KeyError, AttributeError, ValueError, …
            log.info("telegram: python-telegram-bot refused the update in row %d (%s)", row_id, type(exc).__name__)
            return None

    async def _inbound(self, update: Update, data: dict[str, Any], received_at: datetime) -> InboundMessage | None:
        try:
            message = update_to_inbound(update, bot_username=self.username, received_at=received_at, raw=data)
        except Exception as exc:
            raise _Malformed from exc
        if message is not None and not well_formed(message):
            raise _Malformed
        if update.callback_query is not None:
            # Stops the spinner on the user's button, even for a stale one; the answer itself comes as a message.
            self._spawn(self._answer_callback(update.callback_query.id))
        if message is None:
            return None
        document = text_document(update.message)
        # Only in private chats: a file posted in a group is passive chatter the bot does not read.
        if document is None or message.chat_kind != "private" or message.command is not None:
            return message
        try:
            content = await self._download_text(document)
        except DocumentUnavailable as exc:
            log.warning("telegram: could not fetch a text document (%s)", exc)
            address = Address(Platform.TELEGRAM, message.chat_id, message.chat_id)
            text = f"I could not download {document.file_name or 'the file'} from Telegram; please send it again."
            self._spawn(self.send(Reply(address, text=text)))  # not here: parsing must not wait on sending
            return None
        return update_to_inbound(
            update, bot_username=self.username, received_at=received_at, document_text=content, raw=data
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
