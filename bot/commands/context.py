"""What a command handler gets: the message, its arguments, the caller's link, and ways to answer."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, TypeVar

from bot.events import Address, Button, InboundMessage, Reply
from bot.store import Link, mark_done

if TYPE_CHECKING:
    from bot.bridge import Bridge

T = TypeVar("T")


@dataclass
class CommandContext:
    bridge: Bridge
    message: InboundMessage
    args: str
    row_id: int | None
    link: Link | None = None  # the verified link, if any
    claim: Link | None = None  # an open claim, if any
    replies: list[Reply] = field(default_factory=list)
    row_done: bool = False

    @property
    def account(self) -> str:
        return self.message.account

    def private_address(self) -> Address:
        """The user's private chat: answers about their data never go to a group."""
        address = self.message.address()
        if address.private:
            return address
        return Address(platform=address.platform, chat_id="", user_id=address.user_id, private=True)

    def reply(self, text: str, *, buttons: tuple[Button, ...] = (), private: bool = False) -> None:
        address = self.private_address() if private else self.message.address()
        self.replies.append(Reply(address, text=text, buttons=buttons, ephemeral=True))

    async def flush_replies(self) -> None:
        """Send what was said so far now (what follows may be said by a background task)."""
        replies, self.replies = self.replies, []
        await self.bridge.outbound.send_all(replies)

    async def write(self, work: Callable[[sqlite3.Connection], T]) -> T:
        """A write transaction that also marks the inbound row done: effects and "processed" commit together."""

        def with_row(conn: sqlite3.Connection) -> T:
            result = work(conn)
            if self.row_id is not None:
                mark_done(conn, [self.row_id])
            return result

        result = await self.bridge.store.db.write(with_row)
        self.row_done = True
        return result
