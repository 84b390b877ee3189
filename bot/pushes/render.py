"""How a pushed conversation reads in chat (SPEC §12): emoji and title, up to three lines of overview, the action
items as a list, the time in the user's zone — in the core's Markdown subset, which each adapter renders (Telegram
HTML, Slack mrkdwn). Digests list several, one block each."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from bot.omi.models import Conversation

OVERVIEW_LINES = 3
LINE_CHARS = 300
MAX_ACTION_ITEMS = 10
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_OFFSET = re.compile(r"^(?:UTC)?([+-])(\d{1,2})(?::?(\d{2}))?$", re.IGNORECASE)


def kept(conversation: Conversation) -> dict[str, Any]:
    """What SPEC §12 keeps of Omi's copy until it is sent: id, title, overview, emoji, action items, times, discarded,
    app id — nothing else (no transcript, no text)."""
    structured = conversation.structured
    items = [
        str(item.get("description") or item.get("content") or "").strip()
        for item in structured.action_items
        if isinstance(item, dict)
    ]
    when = conversation.started_at or conversation.created_at
    return {
        "id": conversation.id,
        "title": structured.title.strip(),
        "overview": structured.overview.strip(),
        "emoji": structured.emoji.strip(),
        "action_items": [item for item in items if item],
        "started_at": when.astimezone(UTC).isoformat() if when is not None else None,
        "finished_at": conversation.finished_at.astimezone(UTC).isoformat() if conversation.finished_at else None,
        "discarded": conversation.discarded,
        "app_id": conversation.app_id,
    }


def parse_zone(zone: str | None) -> tzinfo:
    """An IANA name (Slack's `tz`), an offset like `+02:00` / `-5` (Telegram's `/notify digest`), else UTC."""
    if not zone:
        return UTC
    offset = _OFFSET.match(zone.strip())
    if offset is not None:
        sign, hours, minutes = offset.groups()
        delta = timedelta(hours=int(hours), minutes=int(minutes or 0))
        return timezone(-delta if sign == "-" else delta)
    try:
        return ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError):
        return UTC


def zone_label(zone: tzinfo, moment: datetime) -> str:
    """ "UTC", "UTC+02:00", or the zone's own abbreviation ("CET")."""
    if zone is UTC:
        return "UTC"
    if isinstance(zone, timezone):
        offset = zone.utcoffset(None)
        total = int(offset.total_seconds()) // 60 if offset is not None else 0
        sign = "+" if total >= 0 else "-"
        return f"UTC{sign}{abs(total) // 60:02d}:{abs(total) % 60:02d}"
    return moment.astimezone(zone).tzname() or "UTC"


def _time(content: dict[str, Any], zone: tzinfo) -> str:
    raw = content.get("started_at")
    if not raw:
        return ""
    moment = datetime.fromisoformat(raw).astimezone(zone)
    return f"{moment:%H:%M} {zone_label(zone, moment)}, {moment.day} {_MONTHS[moment.month - 1]}"


def _cut(line: str) -> str:
    return line if len(line) <= LINE_CHARS else line[: LINE_CHARS - 1].rstrip() + "…"


def block(content: dict[str, Any], zone: tzinfo) -> str:
    title = content.get("title") or "A new conversation"
    emoji = content.get("emoji") or "🗒️"
    lines = [f"{emoji} **{title}**"]
    overview = [line.strip() for line in str(content.get("overview") or "").splitlines() if line.strip()]
    lines += [_cut(line) for line in overview[:OVERVIEW_LINES]]
    items = list(content.get("action_items") or [])
    if items:
        lines.append("Action items:")
        lines += [f"• {_cut(item)}" for item in items[:MAX_ACTION_ITEMS]]
        if len(items) > MAX_ACTION_ITEMS:
            lines.append(f"• … and {len(items) - MAX_ACTION_ITEMS} more in the Omi app")
    if when := _time(content, zone):
        lines.append(f"_{when}_")
    return "\n".join(lines)


def push_text(content: dict[str, Any], zone: tzinfo) -> str:
    """One new conversation."""
    return "New in Omi:\n" + block(content, zone)


def digest_text(contents: list[dict[str, Any]], zone: tzinfo) -> str:
    """The day's digest: every conversation since the last one, with its action items."""
    count = len(contents)
    head = f"Your Omi digest: {count} new conversation{'s' if count != 1 else ''}"
    return head + "\n\n" + "\n\n".join(block(content, zone) for content in contents)
