"""What a Telegram message carries, read from its raw JSON: the visible text of kinds beyond text and captions,
the kind to name when it cannot be saved, and chat events that are nothing a user sent to be saved.

Read from the JSON rather than from python-telegram-bot's objects, so a kind newer than the installed library
(it lands in `api_kwargs`) and an update the library refused are told apart the same way."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

#: Fields about a message rather than its content: who, when, where, in reply to what, how it is shown.
ENVELOPE = frozenset(
    {
        "message_id", "message_thread_id", "direct_messages_topic", "from", "sender_chat", "sender_boost_count",
        "sender_business_bot", "sender_tag", "date", "business_connection_id", "chat", "forward_origin",
        "is_topic_message", "is_automatic_forward", "reply_to_message", "external_reply", "quote", "reply_to_story",
        "reply_to_checklist_task_id", "reply_to_poll_option_id", "via_bot", "edit_date", "has_protected_content",
        "is_from_offline", "is_paid_post", "media_group_id", "author_signature", "paid_star_count", "entities",
        "caption_entities", "effect_id", "show_caption_above_media", "has_media_spoiler", "reply_markup",
        "suggested_post_info", "guest_bot_caller_user", "guest_bot_caller_chat", "guest_query_id",
        "link_preview_options", "receiver_user", "ephemeral_message_id",
        # Bot API < 7 forwards (PTB 22 ignores them too; `forward_origin` is what counts)
        "forward_from", "forward_from_chat", "forward_from_message_id", "forward_signature", "forward_sender_name",
        "forward_date",
    }
)  # fmt: skip
#: Chat events shown as service messages: nothing a user sent to be saved, so no reply either.
SERVICE = frozenset(
    {
        "new_chat_members", "left_chat_member", "new_chat_title", "new_chat_photo", "delete_chat_photo",
        "group_chat_created", "supergroup_chat_created", "channel_chat_created", "message_auto_delete_timer_changed",
        "migrate_to_chat_id", "migrate_from_chat_id", "pinned_message", "connected_website", "write_access_allowed",
        "proximity_alert_triggered", "boost_added", "chat_background_set", "forum_topic_created",
        "forum_topic_edited", "forum_topic_closed", "forum_topic_reopened", "general_forum_topic_hidden",
        "general_forum_topic_unhidden", "video_chat_scheduled", "video_chat_started", "video_chat_ended",
        "video_chat_participants_invited", "giveaway_created", "giveaway_completed", "checklist_tasks_done",
        "checklist_tasks_added", "paid_message_price_changed", "direct_message_price_changed",
        "suggested_post_declined", "suggested_post_paid", "suggested_post_refunded", "suggested_post_approved",
        "suggested_post_approval_failed", "chat_owner_changed", "chat_owner_left", "poll_option_added",
        "poll_option_deleted", "managed_bot_created", "gift_upgrade_sent", "community_chat_added",
        "community_chat_removed", "successful_payment", "refunded_payment", "users_shared", "chat_shared", "gift",
        "unique_gift",
    }
)  # fmt: skip
#: Content the converter reads itself (convert.py): words, places, people, text documents.
READ = frozenset({"text", "caption", "location", "venue", "contact"})
#: Media the bridge cannot save yet, in the order they are checked (an animation also carries a `document`, a
#: venue a `location`); after them, any other field not listed here is a kind newer than this bridge.
MEDIA = (
    "voice", "video_note", "sticker", "animation", "video", "audio", "photo", "document", "live_photo", "paid_media",
    "story", "dice", "web_app_data", "passport_data",
)  # fmt: skip


def as_dict(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def as_text(value: object) -> str:
    return value if isinstance(value, str) else ""


def _name(user: object) -> str:
    user = as_dict(user)
    return " ".join(part for part in (as_text(user.get("first_name")), as_text(user.get("last_name"))) if part)


def _day(value: object) -> str | None:
    if isinstance(value, int) and not isinstance(value, bool) and 0 < value < 2**37:
        return datetime.fromtimestamp(value, UTC).strftime("%Y-%m-%d")
    return None


def _checklist(checklist: dict[str, Any]) -> list[str]:
    lines = [f"Checklist: {as_text(checklist.get('title')).strip()}".rstrip()]
    for task in checklist.get("tasks") or []:
        task = as_dict(task)
        text = as_text(task.get("text")).strip()
        if text:
            done = bool(task.get("completion_date")) or "completed_by_user" in task or "completed_by_chat" in task
            lines.append(f"- [{'x' if done else ' '}] {text}")
    return lines


def _poll(poll: dict[str, Any]) -> list[str]:
    lines = [f"{'Quiz' if poll.get('type') == 'quiz' else 'Poll'}: {as_text(poll.get('question')).strip()}"]
    options = poll.get("options")
    for option in options if isinstance(options, list) else []:
        text = as_text(as_dict(option).get("text")).strip()
        if text:
            lines.append(f"- {text}")
    return lines


def _prize(prize: dict[str, Any]) -> str:
    if as_text(prize.get("prize_description")).strip():
        return as_text(prize.get("prize_description")).strip()
    months = prize.get("premium_subscription_month_count")
    if isinstance(months, int) and months > 0:
        return f"{months} months of Telegram Premium"
    stars = prize.get("prize_star_count")
    if isinstance(stars, int) and stars > 0:
        return f"{stars} Telegram Stars"
    return ""


def _giveaway(giveaway: dict[str, Any]) -> list[str]:
    count = giveaway.get("winner_count")
    parts = [f"{count} winners" if isinstance(count, int) and not isinstance(count, bool) else "", _prize(giveaway)]
    day = _day(giveaway.get("winners_selection_date"))
    if day:
        parts.append(f"winners chosen {day}")
    return [f"Giveaway: {' · '.join(part for part in parts if part)}"]


def _giveaway_winners(winners: dict[str, Any]) -> list[str]:
    names = [_name(user) for user in winners.get("winners") or [] if _name(user)]
    lines = [f"Giveaway winners: {', '.join(names) if names else 'not public'}"]
    if _prize(winners):
        lines.append(f"Prize: {_prize(winners)}")
    return lines


def _titled(label: str) -> Callable[[dict[str, Any]], list[str]]:
    """A game or an invoice: its title and description (and a game's text)."""

    def lines(value: dict[str, Any]) -> list[str]:
        title = as_text(value.get("title")).strip()
        description = as_text(value.get("description")).strip()
        first = f"{label}: {title}" + (f" — {description}" if description else "")
        return [first, *([as_text(value.get("text")).strip()] if as_text(value.get("text")).strip() else [])]

    return lines


def rich_text(value: object) -> str:
    """A RichText: a string, a list of RichTexts, or a formatting object wrapping one in `text`."""
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return "".join(rich_text(item) for item in value)
    if isinstance(value, dict):
        return rich_text(value.get("text"))
    return ""


#: Keys of a rich block that hold words (the rest are urls, ids, sizes and nested blocks).
_RICH_TEXT_KEYS = ("text", "header", "caption", "credit", "expression")


def _rich_lines(node: object, depth: int = 0) -> list[str]:
    """Every block's words, one line per piece, nested blocks (lists, details, tables, collages) in order; a
    list item's label ("1.", "•") starts its first line."""
    if depth > 32:
        return []
    if isinstance(node, list):
        return [line for item in node for line in _rich_lines(item, depth + 1)]
    if not isinstance(node, dict):
        return []
    lines: list[str] = []
    for key, value in node.items():
        if key in _RICH_TEXT_KEYS:
            text = rich_text(value).strip()
            if text:
                lines.append(text)
        elif isinstance(value, list | dict) and key != "label":
            lines += _rich_lines(value, depth + 1)
    label = rich_text(node.get("label")).strip()
    if label:
        lines = [f"{label} {lines[0]}", *lines[1:]] if lines else [label]
    return lines


def _rich_message(rich: dict[str, Any]) -> list[str]:
    return _rich_lines(rich.get("blocks"))


#: Kinds whose visible text is saved, each read by its own function.
_VISIBLE: dict[str, Callable[[dict[str, Any]], list[str]]] = {
    "checklist": _checklist,
    "poll": _poll,
    "rich_message": _rich_message,
    "giveaway": _giveaway,
    "giveaway_winners": _giveaway_winners,
    "game": _titled("Game"),
    "invoice": _titled("Invoice"),
}


def visible_text(message: dict[str, Any]) -> str:
    """The words of a kind beyond text and captions (a checklist's title and tasks, a poll's question and
    options, a rich message's blocks, …), or of a message that is only a link preview; "" when it has none."""
    for field, read in _VISIBLE.items():
        value = message.get(field)
        if isinstance(value, dict):
            try:
                lines = read(value)
            except (TypeError, ValueError, AttributeError, RecursionError):
                lines = []  # an odd shape: the kind is still named in the reply
            text = "\n".join(line for line in lines if line.strip())
            if text.strip():
                return text
    preview = as_dict(message.get("link_preview_options"))
    if not as_text(message.get("text")) and as_text(preview.get("url")).startswith(("http://", "https://")):
        return as_text(preview.get("url"))
    return ""


def unsupported_kind(message: dict[str, Any]) -> str:
    """The kind to name in "… can't be saved yet": a medium, a newer kind, or a field this bridge never heard of."""
    for field in MEDIA:
        if message.get(field):
            return field
    for field in _VISIBLE:
        if field in message:
            return field
    for field in message:
        if field not in ENVELOPE and field not in SERVICE and field not in READ:
            return str(field)
    return "other"


def is_service(message: dict[str, Any]) -> bool:
    """A chat event (a pin, a join, a new title, …) with nothing else in it."""
    fields = set(message) - ENVELOPE
    return bool(fields) and fields <= SERVICE
