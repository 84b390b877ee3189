"""Omi → chat, the work behind the webhook (SPEC §12): each stored event is read back from Omi (never trusted) and
becomes a push for every verified link of its uid that turned /notify on; pushes go out at once or with the day's
digest. Events, pushes and digests are rows claimed by one instance at a time, so each is handled once and each
message sent once (a digest is recorded as sent before it is sent)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Protocol

from bot.clock import Clock
from bot.events import Address, Platform, Reply
from bot.omi.errors import OmiError
from bot.omi.models import Conversation
from bot.pushes.render import digest_text, kept, parse_zone, push_text
from bot.store.links import Links
from bot.store.pushes import NotifySetting, OmiEvent, Pushes

log = logging.getLogger(__name__)

#: How many of the uid's newest conversations are read back to find the one the webhook named.
READ_BACK = 10
#: An event whose conversation Omi cannot be asked about (down, rate-limited) is looked at again, for a day.
EVENT_RETRY_SECONDS = 30.0
EVENT_GIVE_UP_ATTEMPTS = 48
#: A digest missed while the bridge was down is still sent when it is less late than this.
DIGEST_LATE_SECONDS = 6 * 3600.0
LOOK_SECONDS = 1.0


class ConversationReads(Protocol):
    async def read_conversations(self, uid: str, *, limit: int = ..., offset: int = ...) -> list[Conversation]: ...


def address_of(account: str) -> Address:
    """Where an account's pushes go: its private chat with the bot (Telegram: the user's id; Slack: a DM)."""
    platform, _, user_id = account.partition(":")
    return Address(Platform(platform), chat_id=user_id, user_id=user_id)


def digest_due(setting: NotifySetting, now: float) -> float:
    """The latest moment ≤ now the account's digest was due (its local HH:MM today, else yesterday)."""
    zone = parse_zone(setting.zone)
    local = datetime.fromtimestamp(now, UTC).astimezone(zone)
    minute = setting.digest_minute or 0
    due = local.replace(hour=minute // 60, minute=minute % 60, second=0, microsecond=0)
    if due > local:
        due -= timedelta(days=1)
    return due.timestamp()


class PushWorker:
    def __init__(
        self,
        pushes: Pushes,
        links: Links,
        omi: ConversationReads,
        clock: Clock,
        send: Callable[[Reply], Awaitable[None]],
        owner: str,
        *,
        app_id: str | None = None,
        look_seconds: float = LOOK_SECONDS,
    ) -> None:
        self._pushes = pushes
        self._links = links
        self._omi = omi
        self._clock = clock
        self._send = send
        self._owner = owner
        self._app_id = app_id
        self._look_seconds = look_seconds
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._round = asyncio.Lock()  # one round at a time: a caller's round follows the one under way

    def wake(self) -> None:
        self._wake.set()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="pushes")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    async def run_once(self) -> None:
        """One round: stored events read back and turned into pushes, due pushes sent, due digests sent. Called
        while the worker's own round runs, it waits for that one first (what it claimed is sent by then)."""
        async with self._round:
            await self.handle_events()
            await self.send_due()
            await self.send_digests()

    async def _run(self) -> None:
        failing = False
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._look_seconds)  # real time: others' rows too
            self._wake.clear()
            try:
                await self.run_once()
                failing = False
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the database is away: the next round tries again, nothing is lost
                if not failing:
                    log.warning("pushes: a round failed (%s); trying again", type(exc).__name__)
                failing = True

    # --- events → pushes -------------------------------------------------------------------------------------

    async def handle_events(self) -> None:
        for event in await self._pushes.claim_events(self._owner, self._clock.now()):
            await self._handle(event)

    async def _handle(self, event: OmiEvent) -> None:
        now = self._clock.now()
        verified = [link for link in await self._links.for_uid(event.uid) if link.verified]
        wanted = [
            (setting.account, setting.mode == "digest")
            for setting in await self._pushes.settings_for([link.account for link in verified])
        ]
        if not wanted:  # an unknown or unverified uid, or nobody asked: nothing is read, nothing sent
            await self._pushes.event_handled(event, self._owner, [], None, now)
            return
        try:
            conversations = await self._omi.read_conversations(event.uid, limit=READ_BACK)
        except OmiError as exc:
            if event.attempts + 1 >= EVENT_GIVE_UP_ATTEMPTS:
                log.warning("pushes: gave up reading a conversation back from Omi (%s)", type(exc).__name__)
                await self._pushes.event_handled(event, self._owner, [], None, now)
            else:
                await self._pushes.event_later(event, self._owner, now + EVENT_RETRY_SECONDS)
            return
        found = next((c for c in conversations if c.id == event.conversation_id), None)
        if found is None or found.discarded or self._ours(found):
            # Not in Omi (a forged or stale event), trivial, or the bridge's own import: nothing to push.
            await self._pushes.event_handled(event, self._owner, [], None, now)
            return
        await self._pushes.event_handled(event, self._owner, wanted, kept(found), now)
        self.wake()

    def _ours(self, conversation: Conversation) -> bool:
        """Created by this bridge's app (an import or a saved burst): never echoed back."""
        if self._app_id is None:
            return False
        external = conversation.external_data or {}
        integration = external.get("integration") if isinstance(external.get("integration"), dict) else {}
        # The FastAPI server keeps the app id top-level and in external_data; the staged one under "integration".
        return self._app_id in (conversation.app_id, external.get("app_id"), integration.get("app_id"))

    # --- sending ---------------------------------------------------------------------------------------------

    async def send_due(self) -> None:
        due = await self._pushes.claim_due(self._owner, self._clock.now())
        if not due:
            return
        zones = {s.account: s.zone for s in await self._pushes.settings_for(sorted({p.account for p in due}))}
        for push in due:
            reply = Reply(address_of(push.account), text=push_text(push.content, parse_zone(zones.get(push.account))))
            await self._send(reply)  # the adapter keeps the platform's pace (Telegram: 1/s per chat, 25/s)
            await self._pushes.sent(push, self._owner)

    async def send_digests(self) -> None:
        now = self._clock.now()
        for setting in await self._pushes.digests():
            due = digest_due(setting, now)
            if setting.last_digest_at is not None and setting.last_digest_at >= due:
                continue
            taken = await self._pushes.take_digest(setting.account, due, deliver=now - due < DIGEST_LATE_SECONDS)
            if taken:  # recorded as sent first: at most once, whichever instance got here
                text = digest_text([push.content for push in taken], parse_zone(setting.zone))
                await self._send(Reply(address_of(setting.account), text=text))
