"""Looking before re-sending (SPEC §7): does Omi already hold a write whose outcome we never heard?"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from bot.omi.client import OmiClient
from bot.omi.models import Conversation, ExplicitMemory

#: How far around `started_at` the first window reads (Omi's FastAPI server sets created_at = started_at).
AROUND_STARTED = timedelta(minutes=1)
#: The second window starts this long before the first attempt (the staged implementation sets created_at to the
#: import time, and the bridge's clock and Omi's may differ a little).
BEFORE_FIRST_ATTEMPT = timedelta(minutes=5)
#: Extra memories read beyond the batch when looking for it (SPEC: limit ≥ the batch + 50).
MEMORY_LOOK_SLACK = 50


async def find_conversation(
    omi: OmiClient, uid: str, text: str, started_at: datetime, first_attempt_at: datetime
) -> Conversation | None:
    """The conversation with this text and `started_at`, read from two windows (the read filters on created_at):
    around `started_at`, and from shortly before the first attempt until now. None if neither holds it."""
    windows = (
        (started_at - AROUND_STARTED, started_at + AROUND_STARTED),
        (first_attempt_at - BEFORE_FIRST_ATTEMPT, None),
    )
    for start, end in windows:
        offset = 0
        while True:
            page = await omi.read_conversations(
                uid, limit=100, offset=offset, include_discarded=True, start_date=start, end_date=end
            )
            for conversation in page:
                if _same_text(conversation.sent_text, text) and _same_moment(conversation.started_at, started_at):
                    return conversation
            if not page:  # a short page is not the end (Omi skips items it cannot parse): stop at an empty one
                break
            offset += len(page)
    return None


async def held_contents(omi: OmiClient, uid: str, memories: Sequence[ExplicitMemory]) -> set[str]:
    """Which of these contents Omi already holds, read newest first (explicit memories come first)."""
    wanted = {memory.content for memory in memories}
    found = await omi.read_memories(uid, limit=len(wanted) + MEMORY_LOOK_SLACK)
    return wanted & {memory.content for memory in found}


def _same_text(found: str | None, sent: str) -> bool:
    return found is not None and (found == sent or found.strip() == sent.strip())


def _same_moment(found: datetime | None, sent: datetime) -> bool:
    if found is None:
        return False
    if found.tzinfo is None:
        found = found.replace(tzinfo=UTC)
    if sent.tzinfo is None:
        sent = sent.replace(tzinfo=UTC)
    return abs((found - sent).total_seconds()) < 0.002
