"""An in-process chat for tests (errbot's test backend): push a message, read the bot's replies."""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx

from bot.bridge import Bridge
from bot.clock import ManualClock
from bot.events import Command, ForwardOrigin, InboundMessage, Location, Platform, Reply
from bot.omi.client import OmiClient
from bot.sandbox import ALL_CAPABILITIES, Sandbox, conversation_text
from bot.store import Arrival, InboxRow, Store

REPLY_TIMEOUT = 5.0


class ChatAdapter:
    """A platform adapter whose "platform" is the test: messages are built here, replies collected here."""

    def __init__(self, platform: Platform = Platform.TELEGRAM) -> None:
        self.platform = platform
        self.sent: list[Reply] = []
        self._inboxes: dict[str, asyncio.Queue[Reply]] = {}
        self._messages: dict[int, InboundMessage] = {}
        self._keys = itertools.count(1)

    def store_message(self, message: InboundMessage) -> Arrival:
        key = next(self._keys)
        self._messages[key] = message
        dedupe = (f"test:{message.chat_id}:{message.message_id}:{int(message.edited)}",)
        return Arrival(self.platform.value, "test", json.dumps({"key": key}), dedupe, session=message.session_key)

    async def parse(self, row: InboxRow) -> InboundMessage | None:
        return self._messages.get(json.loads(row.payload)["key"])

    def session_hint(self, row: InboxRow) -> str | None:
        message = self._messages.get(json.loads(row.payload)["key"])
        return message.session_key if message is not None else None

    def replies_to(self, user_id: str) -> asyncio.Queue[Reply]:
        return self._inboxes.setdefault(user_id, asyncio.Queue())

    async def send(self, reply: Reply) -> None:
        self.sent.append(reply)
        await self.replies_to(reply.address.user_id).put(reply)


@dataclass
class ChatUser:
    """One person chatting with the bot."""

    bridge: Bridge
    adapter: ChatAdapter
    user_id: str = "1001"
    name: str = "Ada Lovelace"
    chat_id: str | None = None
    language: str | None = "en"
    _ids: itertools.count = field(default_factory=lambda: itertools.count(1))

    @property
    def account(self) -> str:
        return f"{self.adapter.platform.value}:{self.user_id}"

    def message(self, text: str = "", **fields: Any) -> InboundMessage:
        message_id = fields.pop("message_id", None) or next(self._ids)
        return InboundMessage(
            platform=self.adapter.platform,
            chat_id=self.chat_id or self.user_id,
            sender_id=self.user_id,
            sender_name=self.name,
            message_id=str(message_id),
            sequence=int(message_id),
            sent_at=fields.pop("sent_at", datetime(2026, 3, 12, 9, 0, tzinfo=UTC)),
            text=text,
            language=fields.pop("language", self.language),
            **fields,
        )

    async def push(self, message: InboundMessage) -> bool:
        """Send a message to the bot; returns False when the bridge saw it before (a duplicate)."""
        accepted = await self.bridge.accept(self.adapter.store_message(message))
        await self.bridge.processor.wait_idle()
        return not accepted.duplicate

    async def say(self, text: str, **fields: Any) -> InboundMessage:
        message = self.message(text, **fields)
        await self.push(message)
        return message

    async def command(self, name: str, args: str = "", **fields: Any) -> InboundMessage:
        return await self.say("", command=Command(name, args), **fields)

    async def forward(self, text: str, origin_name: str, original: datetime, **fields: Any) -> InboundMessage:
        origin = ForwardOrigin(kind="user", name=origin_name, date=original)
        return await self.say(text, forward_origin=origin, **fields)

    async def location(self, latitude: float, longitude: float) -> InboundMessage:
        return await self.say("", location=Location(latitude, longitude))

    async def reply(self, timeout: float = REPLY_TIMEOUT) -> Reply:
        """The next thing the bot said to this user (in any chat)."""
        return await asyncio.wait_for(self.adapter.replies_to(self.user_id).get(), timeout)

    async def reply_text(self, timeout: float = REPLY_TIMEOUT) -> str:
        return (await self.reply(timeout)).text

    def no_reply_pending(self) -> bool:
        return self.adapter.replies_to(self.user_id).empty()


