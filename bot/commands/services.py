"""What commands may use — and nothing more: Omi's reads, linking, the write queue, the account's items."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, tzinfo
from typing import Protocol

from bot.events import InboundMessage, Reply
from bot.importing.chat import ChatImports
from bot.linking import Linking
from bot.omi.models import Conversation, Memory, SearchPage
from bot.queueing import WriteQueue
from bot.store.links import Links
from bot.store.outbox import Outbox
from bot.store.pushes import Pushes


class OmiReads(Protocol):
    """The Omi reads commands make (`bot.omi.client.OmiClient` is one)."""

    async def read_conversations(self, uid: str, *, limit: int = ..., offset: int = ...) -> list[Conversation]: ...

    async def read_memories(self, uid: str, *, limit: int = ..., offset: int = ...) -> list[Memory]: ...

    async def search_conversations(
        self,
        uid: str,
        query: str,
        *,
        page: int = ...,
        per_page: int = ...,
        include_discarded: bool = ...,
        start_date: datetime | None = ...,
        end_date: datetime | None = ...,
    ) -> SearchPage: ...


class QueryTokens(Protocol):
    """Queries behind "More" buttons: callback data is capped at 64 bytes, a query is not. The store's table
    (`Store.search_queries`, `bot.store.search_queries`) is the one to use: any instance finds a query another
    kept."""

    async def remember(self, query: str) -> str: ...

    async def get(self, token: str) -> str | None: ...


@dataclass
class CommandServices:
    omi: OmiReads
    linking: Linking
    writes: WriteQueue
    links: Links
    outbox: Outbox
    search_queries: QueryTokens
    #: The user's own time zone where the platform knows it (Slack), else None (dates shown in UTC).
    timezone: Callable[[InboundMessage], tzinfo | None]
    #: Replies sent now, before the command has finished (e.g. ahead of a code that a background task delivers).
    send: Callable[[Sequence[Reply]], Awaitable[None]]
    #: Delivery should look again (a link was just verified: its held items are due).
    wake_delivery: Callable[[], None]
    #: In sandbox mode, `/start` without a token links the chat to this uid.
    sandbox_uid: str | None = None
    #: Imports in chat (SPEC §10): the Import / Cancel buttons, /status's lines, /unlink's cancel.
    imports: ChatImports | None = None
    #: Omi → chat (SPEC §12): /notify's settings.
    pushes: Pushes | None = None
    #: The bridge's clock (seconds since the epoch).
    clock_now: Callable[[], float] = time.time
