"""A neutral `Reply` → Bot API calls: HTML messages split at 4096, inline buttons, reactions with a text fallback,
edits of the bot's own messages (an import's progress)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import TypeVar

from telegram import Bot, InlineKeyboardButton, InlineKeyboardMarkup, ReactionTypeEmoji, ReplyParameters
from telegram.constants import ParseMode
from telegram.error import BadRequest, ChatMigrated, RetryAfter, TelegramError

from adapters.telegram.render import markdown_to_html, split_message
from bot.events import Reply

log = logging.getLogger(__name__)

T = TypeVar("T")

#: Flood control: wait what Telegram asks, but never longer than this per wait, and give up after a few.
MAX_RETRY_WAIT_SECONDS = 60.0
MAX_ATTEMPTS = 4

#: Telegram's send limits kept together by every instance (SPEC §13): given a chat, the seconds to wait for its
#: next message's slot (the store's `Pacing.telegram`: 1 a second per chat, 25 a second per bot, reserved in the
#: database). A sender without one (`reserve=None`) does not pace: tests that talk to the fake Bot API alone.
Reserve = Callable[[str], Awaitable[float]]


def retry_seconds(exc: RetryAfter) -> float:
    value = exc.retry_after  # a timedelta with PTB_TIMEDELTA=1, seconds otherwise
    return value.total_seconds() if isinstance(value, timedelta) else float(value)


class TelegramSender:
    """Sends replies for the Telegram adapter. Waits for flood control and for a message's slot under the send
    limits happen here, in the sending task, never in the transports' intake."""

    def __init__(
        self,
        bot: Bot,
        *,
        max_retry_wait: float = MAX_RETRY_WAIT_SECONDS,
        wait: Callable[[float], Awaitable[None]] = asyncio.sleep,
        reserve: Reserve | None = None,
    ) -> None:
        self._bot = bot
        self._max_retry_wait = max_retry_wait
        self._wait = wait
        self._reserve = reserve

    async def send(self, reply: Reply) -> None:
        address = reply.address
        # `private` with no chat: an answer about the user's data asked for in a group goes to their private chat.
        chat_id = address.chat_id or address.user_id
        if reply.reaction and address.message_id and address.chat_id:
            try:
                await self._call(
                    self._bot.set_message_reaction,
                    chat_id=chat_id,
                    message_id=int(address.message_id),
                    # Explicitly an emoji: PTB would send a string it does not know as a custom emoji id.
                    reaction=ReactionTypeEmoji(reply.reaction),
                )
                return
            except (TelegramError, ValueError) as exc:
                # Reactions can be off in the chat, the message too old or gone: say it in words instead.
                log.info("telegram: reaction not possible (%s); replying with text", _describe(exc))
        if not reply.text.strip():
            return
        if reply.edit and address.message_id and address.chat_id:
            await self._edit(address.chat_id, int(address.message_id), reply)
            return
        quote = None
        if not address.private and address.message_id and address.chat_id:
            quote = ReplyParameters(message_id=int(address.message_id), allow_sending_without_reply=True)
        parts = split_message(reply.text)
        keyboard = None
        if reply.buttons:
            keyboard = InlineKeyboardMarkup(
                [[InlineKeyboardButton(button.label, callback_data=button.data) for button in reply.buttons]]
            )
        for index, part in enumerate(parts):
            last = index == len(parts) - 1
            chat_id = await self._send_text(chat_id, part, quote if index == 0 else None, keyboard if last else None)

    async def _edit(self, chat_id: str, message_id: int, reply: Reply) -> None:
        """The message shows `reply.text` (its first 4096 characters) and `reply.buttons` (none: buttons removed).
        An edit Telegram refuses (the user deleted the message, or it is too old to edit) is only logged: the
        next edit of the same message would be refused too, and /status tells the same."""
        keyboard = None
        if reply.buttons:
            keyboard = InlineKeyboardMarkup(
                [[InlineKeyboardButton(button.label, callback_data=button.data) for button in reply.buttons]]
            )
        text = split_message(reply.text)[0]
        try:
            await self._call(
                self._bot.edit_message_text,
                pace=True,
                chat_id=chat_id,
                message_id=message_id,
                text=markdown_to_html(text),
                parse_mode=ParseMode.HTML,
                reply_markup=keyboard,
            )
        except BadRequest as exc:
            if "not modified" in str(exc):
                return  # it shows this already
            log.info("telegram: a message could not be edited (%s)", _describe(exc))

    async def _send_text(
        self, chat_id: str, text: str, quote: ReplyParameters | None, keyboard: InlineKeyboardMarkup | None
    ) -> str:
        """Send one part; returns the chat id to use for the next (a group may have become a supergroup)."""
        try:
            await self._call(
                self._bot.send_message,
                pace=True,
                chat_id=chat_id,
                text=markdown_to_html(text),
                parse_mode=ParseMode.HTML,
                reply_parameters=quote,
                reply_markup=keyboard,
            )
        except ChatMigrated as exc:
            return await self._send_text(str(exc.new_chat_id), text, None, keyboard)
        except BadRequest as exc:
            if "parse entities" not in str(exc):
                raise
            # Should never happen (everything is escaped); if it does, the words still arrive, unformatted.
            log.warning("telegram: HTML was refused (%s); sending the reply as plain text", _describe(exc))
            await self._call(self._bot.send_message, pace=True, chat_id=chat_id, text=text, reply_markup=keyboard)
        return chat_id

    async def _call(self, method: Callable[..., Awaitable[T]], *, pace: bool = False, **kwargs: object) -> T:
        """Honour flood control (`RetryAfter`): wait the time asked (bounded), then try again. A message (`pace`)
        waits for its slot under the send limits before every try."""
        for attempt in range(1, MAX_ATTEMPTS + 1):
            if pace:
                await self._pace(str(kwargs["chat_id"]))
            try:
                return await method(**kwargs)
            except RetryAfter as exc:
                if attempt == MAX_ATTEMPTS:
                    raise
                wait = min(max(retry_seconds(exc), 0.0), self._max_retry_wait)
                log.info("telegram: flood control, waiting %.1f s before trying again", wait)
                await self._wait(wait)
        raise AssertionError("unreachable")

    async def _pace(self, chat_id: str) -> None:
        if self._reserve is None:
            return
        try:
            wait = await self._reserve(chat_id)
        except Exception as exc:  # the database is away: the message goes now, flood control still applies
            log.info("telegram: no send slot could be reserved (%s); sending now", _describe(exc))
            return
        if wait > 0:
            await self._wait(wait)


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"
