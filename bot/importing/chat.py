"""Imports in chat (SPEC §10, Telegram): a `result.json` sent to the bot becomes an *offer* — fetched, validated,
staged whole and shown as a summary with Import / Cancel buttons — and a button press is the choice.

Decisions:
- **Staged when the file arrives, flipped when Import is pressed.** The offer is the staged import itself
  (`ImportState.OFFERED`): the press only flips it (`Imports.accept`), so nothing is read again, the file is deleted
  as soon as it is staged, and any instance — after a restart too — can carry the choice out. The flip is guarded
  by the state: a second press, or an old button, changes nothing.
- **One offer per account.** A newer file replaces an offer still waiting (its staged rows and ledger rows go
  first, so the newer one is not told its messages were "already imported"); an offer not chosen within a day is
  dropped by the progress job (bot/importing/progress.py). Its buttons then answer `IMPORT_GONE`.
- **Verified only**: a claimed or unknown account gets the usual "link first" replies, and its file is not fetched.
- **One chat per export**: a full export is answered with its chats and how to export one (buttons per chat would
  mean keeping the file until chosen, on the disk of whichever instance received it).
- The summary is edited into the progress message on Import, into "Cancelled" on Cancel; the progress job edits
  it from then on."""

from __future__ import annotations

import asyncio
import logging
import tempfile
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from bot import texts
from bot.clock import Clock
from bot.events import Address, Button, InboundMessage, Platform, Reply
from bot.importing.model import ImportRefused
from bot.importing.queueing import ImportTarget, offer_import
from bot.importing.sources import MAX_DOWNLOAD_BYTES, ExportSource, FileTooBig, FileUnavailable
from bot.store import RowsTaken
from bot.store.database import Conn
from bot.store.imports import ImportRecord, Imports, ImportState
from bot.store.links import Links

log = logging.getLogger(__name__)

#: What a user sends to import (Telegram Desktop's "Machine-readable JSON" export).
EXPORT_SUFFIX = ".json"
#: The hidden command the buttons carry: `import <id> go` / `import <id> cancel`.
COMMAND = "import"
GO, CANCEL = "go", "cancel"


def _day(moment: datetime | None) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d") if moment is not None else "?"


