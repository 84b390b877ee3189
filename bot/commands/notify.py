"""`/notify` (Slack `/omi notify`, SPEC §12): whether new Omi conversations are pushed into this chat — each one
(`on`), once a day (`digest HH:MM [±HH:MM]`), or not (`off`, the default)."""

from __future__ import annotations

import re
from datetime import UTC, datetime

from bot.commands.context import CommandContext
from bot.commands.registry import REGISTRY, UsageError
from bot.events import Platform
from bot.pushes.render import parse_zone, zone_label
from bot.store.pushes import NotifySetting
from bot.texts import cmd

_TIME = re.compile(r"^([01]?\d|2[0-3]):([0-5]\d)$")
_OFFSET = re.compile(r"^(?:UTC)?[+-](?:0?\d|1[0-4])(?::?[0-5]\d)?$", re.IGNORECASE)


def _how(platform: Platform) -> str:
    notify = cmd(platform, "notify")
    return (
        f"{notify} on — each new conversation Omi records; {notify} digest HH:MM [±HH:MM] — one message a day at"
        f" that time; {notify} off."
    )


def describe(setting: NotifySetting | None) -> str:
    if setting is None:
        return "off: I don't send you Omi's new conversations"
    zone = parse_zone(setting.zone)
    if setting.mode == "digest":
        minute = setting.digest_minute or 0
        label = zone_label(zone, datetime.now(UTC))
        return f"a daily digest at {minute // 60:02d}:{minute % 60:02d} {label}"
    return "on: each new conversation Omi records comes here"


@REGISTRY.command(
    "notify",
    help="get the conversations Omi records here: on, a daily digest, or off",
    usage="/notify [on | off | digest HH:MM [±HH:MM]]",
    needs="verified",
    private_only=True,
)
async def notify(ctx: CommandContext) -> None:
    pushes = ctx.services.pushes
    if pushes is None:
        ctx.reply("Pushing Omi's conversations into the chat is not available on this bridge.", private=True)
        return
    words = ctx.args.split()
    current = await pushes.setting(ctx.account)
    now = ctx.services.clock_now()
    own_zone = ctx.services.timezone(ctx.message)  # Slack: the user's tz; Telegram: unknown
    own = getattr(own_zone, "key", None)
    if not words:
        ctx.reply(f"Omi → chat is {describe(current)}.\n{_how(ctx.message.platform)}", private=True)
        return
    choice = words[0].lower()
    if choice == "off" and len(words) == 1:
        await pushes.set_mode(ctx.account, None, now)
        ctx.reply("Omi → chat is off: I won't send you Omi's new conversations.", private=True)
        return
    if choice == "on" and len(words) == 1:
        zone = own or (current.zone if current is not None else None)
        await pushes.set_mode(ctx.account, NotifySetting(ctx.account, "on", zone=zone), now)
        ctx.reply(
            "Omi → chat is on: each new conversation Omi records (from your wearable or the app) comes here, with"
            " its action items.",
            private=True,
        )
        return
    if choice == "digest" and len(words) in (2, 3):
        time = _TIME.match(words[1])
        if time is None or (len(words) == 3 and not _OFFSET.match(words[2])):
            raise UsageError("Give the time as HH:MM (24 hours) and, if you like, your offset from UTC as ±HH:MM.")
        minute = int(time.group(1)) * 60 + int(time.group(2))
        zone = words[2] if len(words) == 3 else own
        setting = NotifySetting(ctx.account, "digest", digest_minute=minute, zone=zone)
        await pushes.set_mode(ctx.account, setting, now)
        ctx.reply(f"Omi → chat is {describe(setting)}: the day's conversations and their action items.", private=True)
        return
    raise UsageError("")
