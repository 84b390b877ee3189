"""Telegram Desktop's "Machine-readable JSON" export (`result.json`) read as a stream (SPEC §10).

    export = TelegramExport.open(path)            # pass 1: the whole file, validated; ImportRefused (exit 2)
    chat = export.choose(name_or_id)              # `--chat`; None: the only chat (several → refused, listed)
    stats = ReadStats()
    for message in export.messages(chat, stats):  # pass 2 (each call one more): ImportedMessage, file order
        ...
    stats.read, stats.skipped                     # after the pass: yielded, and left out (service, empty, …)

or, in one step each: `read_chats(path) -> list[ChatInfo]`, `read_messages(path, chat=None, stats=None)`.
Memory holds one message at a time whatever the file's size (ijson; never `json.load`).

Decisions:
- **Validation first.** `open` reads the whole file once, so a cut-off, damaged or foreign file is refused before a
  single message is yielded. `messages` re-reads only the chosen chat; a file changed since `open` is refused when
  it starts, and a file changed *during* it can still raise ImportRefused part-way: a caller that stages rows while
  iterating deletes them on ImportRefused (SPEC §10: a refused import leaves nothing queued).
- **Both layouts**: a single chat (`{name, type, id, messages}`) or the full export (`{chats: {list: [...]},
  left_chats: {list: [...]}}`; left chats are listed too). A folder holding `result.json` is read as that file.
- **Chat ids** in the Bot API form the live bridge uses (`-100<id>` for supergroups and channels, `-<id>` for basic
  groups, the bare id for private chats, bots, Saved Messages); `ImportedMessage.chat` is that id. `--chat` takes
  it, the bare id Telegram Desktop writes, or the chat's name (exact, else ignoring case; one match needed).
- **Counts**: `ChatInfo.messages` = the chat's entries with a `type` (every Telegram entry has one) other than
  `service`, known from pass 1; `ReadStats` says what pass 2 then left out: service messages, entries with
  neither text nor medium (`type: "unsupported"`), entries without a usable date, entries that are no message at
  all. None of these refuses the import; a chat with no messages is no refusal either (the caller says "nothing
  to import"). A full export without any chat is refused (export again with chats ticked).
- **Refusals** (ImportRefused, exit 2) name the file; `open(path, label="result.json")` names it so instead (a
  temporary copy of a document sent in chat). Several chats and no `--chat`, or no match: `ChatChoiceNeeded`,
  whose message lists them (most messages first, at most 30) and whose `chats` has them all.
- **Text**: `text` (a string, or strings and `{type, text, href?}` pieces) → Markdown as SPEC §6 by the live
  bridge's renderer (content.py); `text_entities` (the same pieces as objects) only when `text` is missing.
  Unknown piece types are their text. Media first, then the caption: `[photo] caption`, `[voice message 0:12]`,
  `[video]`, `[video message 0:07]`, `[sticker 😀]`, `[file report.pdf]`, `[audio Performer – Title]`,
  `[animation]`, `[location]` / `[location Place, Address]` / `[live location]`, `[contact Name, +phone]`,
  `[poll Question]` and `- answer` lines, `[game T]`, `[invoice T]`, `[giveaway]`, `[paid media]`; an export
  "without files" (`(File not included. …)` for the path) still names the file by `file_name` when it has one.
- **Times** from `date_unixtime` (UTC). Exports older than that field have only `date`, the exporting computer's
  local time without a zone: read as this computer's local time. A date that is missing, unreadable or outside
  2000–2099 leaves that message out (counted in `ReadStats.undated`), never the whole import.
- **Authors** from `from`; null or missing: a channel's name for its posts, else "Deleted Account"; a channel
  post's signature (`author`) as `Title (Signature)`; `forwarded_from` as `Author (forwarded from X)`. Chats
  without a name: "Saved Messages", "Replies"; a deleted account's private chat: "Deleted Account".
- **Telegram's own quirks**: control characters written as `\\xNN` (not JSON; read as `\\u00NN`), a byte-order
  mark, lone surrogates (→ U+FFFD).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

from adapters.telegram.export.layout import Place, bare_id, entries, first_pass
from adapters.telegram.export.message import ReadStats, convert
from adapters.telegram.export.source import locate, sniff
from bot.importing.model import ChatInfo, ImportedMessage, ImportRefused

__all__ = ["ChatChoiceNeeded", "ReadStats", "TelegramExport", "choose_chat", "read_chats", "read_messages"]

#: Chats named in a refusal; the rest are counted (`ChatChoiceNeeded.chats` has them all).
LISTED = 30
_KINDS = {
    "personal_chat": "private chat", "bot_chat": "bot", "saved_messages": "saved messages", "replies": "replies",
    "private_group": "group", "private_supergroup": "group", "public_supergroup": "public group",
    "private_channel": "channel", "public_channel": "public channel",
}  # fmt: skip


class ChatChoiceNeeded(ImportRefused):
    """The export holds several chats (or none matches `--chat`): the message lists them, `chats` has them all."""

    def __init__(self, message: str, chats: list[ChatInfo]) -> None:
        super().__init__(message)
        self.chats = chats


def describe(chat: ChatInfo) -> str:
    count = "?" if chat.messages is None else f"{chat.messages:,}"
    noun = "message" if chat.messages == 1 else "messages"
    return f'"{chat.name}" · {_KINDS.get(chat.type, chat.type or "chat")} · id {chat.id} · {count} {noun}'


def _listing(headline: str, chats: list[ChatInfo]) -> str:
    ordered = sorted(chats, key=lambda chat: -(chat.messages or 0))
    lines = [headline, *(f"  {describe(chat)}" for chat in ordered[:LISTED])]
    if len(ordered) > LISTED:
        lines.append(f"  … and {len(ordered) - LISTED} more with fewer messages")
    return "\n".join(lines)


def _ids(chat: ChatInfo) -> set[str]:
    """The chat's id as the bridge writes it, and as Telegram Desktop does (bare)."""
    return {chat.id, bare_id(chat.id, chat.type)}


