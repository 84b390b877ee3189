"""Everyday commands: help, remember, extract, save, status, unlink."""

from __future__ import annotations

from datetime import UTC, datetime

from bot import texts
from bot.commands.context import CommandContext
from bot.commands.help import help_text
from bot.commands.linking import claim_token
from bot.commands.registry import REGISTRY, UsageError
from bot.compose import burst_summary, compose_burst
from bot.events import Button, ForwardOrigin, InboundMessage
from bot.omi.models import NewMemories
from bot.remember import MAX_CONTENT_CHARS, parse_remember, too_long
from bot.store import ItemKind, ItemState
from bot.store.database import Conn
from bot.store.links import Links


@REGISTRY.command("help", help="what I do, what I store, how to link")
async def help_command(ctx: CommandContext) -> None:
    ctx.reply(help_text(ctx.message.platform))


@REGISTRY.command("start", help="link with a token from the Omi setup page, or see what I do", hidden=True)
async def start(ctx: CommandContext) -> None:
    """Telegram's deep link (`/start TOKEN`) claims the token; without one, the help (in sandbox mode, after
    linking the chat to the sandbox's test uid)."""
    if ctx.args:
        await claim_token(ctx, ctx.args)
        return
    uid = ctx.services.sandbox_uid
    if uid and ctx.link is None:
        links = ctx.services.links
        await ctx.write(lambda conn: links.set_verified(conn, ctx.account, uid, handle_hint=ctx.message.sender_id))
        ctx.reply("SANDBOX: linked this chat to the sandbox's test Omi account. Nothing leaves this machine.")
    ctx.reply(help_text(ctx.message.platform))


@REGISTRY.command(
    "remember",
    help="save each line as an Omi memory (#tags become tags); as a reply: that message",
    usage="/remember TEXT",
    needs="link",
)
async def remember(ctx: CommandContext) -> None:
    replied = ctx.message.reply_to.text if ctx.message.reply_to is not None else None
    references = ctx.message.command.references if ctx.message.command is not None else ()
    memories = parse_remember(ctx.args, replied, references=references)
    if not memories:
        raise UsageError("Nothing to remember.")
    if (number := too_long(memories)) is not None:
        raise UsageError(f"Memory {number} is longer than Omi's {MAX_CONTENT_CHARS:,} characters; split it up.")
    count = len(memories)
    await ctx.queue(
        ItemKind.MEMORIES,
        NewMemories(memories=memories, text_source_spec=ctx.message.platform.value),
        summary=f"{count} memor{'y' if count == 1 else 'ies'}",
    )


@REGISTRY.command(
    "extract",
    help="let Omi pick the memories out of a text (or the message you reply to)",
    usage="/extract TEXT",
    needs="link",
)
async def extract(ctx: CommandContext) -> None:
    text = ctx.args
    if ctx.message.reply_to is not None and ctx.message.reply_to.text.strip():
        text = ctx.message.reply_to.text
    if not text.strip():
        raise UsageError("Nothing to extract from.")
    await ctx.queue(
        ItemKind.EXTRACT,
        NewMemories(text=text.strip(), text_source_spec=ctx.message.platform.value),
        summary="your text for memory extraction",
    )


def _as_saved_message(message: InboundMessage) -> InboundMessage:
    """A message saved on request keeps its original author: a forward's origin, else its sender."""
    if message.forward_origin is not None:
        return message
    origin = ForwardOrigin(kind="user", name=message.sender_name, date=message.sent_at)
    return InboundMessage(
        platform=message.platform,
        chat_id=message.chat_id,
        sender_id=message.sender_id,
        sender_name=message.sender_name,
        message_id=message.message_id,
        sequence=message.sequence,
        sent_at=message.sent_at,
        text=message.text,
        forward_origin=origin,
        location=message.location,
        language=message.language,
    )


@REGISTRY.command(
    "save",
    help="as a reply (e.g. in a group): save that message with its original author",
    usage="/save (as a reply to a message)",
    needs="link",
)
async def save(ctx: CommandContext) -> None:
    targets = list(ctx.message.attached) or ([ctx.message.reply_to] if ctx.message.reply_to is not None else [])
    if not targets:
        raise UsageError("Reply to the message you want to save.")
    saved = [_as_saved_message(target) for target in targets]
    conversations = compose_burst(saved)
    if not conversations:
        raise UsageError("That message has no text I can save.")
    await ctx.queue(ItemKind.CONVERSATION, conversations, summary=burst_summary(saved))


@REGISTRY.command("status", help="your link, what is waiting and why, the last delivery")
async def status(ctx: CommandContext) -> None:
    outbox = ctx.services.outbox
    lines = []
    if ctx.link is not None:
        lines.append(f"Linked to Omi (verified) since {_date(ctx.link.verified_at or ctx.link.created_at)}.")
    if ctx.claim is not None:
        lines.append(texts.needs_verify(ctx.message.platform))
    if ctx.link is None and ctx.claim is None:
        lines.append(texts.not_linked(ctx.message.platform))
    if ctx.services.imports is not None:
        lines += await ctx.services.imports.status_lines(ctx.account)
    # An import's items are told as its one line above, not one by one.
    waiting = [item for item in await outbox.open_for_account(ctx.account) if item.import_id is None]
    if waiting:
        lines.append(f"Waiting for Omi: {len(waiting)} item(s).")
        for item in waiting[:5]:
            why = {
                ItemState.HELD: "held until you verify",
                ItemState.BLOCKED: "the Omi app is not enabled for you; retrying now",
                ItemState.UNKNOWN: "checking whether Omi saved it",
                ItemState.SENDING: "being sent",
            }.get(item.state, item.last_error or "queued")
            lines.append(f"• {item.kind.value}: {why}")
    else:
        lines.append("Nothing is waiting.")
    last = await outbox.last_finished(ctx.account)
    if last is not None:
        outcome = "delivered" if last.state is ItemState.DONE else f"failed ({last.last_error})"
        lines.append(f"Last delivery: {last.kind.value} {outcome}.")
    ctx.reply("\n".join(lines), private=True)


@REGISTRY.command(
    "unlink",
    help="remove your link and everything I hold for you",
    usage="/unlink",
)
async def unlink(ctx: CommandContext) -> None:
    if ctx.link is None and ctx.claim is None:
        ctx.reply("This chat is not linked to an Omi account; there is nothing to remove.", private=True)
        return
    if ctx.args == "confirm":
        imports = ctx.services.imports
        running = await imports.running(ctx.account) if imports is not None else []

        def remove(conn: Conn) -> int:
            deleted = imports.cancel_in(conn, ctx.account) if imports is not None else 0
            Links.delete_account(conn, ctx.account)
            return deleted

        deleted = await ctx.write(remove)
        text = (
            "Unlinked. I removed the link and everything I held for you. What is already in Omi stays there"
            " (Omi's API has no deletes); remove it in the Omi app if you want."
        )
        if running:
            text += " " + texts.imports_cancelled([record.chat_name for record in running], deleted)
        ctx.reply(text, private=True)
        return
    if ctx.args == "cancel":
        ctx.reply("Kept your link.", private=True)
        return
    ctx.reply(
        "Unlink this chat from your Omi account? Messages waiting here for Omi are deleted too.",
        buttons=(Button("Yes, unlink", "unlink confirm"), Button("Cancel", "unlink cancel")),
        private=True,
    )


def _date(moment: float) -> str:
    return datetime.fromtimestamp(moment, UTC).strftime("%d %b %Y %H:%M UTC")
