"""Linking a chat account to an Omi uid: claim a token from the setup page, then verify a code."""

from __future__ import annotations

from bot.commands.context import CommandContext
from bot.commands.registry import REGISTRY, UsageError


async def claim_token(ctx: CommandContext, token: str) -> None:
    ctx.reply(
        "Linking with a setup-page token is not available in this version yet; the operator can link you with"
        f" `omi-bridge link {ctx.account} UID`.",
        private=True,
    )


@REGISTRY.command("link", help="link this chat with the token from the Omi setup page", usage="/link TOKEN")
async def link(ctx: CommandContext) -> None:
    if not ctx.args:
        raise UsageError("Open omi-bridge in the Omi app and follow its setup link to get a token.")
    await claim_token(ctx, ctx.args.split()[0])


@REGISTRY.command("verify", help="finish linking with the code from your Omi app", usage="/verify CODE")
async def verify(ctx: CommandContext) -> None:
    ctx.reply("There is no link waiting for a code on this chat.", private=True)