def choose_chat(chats: list[ChatInfo], wanted: str | None) -> ChatInfo:
    """`--chat NAME_OR_ID` among the export's chats; without it, the only one."""
    if wanted is None or not wanted.strip():
        if len(chats) == 1:
            return chats[0]
        if not chats:
            raise ImportRefused("This export holds no chat to import.")
        raise ChatChoiceNeeded(
            _listing(f"This export holds {len(chats)} chats: choose one with --chat NAME_OR_ID.", chats), chats
        )
    wanted = wanted.strip()
    for matches in (
        [chat for chat in chats if wanted in _ids(chat)],
        [chat for chat in chats if chat.name == wanted],
        [chat for chat in chats if chat.name.casefold() == wanted.casefold()],
    ):
        if len(matches) == 1:
            return matches[0]
        if matches:
            raise ChatChoiceNeeded(
                _listing(f'{len(matches)} chats are named "{wanted}": choose one by its id.', matches), matches
            )
    raise ChatChoiceNeeded(_listing(f'No chat "{wanted}" in this export. Its chats:', chats), chats)


class TelegramExport:
    """One export file, validated by `open`."""

    def __init__(self, path: Path, places: list[Place], stamp: tuple[int, int]) -> None:
        self.path = path
        self._places = places
        self._stamp = stamp
        self.chats = [place.info() for place in places]
        self.label: str | None = None

    @classmethod
    def open(cls, path: str | Path, label: str | None = None) -> TelegramExport:
        """Read the whole file once: its layout and chats (ImportRefused: missing, unreadable, HTML, not JSON,
        cut off, damaged, not a Telegram export). `label`: how refusals name the file (default: its path)."""
        try:
            target = locate(path)
            sniff(target)
            stamp = _stamp(target)
            export = cls(target, first_pass(target), stamp)
        except ImportRefused as refused:
            if label is None:
                raise
            raise _relabelled(refused, path, label) from refused
        export.label = label
        return export

    def choose(self, wanted: str | None = None) -> ChatInfo:
        return choose_chat(self.chats, wanted)

    def messages(self, chat: ChatInfo | None = None, stats: ReadStats | None = None) -> Iterator[ImportedMessage]:
        """The chat's messages in file order (Telegram writes them oldest first); `stats` counts as it goes."""
        chosen = self.choose() if chat is None else chat
        place = self._places[self.chats.index(chosen)]
        stats = stats if stats is not None else ReadStats()
        try:
            if _stamp(self.path) != self._stamp:
                raise ImportRefused(f"{self.path} changed since it was read: run the command again.")
            for entry in entries(self.path, place):
                outcome = convert(entry, chosen)
                stats.count(outcome)
                if not isinstance(outcome, str):
                    yield outcome
        except ImportRefused as refused:
            if self.label is None:
                raise
            raise _relabelled(refused, self.path, self.label) from refused


def _relabelled(refused: ImportRefused, path: str | Path, label: str) -> ImportRefused:
    if isinstance(refused, ChatChoiceNeeded):
        return ChatChoiceNeeded(refused.message, refused.chats)
    message = refused.message
    located = Path(path).expanduser()
    for shown in sorted({str(located / "result.json"), str(located), str(path)}, key=len, reverse=True):
        message = message.replace(shown, label)
    return ImportRefused(message, refused.code)


def _stamp(path: Path) -> tuple[int, int]:
    try:
        status = os.stat(path)
    except OSError as error:
        raise ImportRefused(f"Cannot read {path}: {error.strerror or error}") from error
    return status.st_size, status.st_mtime_ns


def read_chats(path: str | Path) -> list[ChatInfo]:
    """The export's chats (one pass over the whole file, which validates it)."""
    return TelegramExport.open(path).chats


def read_messages(
    path: str | Path, chat: str | None = None, stats: ReadStats | None = None
) -> Iterator[ImportedMessage]:
    """Validate the file, choose `chat` (name or id), then stream its messages. Refusals come before the first
    message (unless the file changes while it is read)."""
    export = TelegramExport.open(path)
    return export.messages(export.choose(chat), stats)
