"""Decides what happens to each neutral message: a command, part of a burst, a memory, or a clear reply."""

from __future__ import annotations

import logging
import sqlite3
from typing import TYPE_CHECKING

from bot import texts
from bot.bursts import Burst
from bot.commands import REGISTRY
from bot.commands.context import CommandContext
from bot.commands.registry import UsageError
from bot.compose import burst_summary, compose_burst
from bot.events import InboundMessage, Reply
from bot.omi.errors import OmiError
from bot.omi.models import ExplicitMemory, NewMemories
from bot.store import ItemKind, ItemState, NewItem, Outbox, mark_done

if TYPE_CHECKING:
    from bot.bridge import Bridge

log = logging.getLogger(__name__)


class Router:
    def __init__(self, bridge: Bridge) -> None:
        self._bridge = bridge

    async def handle(self, message: InboundMessage, row_id: int | None) -> None:
        """Handle one accepted message; its inbox row is marked done together with its effects."""
        if message.command is not None:
            await self._command(message, row_id)
        else:
            await self._plain(message, row_id)
        # The user is back: retry what waits on them — after answering, so `/status` shows why it waited.
        await self._bridge.worker.unblock(message.account)

    # --- commands -------------------------------------------------------------------------------------

    async def _command(self, message: InboundMessage, row_id: int | None) -> None:
        assert message.command is not None
        verified, claim = await self._bridge.store.links.get(message.account)
        ctx = CommandContext(self._bridge, message, message.command.args.strip(), row_id, verified, claim)
        spec = REGISTRY.get(message.command.name)
        if spec is None:
            ctx.reply(texts.unknown_command(message.command.name) + "\n\n" + texts.help_text(message.platform))
        elif spec.private_only and message.chat_kind != "private":
            ctx.reply(texts.PRIVATE_ONLY, private=True)
        elif spec.needs == "verified" and verified is None:
            text = texts.needs_verify(message.platform) if claim else texts.not_linked(message.platform)
            ctx.reply(text, private=True)
        elif spec.needs == "link" and verified is None and claim is None:
            ctx.reply(texts.not_linked(message.platform), private=True)
        else:
            if spec.needs == "verified":
                await self._bridge.catch_up(message)
            try:
                await spec.handler(ctx)
            except UsageError as exc:
                ctx.reply(texts.usage(spec.usage, str(exc)))
            except OmiError as exc:
                ctx.reply(texts.omi_read_failed(exc))
        await self._finish(ctx)

    async def _finish(self, ctx: CommandContext) -> None:
        if not ctx.row_done and ctx.row_id is not None:
            row_id = ctx.row_id
            await self._bridge.store.db.write(lambda conn: mark_done(conn, [row_id]))
        await self._bridge.outbound.send_all(ctx.replies)

    # --- plain messages -----------------------------------------------------------------------------

    async def _plain(self, message: InboundMessage, row_id: int | None) -> None:
        bridge = self._bridge
        # Inside an open burst the account was linked a moment ago: skip the lookup on the hot path.
        if not bridge.bursts.is_open(message.session_key):
            verified, claim = await bridge.store.links.get(message.account)
            if verified is None and claim is None:
                await self._answer_and_drop(row_id, Reply(message.address(), text=texts.not_linked(message.platform)))
                return
        if message.contact is not None and not message.text:
            await self._save_contact(message, row_id)
            return
        has_content = bool(message.text.strip()) or message.location is not None
        if not has_content and message.media_group_id is None and not message.edited:
            await self._answer_and_drop(row_id, Reply(message.address(), text=texts.unsupported(message.unsupported)))
            return
        if row_id is None:
            row_id = -1
        if not await bridge.bursts.add(message, row_id):
            # An edit after its burst closed: ignored (SPEC §6), nothing to keep.
            await self._answer_and_drop(row_id, None)

    async def _answer_and_drop(self, row_id: int | None, reply: Reply | None) -> None:
        if row_id is not None and row_id >= 0:
            await self._bridge.store.db.write(lambda conn: mark_done(conn, [row_id]))
        if reply is not None:
            await self._bridge.outbound.send(reply)

    async def _save_contact(self, message: InboundMessage, row_id: int | None) -> None:
        assert message.contact is not None
        verified, claim = await self._bridge.store.links.get(message.account)
        ctx = CommandContext(self._bridge, message, "", row_id, verified, claim)
        memory = ExplicitMemory(content=f"Contact: {message.contact.name}, {message.contact.phone}", tags=["contact"])
        await self._bridge.queue_write(
            ctx,
            kind=ItemKind.MEMORIES,
            write=NewMemories(memories=[memory], text_source_spec=message.platform.value),
            summary=f"the contact {message.contact.name}",
        )
        await self._finish(ctx)

    async def burst_closed(self, burst: Burst) -> None:
        """A closed burst becomes one queued conversation (or numbered parts), committed with its rows."""
        bridge = self._bridge
        messages = burst.ordered
        last = messages[-1]
        row_ids = [row_id for row_id in burst.row_ids if row_id >= 0]
        verified, claim = await bridge.store.links.get(last.account)
        conversations = compose_burst(messages)
        replies: list[Reply] = []
        items: list[NewItem] = []
        if verified is None and claim is None:
            replies.append(Reply(last.address(), text=texts.not_linked(last.platform)))
        elif not conversations:
            kinds = {m.unsupported for m in messages if m.unsupported}
            replies.append(Reply(last.address(), text=texts.unsupported(next(iter(kinds), None))))
        else:
            link = verified or claim
            assert link is not None
            summary = burst_summary(messages)
            items = [
                NewItem(
                    account=last.account,
                    uid=link.uid,
                    kind=ItemKind.CONVERSATION,
                    write=conversation,
                    address=last.address(),
                    summary=summary,
                    state=ItemState.PENDING if verified else ItemState.HELD,
                )
                for conversation in conversations
            ]
            if verified is None:
                replies.append(Reply(last.address(), text=texts.held_until_verified(last.platform)))
        now = bridge.clock.now()

        def commit(conn: sqlite3.Connection) -> None:
            Outbox.add(conn, items, now)
            mark_done(conn, row_ids)

        await bridge.store.db.write(commit)
        if items:
            bridge.metrics_queued(ItemKind.CONVERSATION, len(items))
        bridge.worker.wake()
        await bridge.outbound.send_all(replies)
