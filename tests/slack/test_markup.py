"""Slack markup ↔ the core's Markdown, both ways."""

from __future__ import annotations

import pytest

from adapters.slack.markup import markdown_to_mrkdwn, mentioned_users, slack_to_markdown

NAMES = {"U0ADA0001": "Ada Lovelace"}


@pytest.mark.parametrize(
    ("slack", "markdown"),
    [
        ("hi <@U0ADA0001>", "hi @Ada Lovelace"),
        ("hi <@U0NOBODY1|nobody>", "hi @nobody"),
        ("in <#C0GENERAL1|general>", "in #general"),
        ("see <https://x.org/a?b=1&amp;c=2|the doc>", "see the doc (https://x.org/a?b=1&c=2)"),
        ("see <https://x.org>", "see https://x.org"),
        ("see <http://x.org|x.org>", "see http://x.org"),
        ("mail <mailto:a@b.org|a@b.org>", "mail a@b.org"),
        ("Tom &amp; Jerry &lt;3 &gt;_&lt;", "Tom & Jerry <3 >_<"),
        ("*bold* and _italic_ and ~gone~", "**bold** and _italic_ and ~~gone~~"),
        ("a*b*c stays, 2 * 3 * 4 too", "a*b*c stays, 2 * 3 * 4 too"),
        ("`*not bold* &lt;b&gt;`", "`*not bold* <b>`"),
        ("```\n*code*\n```", "```\n*code*\n```"),
        ("<!here> <!subteam^S0TEAM|@design> <!date^1392734382^{date}|Feb 18>", "@here @design Feb 18"),
    ],
)
def test_slack_text_as_markdown(slack: str, markdown: str) -> None:
    assert slack_to_markdown(slack, NAMES) == markdown


def test_mentions_are_found_for_the_name_lookup() -> None:
    assert mentioned_users("<@U0ADA0001> and <@W0GRID001|x> but not <#C0GENERAL1>") == {"U0ADA0001", "W0GRID001"}


@pytest.mark.parametrize(
    ("markdown", "mrkdwn"),
    [
        ("**Title** · note", "*Title* · note"),
        ("[the plan](https://x.org/?a=1&b=2)", "<https://x.org/?a=1&amp;b=2|the plan>"),
        ("1 < 2 > 0 & done", "1 &lt; 2 &gt; 0 &amp; done"),
        ("_italic_ and `**code**`", "_italic_ and `**code**`"),
        ("~~gone~~", "~gone~"),
    ],
)
def test_markdown_as_slack_mrkdwn(markdown: str, mrkdwn: str) -> None:
    assert markdown_to_mrkdwn(markdown) == mrkdwn
