"""`/help` (and `/start` without a token): what the bot does, what it stores, and every listed command."""

from __future__ import annotations

from bot.commands.registry import REGISTRY
from bot.events import Platform
from bot.texts import cmd


def help_text(platform: Platform) -> str:
    lines = [
        "I save what you send me into your Omi account.",
        "• Forward messages (or paste text): a burst of them becomes one Omi conversation, each message with its"
        " original author and time.",
        f"• {cmd(platform, 'remember')} text: each line becomes an Omi memory; #hashtags become tags.",
        "• Voice messages, audio files and video notes: transcribed (by the speech-to-text service the operator"
        ' set up) and saved with the burst as "Name (voice 0:42): …"; I answer 🎤 with what I heard so you can'
        " check it. Without a service set up I say so and save the rest.",
        "• Links in what you save get their page's title and description underneath (unless the operator turned"
        " link previews off): I fetch those pages from public addresses only.",
        "",
        "Commands:",
    ]
    for spec in REGISTRY.listed():
        usage = spec.usage.replace("/", cmd(platform, ""), 1) if spec.usage.startswith("/") else spec.usage
        lines.append(f"{usage} — {spec.help}")
    lines += [
        "",
        "What I store: your chat id and the Omi account it is linked to; messages only until Omi has them"
        " (then they are deleted here); ids of processed messages for 7 days.",
        "To link: open omi-bridge in the Omi app and follow its setup link.",
    ]
    return "\n".join(lines)
