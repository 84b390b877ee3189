"""What the bot says, in one place, for every platform."""

from __future__ import annotations

from bot.events import Platform
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


def unsupported(kind: str | None) -> str:
    """The answer to a message the bridge cannot save, naming its kind (a kind newer than the bridge by its key)."""
    if kind in _UNSUPPORTED:
        what = _UNSUPPORTED[kind]
    elif kind and kind != "other" and kind.isascii() and kind.replace("_", "").isalpha() and len(kind) <= 40:
        what = f"{kind.replace('_', ' ').capitalize()} messages"
    else:
        what = "This kind of message"
    return f"{what} can't be saved to Omi yet. Send text, forward text messages, or add a caption."


def omi_read_failed(exc: OmiError) -> str:
    return words.read_failed(exc)
