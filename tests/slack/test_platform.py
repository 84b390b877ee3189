"""SlackPlatform as `serve` builds it: settings it refuses, and intake closed first when it stops."""

from __future__ import annotations

import httpx
import pytest

from adapters.slack.platform import SlackPlatform
from bot.metrics import Metrics
from bot.settings import SettingsError
from bot.web.server import WebServer
from tests.slack.conftest import slack_settings
from tests.slack.workspace import ADA


def test_http_mode_without_a_signing_secret_is_an_invalid_setting(env, fake_slack):
    web = WebServer(env.bridge, Metrics())
    with pytest.raises(SettingsError, match=r"^invalid setting SLACK_SIGNING_SECRET: "):
        SlackPlatform(slack_settings(fake_slack, SLACK_SIGNING_SECRET=None), env.bridge, web)


async def test_a_refused_bot_token_stops_start_naming_the_setting(env, fake_slack):
    platform = SlackPlatform(
        slack_settings(fake_slack, SLACK_BOT_TOKEN="xoxb-revoked"), env.bridge, WebServer(env.bridge, Metrics())
    )
    with pytest.raises(SettingsError, match=r"^invalid setting SLACK_BOT_TOKEN: Slack refused it \(invalid_auth\)$"):
        await platform.start()
    await platform.close()


async def test_calls_and_replies_share_one_session_and_its_connections(env, slack, fake_slack):
    """slack_sdk opens a session (and a connection) per call unless given one: the platform gives it one, and
    the response_url replies use it too, so a reply after a reply goes over the same kept-alive connection."""
    for n in range(3):
        assert (await slack.command(ADA, "help")).status == 200
        await fake_slack.wait_for("response_url", lambda call: True, count=n + 1)
    replies = fake_slack.calls_to("response_url")
    assert len(replies) == 3 and len({call.peer for call in replies}) == 1
    session = slack.platform.client.session
    await slack.platform.close()
    assert session is not None and session.closed and slack.platform.client.session is None


async def test_the_setup_page_offers_the_slack_command(env, slack):
    async with httpx.AsyncClient(base_url=slack.web_url) as client:
        page = await client.get("/omi/setup", params={"uid": "uid-someone"})
    assert "/omi link " in page.text and "/omi verify CODE" in page.text


async def test_once_stopping_requests_are_refused_so_slack_retries_them_later(env, slack):
    await slack.platform.stop()
    assert (await slack.command(ADA, "help")).status == 503


async def test_a_signed_request_while_slack_is_down_is_stored_not_apologised_for(env, fake_slack):
    """Bolt's own single-workspace check calls auth.test on the first request and, when Slack answers an error,
    acknowledges with "We apologize…" and stores nothing. The bridge authorizes without asking Slack."""
    from tests.slack.conftest import link
    from tests.slack.workspace import SlackWorkspace

    web = WebServer(env.bridge, Metrics())
    platform = SlackPlatform(slack_settings(fake_slack), env.bridge, web)  # never signed in: Slack was down
    url = await web.start("127.0.0.1", 0)
    try:
        await link(env, ADA)
        for _ in range(3):
            fake_slack.fail("auth.test", "fatal_error", status=500)
        slack = SlackWorkspace(fake_slack, events_url=f"{url}/slack/events", web_url=url, platform=platform)
        sent = await slack.command(ADA, "remember taken in while Slack was away")
        assert sent.status == 200 and "apologize" not in sent.body
        await fake_slack.said("Saved 1 memory.", method="chat.postMessage")
        assert [m["content"] for m in env.sandbox.memories(env.uid)] == ["taken in while Slack was away"]
        assert fake_slack.calls_to("auth.test") == []  # intake never asked Slack who the bot is
    finally:
        await web.stop()
        await platform.stop()
