"""What a command handler gets: the message, its arguments, the caller's link, the services, and ways to answer."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

from bot import texts
from bot.commands.services import CommandServices
from bot.events import Address, Button, InboundMessage, Reply
from bot.queueing import new_items
from bot.store import ItemKind, Link, OmiWrite
from bot.store.database import Conn

T = TypeVar("T")


@dataclass
class CommandContext:
    services: CommandServices
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

    @property
    def rows(self) -> Sequence[int]:
        return () if self.row_id is None else (self.row_id,)

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
        await self.services.send(replies)

    async def write(self, work: Callable[[Conn], T]) -> T:
        """A write transaction that also marks the inbound row done: effects and "processed" commit together."""
        result = await self.services.writes.commit(work, self.rows)
        self.row_done = True
        return result

    async def queue(self, kind: ItemKind, writes: OmiWrite | Sequence[OmiWrite], *, summary: str) -> None:
        """Queue Omi writes for the caller's link (held while only claimed), committed with the command's row."""
        link = self.link or self.claim
        if link is None:
            self.reply(texts.not_linked(self.message.platform))
            return
        items = new_items(
            account=self.account,
            uid=link.uid,
            kind=kind,
            writes=[writes] if not isinstance(writes, Sequence) else writes,
            address=self.message.address(),
            summary=summary,
            held=self.link is None,
        )
        await self.services.writes.queue(items, self.rows)
        self.row_done = True
        if self.link is None:
            self.reply(texts.held_until_verified(self.message.platform))
