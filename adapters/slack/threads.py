"""Reading a whole thread (`conversations.replies`, every page), and saying plainly why it could not be read."""

from __future__ import annotations

from typing import Any

from slack_sdk.web.async_client import AsyncWebClient

from adapters.slack.client import CALL_ERRORS, api_error
from adapters.slack.jobs import SAVED_SUBTYPES

PAGE_SIZE = 200  # Slack's recommended maximum per page
#: A runaway cursor must not keep the parser busy forever: 100 pages is 20,000 messages.
MAX_PAGES = 100
#: What people (and bots) wrote; joins, "This message was deleted." tombstones and the like are left out.
THREAD_SUBTYPES = (*SAVED_SUBTYPES, "bot_message")


class ThreadUnreadable(Exception):
    """Slack refused the thread (`error` is Slack's code, e.g. `not_in_channel`) or could not be reached."""

    def __init__(self, error: str) -> None:
        super().__init__(error)
        self.error = error


async def fetch_thread(client: AsyncWebClient, channel: str, thread_ts: str) -> list[dict[str, Any]]:
    """Every message written in the thread, parent first, following `next_cursor` to the last page."""
    messages: list[dict[str, Any]] = []
    cursor: str | None = None
    for _ in range(MAX_PAGES):
        try:
            page = await client.conversations_replies(channel=channel, ts=thread_ts, cursor=cursor, limit=PAGE_SIZE)
        except CALL_ERRORS as exc:
            raise ThreadUnreadable(api_error(exc)) from exc
        messages += page.get("messages") or []
        cursor = (page.get("response_metadata") or {}).get("next_cursor") or None
        if not cursor:
            break
    # Pages never overlap on Slack; a message seen twice (a retried page) is still kept once.
    unique = {
        str(message["ts"]): message
        for message in messages
        if message.get("ts") and message.get("subtype") in THREAD_SUBTYPES
    }
    return sorted(unique.values(), key=lambda message: float(message["ts"]))


def unreadable_text(error: str, channel_name: str | None) -> str:
    """What the user is told when the bot cannot read the thread they asked to save."""
    where = f"#{channel_name}" if channel_name and channel_name != "directmessage" else "this conversation"
    if error == "not_in_channel":
        return f"I can't read threads in {where} yet. Invite me to {where} first: /invite @omi-bridge — then try again."
    if error == "channel_not_found":
        return (
            f"I can't see {where}. In a private channel, invite me first (/invite @omi-bridge). Threads in direct"
            " messages between people can't be read by apps; save single messages there with “Save to Omi”."
        )
    if error == "missing_scope":
        return (
            "This Slack app may not read this kind of conversation (a permission is missing). Ask your workspace"
            " admin to update the app from omi-bridge's slack-manifest.yml and reinstall it."
        )
    return f"I could not read that thread from Slack ({error}). Nothing was saved; please try again in a minute."
