"""Linking commands: claim a token from the Omi setup page, then verify with the code from the Omi app."""

from __future__ import annotations

from datetime import UTC, datetime

from bot.commands.context import CommandContext
from bot.commands.registry import REGISTRY, UsageError
from bot.linking import ClaimOutcome, CodeOutcome, VerifyOutcome
from bot.texts import cmd


async def claim_token(ctx: CommandContext, token: str) -> None:
    outcome = await ctx.services.linking.claim(ctx.account, token, handle_hint=ctx.message.sender_id)
    if outcome is ClaimOutcome.BAD_TOKEN:
        ctx.reply(
            "That link token is unknown, already used or expired (tokens last 15 minutes). Open omi-bridge's setup"
            " page again from the Omi app for a new one.",
            private=True,
        )
        return
    verify = cmd(ctx.message.platform, "verify")
    text = (
        "Almost linked. Open the Omi app and finish installing omi-bridge: a 6-digit code arrives there."
        f" Then type {verify} CODE here. Until then I keep what you send and deliver it once you are verified."
    )
    if ctx.link is not None:
        text += " Your current link stays active until you verify the new one."
    ctx.reply(text, private=True)
    await _send_code(ctx, announce=None)


async def _send_code(ctx: CommandContext, announce: str | None) -> None:
    """Make a code and send it through Omi; what the code delivery says comes after this command's answer."""
    made = await ctx.services.linking.new_code(ctx.account)
    if made.outcome is CodeOutcome.NO_CLAIM:
        ctx.reply("There is no link waiting for a code on this chat.", private=True)
        return
    if made.outcome is CodeOutcome.TOO_MANY:
        retry = datetime.fromtimestamp(made.next_allowed_at, UTC).strftime("%H:%M UTC")
        ctx.reply(f"That is 3 codes in the last hour for this Omi account; try again after {retry}.", private=True)
        return
    if announce:
        ctx.reply(announce, private=True)
    await ctx.flush_replies()
    ctx.services.linking.deliver_code(ctx.account, made.uid, made.code, ctx.private_address())


@REGISTRY.command(
    "link", help="link this chat with the token from the Omi setup page", usage="/link TOKEN", private_only=True
)
async def link(ctx: CommandContext) -> None:
    if not ctx.args:
        raise UsageError("Open omi-bridge in the Omi app and follow its setup link to get a token.")
    await claim_token(ctx, ctx.args.split()[0])


@REGISTRY.command(
    "verify",
    help="finish linking with the code from your Omi app (alone: send a new code)",
    usage="/verify CODE",
    private_only=True,
)
async def verify(ctx: CommandContext) -> None:
    platform = ctx.message.platform
    if not ctx.args:
        await _send_code(ctx, announce="Sending a new code to your Omi app; the old one no longer works.")
        return
    code = ctx.args.replace(" ", "")
    if not (len(code) == 6 and code.isdigit()):
        raise UsageError("The code is the 6 digits shown in your Omi app.")
    result = await ctx.services.linking.verify(ctx.account, code)
    again = cmd(platform, "verify")
    if result.outcome is VerifyOutcome.VERIFIED:
        ctx.services.wake_delivery()
        text = "Verified: this chat is linked to your Omi account."
        if result.released:
            text += f" {result.released} waiting item(s) are on their way to Omi."
        ctx.reply(text, private=True)
    elif result.outcome is VerifyOutcome.WRONG:
        ctx.reply(f"That code is not right; {result.attempts_left} tries left.", private=True)
    elif result.outcome is VerifyOutcome.VOIDED:
        ctx.reply(
            "Five wrong codes: I cancelled this link and dropped what was waiting for it. Open the setup page"
            " from the Omi app to start again.",
            private=True,
        )
    elif result.outcome is VerifyOutcome.EXPIRED:
        ctx.reply(f"That code has expired (codes last 30 minutes); send {again} for a new one.", private=True)
    elif result.outcome is VerifyOutcome.NO_CODE:
        ctx.reply(f"No code was sent yet; send {again} to get one.", private=True)
    else:
        ctx.reply("There is no link waiting for a code on this chat.", private=True)
