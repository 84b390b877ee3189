"""Decides what happens to each neutral message: a command, part of a burst, a memory, or a clear reply; and what
a closed burst becomes (`BurstWriter`)."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import replace

from bot import texts
from bot.bursts import Burst, BurstCollector
from bot.commands import REGISTRY
from bot.commands.context import CommandContext
from bot.commands.help import help_text
from bot.commands.registry import UsageError
from bot.commands.services import CommandServices
from bot.compose import burst_summary, compose_burst
from bot.events import InboundMessage, Reply
from bot.importing.chat import ChatImports
from bot.omi import words
from bot.omi.errors import OmiError
from bot.omi.models import ExplicitMemory, NewMemories
from bot.outbound import Outbound
from bot.previews.burst import Fetch, with_previews
from bot.queueing import WriteQueue, new_items
from bot.store import ItemKind
from bot.store.inbox import Inbox
from bot.store.links import Links
from bot.store.transcripts import Transcripts
from bot.transcribe.jobs import TranscriptionJobs

log = logging.getLogger(__name__)


class Router:
    def __init__(
        self,
        *,
        links: Links,
        inbox: Inbox,
        outbound: Outbound,
        bursts: BurstCollector,
        services: CommandServices,
        catch_up: Callable[[InboundMessage], Awaitable[None]],
        unblock: Callable[[str], Awaitable[None]],
        imports: ChatImports | None = None,
        transcription: TranscriptionJobs | None = None,
    ) -> None:
        self._links = links
        self._transcription = transcription  # TRANSCRIBE_URL set: voice is transcribed (SPEC §11)
        self._imports = imports
        self._inbox = inbox
        self._outbound = outbound
        self._bursts = bursts
        self._services = services
        self._catch_up = catch_up
        self._unblock = unblock

    async def handle(self, message: InboundMessage, row_id: int | None) -> None:
        """Handle one accepted message; its inbox row is marked done together with its effects."""
        if message.command is not None:
            await self._command(message, row_id)
        elif self._imports is not None and self._imports.wants(message):
            # A history export to import (SPEC §10): its summary, or why not; the row commits with the offer.
            replies = await self._imports.offer(message, row_id)
            await self._inbox.complete(() if row_id is None else (row_id,))
            await self._outbound.send_all(replies)
        else:
            await self._plain(message, row_id)
        # The user is back: retry what waits on them — after answering, so `/status` shows why it waited.
        await self._unblock(message.account)

    # --- commands -------------------------------------------------------------------------------------

    async def _command(self, message: InboundMessage, row_id: int | None) -> None:
        assert message.command is not None
        verified, claim = await self._links.get(message.account)
        ctx = CommandContext(self._services, message, message.command.args.strip(), row_id, verified, claim)
        spec = REGISTRY.get(message.command.name)
        if spec is None:
            ctx.reply(texts.unknown_command(message.command.name) + "\n\n" + help_text(message.platform))
        elif (refusal := spec.refusal(message, verified, claim)) is not None:
            ctx.reply(refusal.text, private=True)
        else:
            if spec.needs == "verified":
                await self._catch_up(message)
            try:
                await spec.handler(ctx)
            except UsageError as exc:
                ctx.reply(texts.usage(spec.usage, str(exc)))
            except OmiError as exc:
                ctx.reply(words.read_failed(exc))
        await self._finish(ctx)

    async def _finish(self, ctx: CommandContext) -> None:
        if not ctx.row_done:
            await self._inbox.complete(ctx.rows)
        await self._outbound.send_all(ctx.replies)

    # --- plain messages -----------------------------------------------------------------------------

    async def _plain(self, message: InboundMessage, row_id: int | None) -> None:
        # Inside an open burst the account was linked a moment ago: skip the lookup on the hot path.
        if not self._bursts.is_open(message.session_key):
            verified, claim = await self._links.get(message.account)
            if verified is None and claim is None:
                await self._answer_and_drop(row_id, Reply(message.address(), text=texts.not_linked(message.platform)))
                return
        if message.contact is not None and not message.text:
            await self._save_contact(message, row_id)
            return
        transcribed = message.audio is not None and self._transcription is not None
        has_content = bool(message.text.strip()) or message.location is not None or transcribed
        if not has_content and message.media_group_id is None and not message.edited:
            kind = message.audio.kind if message.audio is not None else message.unsupported
            await self._answer_and_drop(row_id, Reply(message.address(), text=texts.unsupported(kind)))
            return
        if message.audio is not None and not message.edited:
            if self._transcription is not None:
                await self._transcription.request(message)  # the job is in the database before the burst waits
            else:  # the caption is saved; the voice is not, and the user hears why
                await self._outbound.send(Reply(message.address(), text=texts.unsupported(message.audio.kind)))
                message = replace(message, audio=None)
        if not await self._bursts.add(message, row_id):
            # An edit after its burst closed: ignored (SPEC §6), nothing to keep.
            await self._answer_and_drop(row_id, None)

    async def _answer_and_drop(self, row_id: int | None, reply: Reply | None) -> None:
        await self._inbox.complete(() if row_id is None else (row_id,))
        if reply is not None:
            await self._outbound.send(reply)

    async def _save_contact(self, message: InboundMessage, row_id: int | None) -> None:
        assert message.contact is not None
        verified, claim = await self._links.get(message.account)
        ctx = CommandContext(self._services, message, "", row_id, verified, claim)
        memory = ExplicitMemory(content=f"Contact: {message.contact.name}, {message.contact.phone}", tags=["contact"])
        await ctx.queue(
            ItemKind.MEMORIES,
            NewMemories(memories=[memory], text_source_spec=message.platform.value),
            summary=f"the contact {message.contact.name}",
        )
        await self._finish(ctx)


class BurstWriter:
    """A closed burst becomes one queued conversation (or numbered parts), committed with its rows."""

    def __init__(
        self,
        links: Links,
        writes: WriteQueue,
        outbound: Outbound,
        previews: Fetch | None = None,
        transcription: TranscriptionJobs | None = None,
    ) -> None:
        self._links = links
        self._writes = writes
        self._outbound = outbound
        self._previews = previews  # LINK_PREVIEWS=on: pages of the links in what is saved (SPEC §11)
        self._transcription = transcription

    async def burst_closed(self, burst: Burst) -> None:
        messages = burst.ordered
        last = messages[-1]
        verified, claim = await self._links.get(last.account)
        link = verified or claim
        voice: list[str] = []
        if self._transcription is not None and link is not None:
            await self._transcription.settle(messages)  # at once, unless closed before its timer (shutdown)
            messages = self._transcription.heard(messages)
            voice = self._transcription.keys(messages)
        if self._previews is not None and link is not None:
            messages = await with_previews(messages, self._previews)  # only for what will be saved
        conversations = compose_burst(messages)
        replies: list[Reply] = []
        items = []
        if link is None:
            replies.append(Reply(last.address(), text=texts.not_linked(last.platform)))
        elif not conversations:
            kinds = {m.unsupported for m in messages if m.unsupported}
            replies.append(Reply(last.address(), text=texts.unsupported(next(iter(kinds), None))))
        else:
            items = new_items(
                account=last.account,
                uid=link.uid,
                kind=ItemKind.CONVERSATION,
                writes=conversations,
                address=last.address(),
                summary=burst_summary(messages),
                held=verified is None,
            )
            if verified is None:
                replies.append(Reply(last.address(), text=texts.held_until_verified(last.platform)))
        forget = (lambda conn: Transcripts.forget(conn, voice)) if voice else None
        await self._writes.queue(items, burst.row_ids, also=forget)
        if self._transcription is not None:
            self._transcription.stored(voice)
        await self._outbound.send_all(replies)
