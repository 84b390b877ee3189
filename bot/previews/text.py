"""Finding links in a message (plain text or Markdown) and the one line a preview adds under it."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from bot.previews.page import Preview

#: A candidate starts at http:// or https:// and runs to whitespace or a character that cannot end a bare URL in
#: chat text; trailing punctuation and unbalanced closing brackets are trimmed afterwards.
_CANDIDATE = re.compile(r"(?<![\w.+-])https?://[^\s<>\"'`\[\]{}|\\^]+", re.IGNORECASE)
_TRAILING = ".,;:!?*_~'\""
_PAIRS = {")": "(", "]": "[", "}": "{"}
RENDER_MAX = 200
TITLE_MAX = 100


def _trim(candidate: str) -> str:
    while candidate:
        last = candidate[-1]
        if last in _TRAILING:
            candidate = candidate[:-1]
        elif last in _PAIRS and candidate.count(last) > candidate.count(_PAIRS[last]):
            candidate = candidate[:-1]
        else:
            break
    return candidate


def _valid(url: str) -> bool:
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError:
        return False
    return parts.scheme.lower() in ("http", "https") and bool(parts.hostname)


def extract_links(text: str, limit: int = 3) -> list[str]:
    """The first `limit` distinct http(s) links of a message, in order (Markdown `[label](url)` and `<url>` too)."""
    found: list[str] = []
    for match in _CANDIDATE.finditer(text or ""):
        if len(found) >= limit:
            break
        url = _trim(match.group(0))
        if _valid(url) and url not in found:
            found.append(url)
    return found


def _shorten(text: str, limit: int) -> str:
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    cut = text[: limit - 1].rstrip()
    space = cut.rfind(" ")
    if space > limit // 2:
        cut = cut[:space]
    return cut.rstrip(" ,;:—-") + "…"


def render(preview: Preview) -> str:
    """`↳ Title — description`, one line, at most `RENDER_MAX` characters ("" when there is nothing to show)."""
    title = _shorten(preview.title, TITLE_MAX)
    room = RENDER_MAX - len("↳ ") - (len(title) + len(" — ") if title else 0)
    description = _shorten(preview.description, room) if room > 1 else ""
    body = " — ".join(part for part in (title, description) if part)
    return f"↳ {body}" if body else ""
