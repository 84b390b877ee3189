"""The core's Markdown subset → Telegram HTML (everything else escaped), and splitting at Telegram's 4096 limit."""

from __future__ import annotations

import html
import re

from telegram.constants import MessageLimit

MAX_MESSAGE_UNITS = MessageLimit.MAX_TEXT_LENGTH  # counted in UTF-16 units, after entity parsing

_TOKEN = re.compile(
    r"(?P<pre>```(?P<lang>[\w+-]*)\n(?P<pre_body>.*?)\n?```)"
    r"|(?P<code>`(?P<code_body>[^`\n]+)`)"
    r"|(?P<link>\[(?P<label>(?:\\.|[^\]\\\n])+)\]\((?P<url>(?:https?|tg|mailto):[^\s()]+)\))"
    r"|(?P<bold>\*\*(?P<bold_body>[^\s*](?:[^\n]*?[^\s*])?)\*\*)"
    r"|(?P<italic>(?<![\w\\])_(?P<italic_body>[^_\s](?:[^_\n]*?[^_\s])?)_(?!\w))",
    re.DOTALL,
)


def markdown_to_html(text: str) -> str:
    """Only the subset the core writes becomes markup; any other `<`, `&` or stray marker is shown as typed,
    so text quoted from a user can never break Telegram's parser."""
    out: list[str] = []
    position = 0
    for match in _TOKEN.finditer(text):
        out.append(_escape(text[position : match.start()]))
        out.append(_markup(match))
        position = match.end()
    out.append(_escape(text[position:]))
    return "".join(out)


def _markup(match: re.Match[str]) -> str:
    if match.group("pre") is not None:
        body = _escape(match.group("pre_body"))
        lang = match.group("lang")
        inner = f'<code class="language-{lang}">{body}</code>' if lang else body
        return f"<pre>{inner}</pre>"
    if match.group("code") is not None:
        return f"<code>{_escape(match.group('code_body'))}</code>"
    if match.group("link") is not None:
        label = re.sub(r"\\(.)", r"\1", match.group("label"))
        return f'<a href="{html.escape(match.group("url"), quote=True)}">{markdown_to_html(label)}</a>'
    if match.group("bold") is not None:
        return f"<b>{markdown_to_html(match.group('bold_body'))}</b>"
    return f"<i>{markdown_to_html(match.group('italic_body'))}</i>"


def _escape(text: str) -> str:
    return html.escape(text, quote=False)


def utf16_length(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def split_message(text: str, limit: int = MAX_MESSAGE_UNITS) -> list[str]:
    """Split Markdown into parts that each stay within `limit` once rendered: at a blank line, else a line
    break, else a space, else hard. Measured on the source, which is never shorter than the rendered text."""
    parts: list[str] = []
    rest = text.strip("\n")
    while utf16_length(rest) > limit:
        fits = _prefix_within(rest, limit)
        cut = rest.rfind("\n\n", 0, fits + 1)
        if cut <= 0:
            cut = rest.rfind("\n", 0, fits + 1)
        if cut <= 0:
            cut = max(rest.rfind(" ", 0, fits + 1), 0)
        if cut <= 0:
            cut = fits
        parts.append(rest[:cut].rstrip())
        if rest[cut : cut + 1] == "\n":
            rest = rest[cut:].lstrip("\n")
        elif rest[cut : cut + 1] == " ":
            rest = rest[cut + 1 :]
        else:
            rest = rest[cut:]
    if rest.strip():
        parts.append(rest)
    return [part for part in parts if part.strip()]


def _prefix_within(text: str, limit: int) -> int:
    """The longest prefix (in characters) that is at most `limit` UTF-16 units."""
    units = 0
    for index, char in enumerate(text):
        units += 2 if ord(char) > 0xFFFF else 1
        if units > limit:
            return index
    return len(text)
