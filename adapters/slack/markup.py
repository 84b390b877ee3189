"""Slack markup ↔ the core's Markdown: mentions, channels and links made readable in, mrkdwn out."""

from __future__ import annotations

import re
from collections.abc import Mapping

# Code is left alone in both directions: a fenced block first, then an inline span.
_CODE = re.compile(r"```.*?```|`[^`\n]+`", re.DOTALL)
_TOKEN = re.compile(r"<([^<>\n]+)>")
_USER_MENTION = re.compile(r"<@([UW][A-Z0-9]+)(?:\|[^>]*)?>")
#: A channel mention without a label (`<#C123>`, or `<#C123|>` as newer clients send it).
_BARE_CHANNEL = re.compile(r"<#([CGD][A-Z0-9]+)\|?>")

# Slack's `*bold*` / `~strike~` (one marker), the core's `**bold**` (two markers).
_SLACK_BOLD = re.compile(r"(?<![\w*\\])\*(?=\S)([^*\n]+?)(?<=\S)\*(?![\w*])")
_SLACK_STRIKE = re.compile(r"(?<![\w~])~(?=\S)([^~\n]+?)(?<=\S)~(?![\w~])")
_MD_BOLD = re.compile(r"\*\*(?=\S)(.+?)(?<=\S)\*\*")
_MD_STRIKE = re.compile(r"~~(?=\S)(.+?)(?<=\S)~~")
_MD_LINK = re.compile(r"\[([^\]\n]+)\]\((https?://[^)\s]+|mailto:[^)\s]+)\)")

_SPECIAL = {"here": "@here", "channel": "@channel", "everyone": "@everyone"}


def mentioned_users(text: str) -> set[str]:
    """The user ids a Slack message mentions (`<@U123>`), to look up their real names first."""
    return set(_USER_MENTION.findall(text))


def unlabelled_channels(text: str) -> set[str]:
    """The channel ids a message mentions without their names (`<#C123>`), to look the names up first."""
    return set(_BARE_CHANNEL.findall(text))


_CHANNEL = re.compile(r"<#([CGD][A-Z0-9]+)(?:\|([^>]*))?>")


def referenced_channels(text: str, channels: Mapping[str, str]) -> tuple[str, ...]:
    """The names the channel mentions in `text` are shown as (`#name`): references, never hashtags."""
    found = [
        unescape(label or "") or channels.get(channel_id) or channel_id for channel_id, label in _CHANNEL.findall(text)
    ]
    return tuple(dict.fromkeys(found))


def unescape(text: str) -> str:
    """Slack escapes exactly these three characters in message text."""
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _split_code(text: str) -> list[tuple[str, bool]]:
    """(segment, is_code) pieces in order."""
    pieces: list[tuple[str, bool]] = []
    last = 0
    for match in _CODE.finditer(text):
        if match.start() > last:
            pieces.append((text[last : match.start()], False))
        pieces.append((match.group(0), True))
        last = match.end()
    if last < len(text):
        pieces.append((text[last:], False))
    return pieces


def _link(url: str, label: str | None) -> str:
    url, label = unescape(url), unescape(label) if label is not None else None
    if not label or label == url:
        return url
    bare = re.sub(r"^(https?://|mailto:)", "", url)
    if label == bare:
        # Slack's auto-link of a bare address (`example.com`, `a@b.org`): the label adds nothing.
        return label if url.startswith("mailto:") else url
    return f"{label} ({url})"


def _token_to_markdown(inner: str, names: Mapping[str, str], channels: Mapping[str, str]) -> str:
    target, _, label = inner.partition("|")
    if target.startswith("@"):
        user_id = target[1:]
        return "@" + (names.get(user_id) or unescape(label) or user_id)
    if target.startswith("#"):
        return "#" + (unescape(label) or channels.get(target[1:]) or target[1:])
    if target.startswith("!"):
        command = target[1:].split("^", 1)[0]
        if command in _SPECIAL:
            return _SPECIAL[command]
        return unescape(label) if label else "@" + command  # `<!subteam^S1|@team>`, `<!date^…|fallback>`
    return _link(target, label or None)


def slack_to_markdown(text: str, names: Mapping[str, str], channels: Mapping[str, str] | None = None) -> str:
    """A Slack message's text as the core's Markdown: `<@U1>` → `@Real Name`, `<#C1|general>` → `#general`,
    `<https://x|label>` → `label (https://x)`, `*bold*` → `**bold**`, entities unescaped; code kept as it is.
    `names` maps user ids to real names (see `mentioned_users`), `channels` channel ids to names for mentions
    without a label (see `unlabelled_channels`)."""
    channels = channels or {}
    out: list[str] = []
    for segment, is_code in _split_code(text):
        if is_code:
            out.append(unescape(segment))
            continue
        segment = _SLACK_BOLD.sub(r"**\1**", segment)
        segment = _SLACK_STRIKE.sub(r"~~\1~~", segment)
        parts: list[str] = []
        last = 0
        for match in _TOKEN.finditer(segment):
            parts.append(unescape(segment[last : match.start()]))
            parts.append(_token_to_markdown(match.group(1), names, channels))
            last = match.end()
        parts.append(unescape(segment[last:]))
        out.append("".join(parts))
    return "".join(out)


def markdown_to_mrkdwn(text: str) -> str:
    """The core's Markdown as Slack mrkdwn: `**bold**` → `*bold*`, `[label](url)` → `<url|label>`, `&<>` escaped
    (Slack would otherwise read them as markup); `_italic_` and backticks mean the same in both."""
    out: list[str] = []
    for segment, is_code in _split_code(text):
        if is_code:
            out.append(escape(segment))
            continue
        segment = escape(segment)
        segment = _MD_LINK.sub(lambda m: f"<{m.group(2)}|{m.group(1).replace('|', '¦')}>", segment)
        segment = _MD_BOLD.sub(r"*\1*", segment)
        segment = _MD_STRIKE.sub(r"~\1~", segment)
        out.append(segment)
    return "".join(out)