@dataclass
class Env:
    """A bridge on a file database, talking to a sandbox over 127.0.0.1, with a manual clock."""

    sandbox: Sandbox
    omi: OmiClient
    store: Store
    bridge: Bridge
    clock: ManualClock
    adapter: ChatAdapter
    uid: str
    app_id: str
    #: The database the bridge runs on: an SQLite path or a PostgreSQL DATABASE_URL (tests/databases.py).
    database: str
    window: float

    def texts(self, uid: str | None = None) -> list[str]:
        """The text of each conversation Omi holds for `uid` (default: the env's), whatever the sandbox's flavor."""
        return [conversation_text(c) for c in self.sandbox.conversations(uid or self.uid)]

    def user(self, **fields: Any) -> ChatUser:
        return ChatUser(self.bridge, self.adapter, **fields)

    async def linked_user(self, uid: str | None = None, **fields: Any) -> ChatUser:
        user = self.user(**fields)
        await self.store.links.link_verified(user.account, uid or self.uid)
        return user

    async def settle(self) -> None:
        """Wait until the delivery worker has nothing in flight and nothing due on the manual clock."""
        await self.bridge.processor.wait_idle()
        await asyncio.wait_for(self.bridge.worker.idle.wait(), REPLY_TIMEOUT)

    async def run_clock(self, seconds: float) -> None:
        """Move the manual clock forward `seconds`, stopping at each time the worker wakes, and let it work."""
        end = self.clock.now() + seconds
        while True:
            await self.settle()
            wake_at = self.bridge.worker.sleeping_until
            if wake_at is None or wake_at > end:
                self.clock.set(end)
                await self.settle()
                return
            self.clock.set(wake_at)
            self.bridge.worker.wake()

    def client(self, transport: httpx.AsyncBaseTransport | None = None, **options: Any) -> OmiClient:
        """Another Omi client for this env's app (its own key), e.g. over a transport a test controls."""
        key = self.sandbox.mint_key(self.app_id)
        options = {"create_timeout": 3.0, "read_timeout": 3.0, **options}
        return OmiClient(self.omi.base_url, self.app_id, key, transport=transport, **options)

    async def restart_with(self, omi: OmiClient) -> Bridge:
        """Stop the bridge and start one on the same database that talks to Omi through `omi`."""
        await self.bridge.stop()
        self.bridge = await start_bridge(self.store, omi, self.clock, self.adapter, window=self.window)
        return self.bridge

    async def close_bursts(self) -> None:
        """Let the burst window pass on the manual clock and wait for the hand-off."""
        self.clock.advance(self.window + 0.001)
        await self.bridge.bursts.close_all()


async def start_bridge(
    store: Store, omi: OmiClient, clock: ManualClock, adapter: ChatAdapter, *, window: float
) -> Bridge:
    bridge = Bridge(store, omi, clock, batch_window=window, concurrency=8, sandbox_uid=None)
    bridge.register_adapter(adapter, adapter.parse, session_hint=adapter.session_hint)
    await bridge.start()
    return bridge


async def make_sandbox(
    *, flavor: str = "fastapi", clock: Callable[[], float] | None = None, **limits: int
) -> tuple[Sandbox, str, str, str]:
    """A sandbox of the given flavor on 127.0.0.1 with one app holding every capability. With `clock`, its idea
    of "now" (created_at on the staged implementation, rate-limit windows) follows the test's clock."""
    options: dict[str, Any] = {"flavor": flavor, **limits}
    if clock is not None:
        options["clock"] = clock
    sandbox = Sandbox(db_path=":memory:", **options)
    base_url = await sandbox.start("127.0.0.1", 0)
    app = sandbox.create_app(name="omi-bridge test", capabilities=ALL_CAPABILITIES)
    return sandbox, base_url, app.app_id, app.api_key
