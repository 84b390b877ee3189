"""What the bot says, in one place, for every platform."""

from __future__ import annotations

from bot.events import Audio, Platform, clock_text
from bot.omi import words
from bot.omi.errors import OmiError


def cmd(platform: Platform, name: str) -> str:
    """How a user types a command on their platform: `/remember`, or `/omi remember` on Slack."""
    return f"/omi {name}" if platform is Platform.SLACK else f"/{name}"


def unknown_command(name: str) -> str:
    return f"I don't know the command /{name}."


PRIVATE_ONLY = "That command works in a private chat with me; I've answered you there."


def not_linked(platform: Platform) -> str:
    return (
        "This chat is not linked to an Omi account yet, so I did not keep your message. To link: open the Omi app,"
        " find omi-bridge under Apps, enable it and follow its setup link"
        f" (it gives you a {cmd(platform, 'link')} code)."
    )


def needs_verify(platform: Platform = Platform.TELEGRAM) -> str:
    return (
        "Finish linking first: type the 6-digit code that arrived in your Omi app with"
        f" {cmd(platform, 'verify')} CODE ({cmd(platform, 'verify')} alone sends a new one)."
    )


def held_until_verified(platform: Platform) -> str:
    return (
        "Kept, not sent to Omi yet: your link is not verified. Type the code from your Omi app with"
        f" {cmd(platform, 'verify')} CODE; I keep these messages for 24 hours."
    )


def usage(usage_line: str, detail: str = "") -> str:
    return f"{detail}\nUsage: {usage_line}" if detail else f"Usage: {usage_line}"


_UNSUPPORTED = {
    "voice": "Voice messages",
    "video_note": "Video messages",
    "video": "Videos without a caption",
    "audio": "Audio files",
    "sticker": "Stickers",
    "photo": "Photos without a caption",
    "animation": "GIFs without a caption",
    "document": "Files other than .txt/.md text up to 1 MB",
    "paid_media": "Paid media without a caption",
    "live_photo": "Live photos without a caption",
    "story": "Stories",
    "dice": "Dice",
    "web_app_data": "Web App data",
    "passport_data": "Telegram Passport data",
}


_VOICE = {"voice", "audio", "video_note"}


def unsupported(kind: str | None) -> str:
    """The answer to a message the bridge cannot save, naming its kind (a kind newer than the bridge by its key)."""
    if kind in _UNSUPPORTED:
        what = _UNSUPPORTED[kind]
    elif kind and kind != "other" and kind.isascii() and kind.replace("_", "").isalpha() and len(kind) <= 40:
        what = f"{kind.replace('_', ' ').capitalize()} messages"
    else:
        what = "This kind of message"
    if kind in _VOICE:
        # SPEC §11: without a speech-to-text service (TRANSCRIBE_URL) voice is not saved, and the user learns why.
        return f"{what} can't be saved to Omi yet: that needs the operator to set up transcription. Send text instead."
    return f"{what} can't be saved to Omi yet. Send text, forward text messages, or add a caption."


def voice_label(audio: Audio | None) -> str:
    """`voice 0:42` (SPEC §11's `Author (voice 0:42): …`); `voice` when the platform gave no duration."""
    length = clock_text(audio.duration if audio is not None else None)
    return f"voice {length}" if length else "voice"


def voice_placeholder(audio: Audio | None, reason: str) -> str:
    """What a voice message that could not be transcribed is kept as (SPEC §11's fixed phrase)."""
    length = clock_text(audio.duration if audio is not None else None)
    what = f"voice message {length}" if length else "voice message"
    return f"[{what}, not transcribed: {reason}]"


def voice_failed(audio: Audio | None, reason: str) -> str:
    length = clock_text(audio.duration if audio is not None else None)
    what = f"your voice message ({length})" if length else "your voice message"
    return (
        f"I couldn't transcribe {what}: {reason}. It is saved with the rest as"
        f" {voice_placeholder(audio, reason)}; send the words as text if they matter."
    )


def omi_read_failed(exc: OmiError) -> str:
    return words.read_failed(exc)


# --- imports in chat (SPEC §10) ------------------------------------------------------------------------------------

