"""Reading Omi back: /recent, /memories, /search, with "More" buttons carrying Omi's offset or page."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, tzinfo
from typing import TypeVar

from bot.commands.context import CommandContext
from bot.commands.registry import REGISTRY, UsageError
from bot.events import Button
from bot.omi.models import Conversation, Memory

DEFAULT_COUNT = 5
MAX_COUNT = 20
SEARCH_PER_PAGE = 5
#: Safety stop for pages that keep coming back short (Omi skips rows it cannot parse).
MAX_PAGES = 10

T = TypeVar("T")


def parse_count_and_offset(args: str) -> tuple[int, int]:
    """`[N] [@OFFSET]`: N clamped to 1..20 (default 5); anything else is a usage error."""
    count, offset = DEFAULT_COUNT, 0
    for word in args.split():
        if word.startswith("@") and word[1:].isdigit():
            offset = int(word[1:])
        elif word.lstrip("-").isdigit():
            count = min(MAX_COUNT, max(1, int(word)))
        else:
            raise UsageError(f"{word!r} is not a number.")
    return count, offset


async def collect(fetch: Callable[[int], Awaitable[list[T]]], count: int, offset: int) -> list[T]:
    """`count` items from `offset`: more pages only until enough are collected or a page comes back empty
    (a short page is not the end: Omi skips rows it cannot parse)."""
    found: list[T] = []
    at = offset
    for _ in range(MAX_PAGES):
        page = await fetch(at)
        at += len(page)
        found += page
        if not page or len(found) >= count:
            break
    return found[:count]


def _timezone(ctx: CommandContext) -> tuple[tzinfo, str]:
    """Telegram and the console show UTC, labelled; an adapter may give the user's own zone (Slack)."""
    zone = ctx.services.timezone(ctx.message)
    return (zone, "") if zone is not None else (UTC, " UTC")


def _when(moment: datetime | None, zone: tzinfo, label: str) -> str:
    if moment is None:
        return ""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(zone).strftime("%d %b %Y %H:%M") + label


def format_conversation(conversation: Conversation, zone: tzinfo, label: str) -> str:
    structured = conversation.structured
    title = structured.title or "(untitled)"
    overview = (structured.overview or "").strip().splitlines()
    when = _when(conversation.started_at or conversation.created_at, zone, label)
    line = f"{structured.emoji or '💬'} **{title}** · {when}".rstrip(" ·")
    return f"{line}\n{overview[0]}" if overview else line


def format_memory(memory: Memory) -> str:
    tags = " ".join(f"#{tag}" for tag in memory.tags)
    return f"• {memory.content}" + (f"  {tags}" if tags else "")


@REGISTRY.command("recent", help="your newest Omi conversations (N up to 20)", usage="/recent [N]", needs="verified")
async def recent(ctx: CommandContext) -> None:
    assert ctx.link is not None
    count, offset = parse_count_and_offset(ctx.args)
    uid = ctx.link.uid
    found = await collect(lambda at: ctx.services.omi.read_conversations(uid, limit=count, offset=at), count, offset)
    if not found:
        ctx.reply("No conversations in Omi yet." if offset == 0 else "No more conversations.", private=True)
        return
    zone, label = _timezone(ctx)
    text = "\n\n".join(format_conversation(conversation, zone, label) for conversation in found)
    more = (Button("More", f"recent {count} @{offset + len(found)}"),) if len(found) == count else ()
    ctx.reply(text, buttons=more, private=True)


@REGISTRY.command("memories", help="your Omi memories (N up to 20)", usage="/memories [N]", needs="verified")
async def memories(ctx: CommandContext) -> None:
    assert ctx.link is not None
    count, offset = parse_count_and_offset(ctx.args)
    uid = ctx.link.uid
    found = await collect(lambda at: ctx.services.omi.read_memories(uid, limit=count, offset=at), count, offset)
    if not found:
        ctx.reply("No memories in Omi yet." if offset == 0 else "No more memories.", private=True)
        return
    more = (Button("More", f"memories {count} @{offset + len(found)}"),) if len(found) == count else ()
    ctx.reply("\n".join(format_memory(memory) for memory in found), buttons=more, private=True)


@REGISTRY.command("search", help="search your Omi conversations", usage="/search QUERY", needs="verified")
async def search(ctx: CommandContext) -> None:
    assert ctx.link is not None
    query, page_number = ctx.args, 1
    words = ctx.args.split()
    if len(words) == 2 and words[0].startswith("#") and words[1].startswith("p") and words[1][1:].isdigit():
        stored = await ctx.services.search_queries.get(words[0][1:])
        if stored is None:
            ctx.reply("That search has expired; search again.", private=True)
            return
        query, page_number = stored, int(words[1][1:])
    if not query.strip():
        raise UsageError("What should I search for?")
    result = await ctx.services.omi.search_conversations(
        ctx.link.uid, query.strip(), page=page_number, per_page=SEARCH_PER_PAGE
    )
    if not result.conversations:
        ctx.reply(f"Nothing found for “{query.strip()}”." if page_number == 1 else "No more results.", private=True)
        return
    zone, label = _timezone(ctx)
    text = "\n\n".join(format_conversation(conversation, zone, label) for conversation in result.conversations)
    text += f"\n\nPage {result.current_page or page_number} of {max(result.total_pages, 1)}"
    buttons: tuple[Button, ...] = ()
    if page_number < result.total_pages:
        token = await ctx.services.search_queries.remember(query.strip())
        buttons = (Button("More", f"search #{token} p{page_number + 1}"),)
    ctx.reply(text, buttons=buttons, private=True)
