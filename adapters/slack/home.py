"""The App Home tab: link state, what waits for Omi, recent memories (from `Bridge.account_summary`)."""

from __future__ import annotations

from typing import Any

from adapters.slack.markup import markdown_to_mrkdwn
from bot import texts
from bot.bridge import AccountSummary
from bot.commands.reads import format_memory
from bot.events import Platform


def _section(markdown: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": markdown_to_mrkdwn(markdown)[:3000]}}


def home_view(summary: AccountSummary) -> dict[str, Any]:
    if summary.verified:
        state = "✅ This Slack account is linked to your Omi account."
    elif summary.claimed:
        state = "⏳ " + texts.needs_verify(Platform.SLACK)
    else:
        state = texts.not_linked(Platform.SLACK).replace(", so I did not keep your message", "")
    waiting = f"Waiting for Omi: {summary.waiting} item(s)." if summary.waiting else "Nothing is waiting for Omi."
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": "omi-bridge"}},
        _section(state),
        _section(waiting),
    ]
    if summary.memories:
        blocks.append({"type": "header", "text": {"type": "plain_text", "text": "Recent memories"}})
        blocks.append(_section("\n".join(format_memory(memory) for memory in summary.memories)))
    elif summary.problem:
        blocks.append(_section(summary.problem))
    blocks += [
        {"type": "divider"},
        {
            "type": "context",
            "elements": [
                {
                    "type": "mrkdwn",
                    "text": "Save a message or a whole thread from its ⋮ menu (“Save to Omi”, “Save thread to Omi”),"
                    " write to me in Messages, or type `/omi help`.",
                }
            ],
        },
    ]
    return {"type": "home", "blocks": blocks}