IMPORT_GONE = (
    "This import is no longer waiting for a choice (it was cancelled, expired or replaced by a newer file)."
    " Send the export again to import it."
)
IMPORT_CANCELLED = "Cancelled: nothing was imported."
IMPORT_HOW = (
    "To import a chat's history, send me its export as a file: in Telegram Desktop open the chat, ⋮ → Export chat"
    " history, Format: Machine-readable JSON, then send me the result.json it writes."
)


def _count(number: int, noun: str) -> str:
    return f"{number:,} {noun}" + ("" if number == 1 else "s")


def _megabytes(size: int) -> str:
    return f"{size / (1024 * 1024):.1f} MB"


def import_too_big(size: int | None, limit: int, account: str) -> str:
    what = f"This file is {_megabytes(size)}" if size else "This file is too big"
    return (
        f"{what}; Telegram lets bots download files of at most {_megabytes(limit)}. Ask the operator of this"
        f" omi-bridge to import it on the server: `omi-bridge import telegram result.json --as {account}`."
    )


def import_unavailable(name: str) -> str:
    return f"I could not download {name or 'the file'} from Telegram; please send it again."


def import_several_chats(names_and_counts: list[tuple[str, int | None]], listed: int = 10) -> str:
    lines = [f"This export holds {len(names_and_counts)} chats; I import one chat at a time:"]
    for name, count in names_and_counts[:listed]:
        lines.append(f"• {name}" + (f" · {_count(count, 'message')}" if count is not None else ""))
    if len(names_and_counts) > listed:
        lines.append(f"… and {len(names_and_counts) - listed} more")
    lines.append(
        "Send me the export of one chat: in Telegram Desktop open the chat, ⋮ → Export chat history,"
        " Format: Machine-readable JSON, then send me the result.json it writes."
    )
    return "\n".join(lines)


IMPORT_NO_CHAT = "This export holds no chat to import."


def import_nothing_new(chat_name: str, already: int) -> str:
    if already:
        return f"Nothing new to import from {chat_name}: all {_count(already, 'message')} were imported before."
    return f"Nothing to import from {chat_name}: the export holds no messages with text or media."


def import_offer(chat_name: str, messages: int, first: str, last: str, conversations: int, already: int) -> str:
    """`1,240 messages from Family, 2019-03-01 – 2024-11-20 → 87 conversations` (SPEC §10)."""
    dates = first if first == last else f"{first} – {last}"
    text = f"{_count(messages, 'message')} from {chat_name}, {dates} → {_count(conversations, 'conversation')}."
    if already:
        text += f" {_count(already, 'message')} already imported before are left out."
    return text + "\nImport them into Omi?"


def import_progress(chat_name: str, delivered: int, total: int, failed: int = 0) -> str:
    text = f"Importing {chat_name} into Omi: {delivered:,}/{total:,} delivered"
    return text + (f", {failed:,} failed" if failed else "") + "…"


def import_finished(chat_name: str, delivered: int, total: int, failures: list[tuple[str, str]], shown: int = 3) -> str:
    text = f"Imported {delivered:,}/{total:,} from {chat_name}."
    if failures:
        text += f" {_count(len(failures), 'conversation')} failed:"
        text += "".join(f"\n• {summary}: {reason}" for summary, reason in failures[:shown])
        if len(failures) > shown:
            text += f"\n… and {len(failures) - shown} more"
    return text


def import_stopped(chat_name: str) -> str:
    return f"Import of {chat_name} cancelled: you unlinked this chat, and what was not yet in Omi was deleted."


def import_status(chat_name: str, delivered: int, total: int, failed: int = 0) -> str:
    """A `/status` line: `Import of Family: 12/87 delivered`."""
    return f"Import of {chat_name}: {delivered:,}/{total:,} delivered" + (f", {failed:,} failed" if failed else "")


def import_offered(chat_name: str) -> str:
    return f"Import of {chat_name}: waiting for you to press Import or Cancel."


def imports_cancelled(chat_names: list[str], deleted: int) -> str:
    names = ", ".join(chat_names)
    were = "was" if deleted == 1 else "were"
    return f"I cancelled your import of {names}; {_count(deleted, 'conversation')} not yet in Omi {were} deleted."
