"""Delivery outcomes in plain words, sent back to the chat the message came from."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from bot.events import Reply
from bot.outbound import Outbound
from bot.store import ItemKind, OutboxItem

SAVED_REACTION = "👍"  # Telegram's allowed reactions do not include ✅


def format_time(moment: float) -> str:
    return datetime.fromtimestamp(moment, UTC).strftime("%H:%M UTC")


def _what(item: OutboxItem) -> str:
    if item.summary:
        return item.summary
    return {ItemKind.CONVERSATION: "your messages", ItemKind.MEMORIES: "your memories"}.get(
        item.kind, "your text for memory extraction"
    )


class ChatOutcomes:
    """The delivery worker's `Outcomes`, speaking through the adapters."""

    def __init__(self, outbound: Outbound) -> None:
        self._outbound = outbound

    async def delivered(self, items: Sequence[OutboxItem], *, discarded: bool = False) -> None:
        for item in items:
            if discarded:
                text = (
                    f"Saved {_what(item)}, but Omi found nothing worth summarising in it and marked the "
                    "conversation discarded (it is hidden in Omi)."
                )
                await self._outbound.send(Reply(item.address, text=text))
            else:
                await self._outbound.send(Reply(item.address, text=f"Saved {_what(item)}.", reaction=SAVED_REACTION))

    async def waiting(self, item: OutboxItem, reason: str, retry_at: float) -> None:
        text = f"Not in Omi yet: {reason}. It is kept safe here; next try at {format_time(retry_at)}."
        if "not enabled" in reason:
            text += " Open the Omi app and enable omi-bridge; I retry when you next write to me, or within the hour."
        await self._outbound.send(Reply(item.address, text=text))

    async def failed(self, item: OutboxItem, reason: str) -> None:
        await self._outbound.send(Reply(item.address, text=f"Could not save {_what(item)}: {reason}."))
