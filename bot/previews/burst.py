"""Previews for a closed burst (SPEC §11): up to 3 links per saved message, every page of the burst fetched at once,
each `↳ Title — description` line added under its message. A failed fetch adds nothing; the whole burst waits at most
the fetch deadline (5 s), because the fetches run side by side."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace

from bot.events import InboundMessage
from bot.previews.page import Preview
from bot.previews.text import extract_links, render

Fetch = Callable[[str], Awaitable[Preview | None]]
#: The most a burst waits for its previews, whatever the fetcher's own deadline.
BURST_DEADLINE_SECONDS = 5.0


async def with_previews(
    messages: Sequence[InboundMessage], fetch: Fetch, deadline: float = BURST_DEADLINE_SECONDS
) -> list[InboundMessage]:
    """The messages, each with its links' preview lines under its text (the same objects when there are none)."""
    wanted = [(index, url) for index, message in enumerate(messages) for url in extract_links(message.text)]
    if not wanted:
        return list(messages)
    tasks = [asyncio.ensure_future(fetch(url)) for _, url in wanted]
    done, pending = await asyncio.wait(tasks, timeout=deadline)
    for task in pending:
        task.cancel()
    lines: dict[int, list[str]] = {}
    for (index, _), task in zip(wanted, tasks, strict=True):
        if task in done and not task.cancelled() and task.exception() is None and (found := task.result()):
            if line := render(found):
                lines.setdefault(index, []).append(line)
    return [
        replace(message, text=message.text + "\n" + "\n".join(lines[index])) if index in lines else message
        for index, message in enumerate(messages)
    ]
