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


async def test_the_setup_page_offers_the_slack_command(env, slack):
    async with httpx.AsyncClient(base_url=slack.web_url) as client:
        page = await client.get("/omi/setup", params={"uid": "uid-someone"})
    assert "/omi link " in page.text and "/omi verify CODE" in page.text


async def test_once_stopping_requests_are_refused_so_slack_retries_them_later(env, slack):
    await slack.platform.stop()
    assert (await slack.command(ADA, "help")).status == 503


async def test_health_tells_when_slack_was_unreachable_and_recovers(env, fake_slack):
    web = WebServer(env.bridge, Metrics())
    platform = SlackPlatform(slack_settings(fake_slack), env.bridge, web)
    fake_slack.fail("auth.test", "fatal_error")
    await platform.start()  # serve still comes up: Slack may just be having a bad minute
    fake_slack.fail("auth.test", "fatal_error")
    assert await platform.health() == "auth.test failed: fatal_error"
    assert await platform.health() == "ok"