class ChatImports:
    def __init__(
        self,
        imports: Imports,
        links: Links,
        clock: Clock,
        *,
        wake_delivery: Callable[[], None] = lambda: None,
        wake_progress: Callable[[], None] = lambda: None,
    ) -> None:
        self._imports = imports
        self._links = links
        self._clock = clock
        self._wake = wake_delivery
        self._wake_progress = wake_progress
        self._sources: dict[Platform, ExportSource] = {}

    def register(self, platform: Platform, source: ExportSource) -> None:
        self._sources[platform] = source

    def wants(self, message: InboundMessage) -> bool:
        """A file to import: a `.json` document in a private chat, on a platform that can fetch it."""
        attachment = message.attachment
        return (
            attachment is not None
            and message.command is None
            and message.chat_kind == "private"
            and attachment.name.lower().endswith(EXPORT_SUFFIX)
            and message.platform in self._sources
        )

    # --- the file arrives --------------------------------------------------------------------------------

    async def offer(self, message: InboundMessage, row_id: int | None) -> list[Reply]:
        """The replies to a file to import: a refusal, or the summary with Import / Cancel. The offer and the row
        commit together; a row another instance handled first gets no reply here."""
        attachment = message.attachment
        source = self._sources.get(message.platform)
        assert attachment is not None and source is not None
        address = message.address()

        def say(text: str, buttons: tuple[Button, ...] = ()) -> list[Reply]:
            return [Reply(address, text=text, buttons=buttons)]

        verified, claim = await self._links.get(message.account)
        if verified is None:
            return say(texts.needs_verify(message.platform) if claim else texts.not_linked(message.platform))
        with tempfile.TemporaryDirectory(prefix="omi-bridge-import-") as folder:
            try:
                path = await source.fetch(attachment, Path(folder))
                export = await asyncio.to_thread(source.open, path)
            except FileTooBig as exc:
                return say(texts.import_too_big(exc.size or attachment.size, MAX_DOWNLOAD_BYTES, message.account))
            except FileUnavailable as exc:
                log.warning("imports: could not fetch an export from %s (%s)", message.platform.value, exc)
                return say(texts.import_unavailable(attachment.name))
            except ImportRefused as exc:
                return say(exc.message)
            if len(export.chats) != 1:
                listed = sorted(export.chats, key=lambda chat: -(chat.messages or 0))
                return say(
                    texts.import_several_chats([(chat.name, chat.messages) for chat in listed])
                    if listed
                    else texts.IMPORT_NO_CHAT
                )
            [chat] = export.chats
            await self._replace_offers(message.account)
            where = Address(message.platform, address.chat_id, address.user_id)
            target = ImportTarget(message.account, verified.uid, where)
            try:
                queued = await offer_import(
                    self._imports,
                    self._clock,
                    target,
                    source=message.platform.value,
                    chat=chat.id,
                    chat_name=chat.name,
                    messages=export.messages(chat),
                    rows=() if row_id is None else (row_id,),
                )
            except ImportRefused as exc:
                return say(exc.message)
            except RowsTaken:
                log.info("imports: the file in row %s was handled by another instance", row_id)
                return []
        if queued.import_id is None:
            return say(texts.import_nothing_new(chat.name, queued.already))
        summary = texts.import_offer(
            chat.name, queued.messages, _day(queued.first), _day(queued.last), queued.conversations, queued.already
        )
        buttons = (
            Button("Import", f"{COMMAND} {queued.import_id} {GO}"),
            Button("Cancel", f"{COMMAND} {queued.import_id} {CANCEL}"),
        )
        return say(summary, buttons)

    async def _replace_offers(self, account: str) -> None:
        now = self._clock.now()
        for record in await self._imports.offers(account=account):
            await self._imports.decline(record.id, account, now)

    # --- a button is pressed -----------------------------------------------------------------------------

    async def choose(self, message: InboundMessage, args: str) -> list[Reply]:
        """Import or Cancel under a summary (`message` is the tap: its address is the summary's message)."""
        address = message.address()
        words = args.split()
        if not words:
            return [Reply(address, text=texts.IMPORT_HOW)]  # `/import` typed by hand
        if len(words) != 2 or not words[0].isdigit() or words[1] not in (GO, CANCEL):
            return [Reply(address, text=texts.IMPORT_GONE)]  # typed by hand, or a button of another version
        record = await self._imports.get(int(words[0]))
        if record is None or record.account != message.account:
            return [Reply(address, text=texts.IMPORT_GONE, edit=True)]
        if record.state is not ImportState.OFFERED:
            # Chosen already (a second press, both buttons pressed): the message says what happened. Otherwise
            # an old button of an offer that expired or was replaced.
            return [] if record.progress_message_id is not None else [Reply(address, text=texts.IMPORT_GONE, edit=True)]
        verified, claim = await self._links.get(message.account)
        if verified is None:
            refusal = texts.needs_verify(message.platform) if claim else texts.not_linked(message.platform)
            return [Reply(address, text=refusal)]
        now = self._clock.now()
        if verified.uid != record.uid:  # linked to another Omi account since: that one did not ask for it
            await self._imports.decline(record.id, record.account, now)
            return [Reply(address, text=texts.IMPORT_GONE, edit=True)]
        shown = message.message_id
        if words[1] == CANCEL:
            cancelled = texts.IMPORT_CANCELLED
            if await self._imports.decline(record.id, record.account, now, message_id=shown, text=cancelled):
                return [Reply(address, text=texts.IMPORT_CANCELLED, edit=True)]
            return []
        text = texts.import_progress(record.chat_name, 0, record.total)
        if not await self._imports.accept(record.id, record.account, message_id=shown, text=text, now=now):
            return []  # the other press (or instance) was first
        self._wake()
        self._wake_progress()
        return [Reply(address, text=text, edit=True)]

    # --- /status and /unlink -----------------------------------------------------------------------------

    async def running(self, account: str) -> list[ImportRecord]:
        """The account's imports still under way: offered, or queued with items on their way."""
        found = []
        for record in await self._imports.listed(account):
            if record.state is ImportState.OFFERED:
                found.append(record)
            elif record.state is ImportState.QUEUED and await self._imports.open_items(record.id):
                found.append(record)
        return found

    async def status_lines(self, account: str) -> list[str]:
        lines = []
        for record in reversed(await self.running(account)):
            if record.state is ImportState.OFFERED:
                lines.append(texts.import_offered(record.chat_name))
                continue
            progress = await self._imports.progress(record.id)
            lines.append(texts.import_status(record.chat_name, progress.delivered, progress.total, progress.failed))
        return lines

    def cancel_in(self, conn: Conn, account: str) -> int:
        """Inside `/unlink`'s transaction: the account's imports cancelled, their items not yet sent deleted (their
        progress messages say so at the next look)."""
        self._wake_progress()
        return Imports.cancel_for_account(conn, account, self._clock.now())


__all__ = ["COMMAND", "ChatImports"]
