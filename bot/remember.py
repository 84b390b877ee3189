"""Parse `/remember` text into Omi explicit memories (SPEC §6 Telegram `/remember`)."""

from __future__ import annotations

import re
from collections.abc import Collection

from bot.omi.models import ExplicitMemory

# A bullet counts only when followed by whitespace (or nothing), so "-5 °C" and "3.14 is pi" stay whole.
_BULLET = re.compile(r"^(?:[-*•]|\d+[.)])(?:\s+|$)")
# The whitespace before a hashtag is part of the match so removing it leaves no doubled space; requiring it
# (or the line start) keeps URL fragments ("page#anchor") and "a#b" intact.
_HASHTAG = re.compile(r"(?:^|\s+)#(\w+)")


#: Omi's limits on one explicit memory (SPEC §7): content characters, tags, characters per tag.
MAX_CONTENT_CHARS = 50_000
MAX_TAGS = 100
MAX_TAG_CHARS = 256


def _unique(tags: list[str]) -> list[str]:
    """Each tag once, in order, within Omi's limits (a longer tag is cut; tags past the hundredth are dropped)."""
    return list(dict.fromkeys(tag[:MAX_TAG_CHARS] for tag in tags))[:MAX_TAGS]


def too_long(memories: list[ExplicitMemory]) -> int | None:
    """The 1-based number of the first memory over Omi's content limit, if any."""
    return next((n for n, memory in enumerate(memories, 1) if len(memory.content) > MAX_CONTENT_CHARS), None)


def _split_tags(line: str, references: Collection[str] = ()) -> tuple[str, list[str]]:
    """A line's content without its hashtags, and those hashtags as lower-case tags in order. A `#word` that is
    a reference (a Slack channel mention) stays in the content and is no tag."""
    tags: list[str] = []

    def take(match: re.Match[str]) -> str:
        if match.group(1) in references:
            return match.group(0)
        tags.append(match.group(1).lower())
        return ""

    return _HASHTAG.sub(take, line).strip(), tags


def parse_remember(
    text: str, replied_text: str | None = None, *, references: Collection[str] = ()
) -> list[ExplicitMemory]:
    """Each non-empty line → a memory; as a reply, the replied text → one memory. [] if nothing to save.
    `references`: `#words` that are channel mentions, not hashtags."""
    if replied_text is not None and replied_text.strip():
        _, tags = _split_tags(text, references)
        return [ExplicitMemory(content=replied_text.strip(), tags=_unique(tags))]

    lines: list[tuple[str, list[str]]] = []
    shared: list[str] = []
    for raw in text.splitlines():
        line = _BULLET.sub("", raw.strip())
        if not line:
            continue
        content, tags = _split_tags(line, references)
        if content:
            lines.append((content, tags))
        else:
            shared.extend(tags)
    return [ExplicitMemory(content=content, tags=_unique(tags + shared)) for content, tags in lines]
