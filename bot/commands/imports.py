"""The buttons under an in-chat import's summary (SPEC §10): Import and Cancel, as the hidden command `import`."""

from __future__ import annotations

from bot import texts
from bot.commands.context import CommandContext
from bot.commands.registry import REGISTRY
from bot.importing.chat import COMMAND


@REGISTRY.command(COMMAND, help="the Import / Cancel buttons under an import's summary", hidden=True, private_only=True)
async def import_choice(ctx: CommandContext) -> None:
    imports = ctx.services.imports
    if imports is None:
        ctx.reply(texts.IMPORT_GONE)
        return
    ctx.replies.extend(await imports.choose(ctx.message, ctx.args))
