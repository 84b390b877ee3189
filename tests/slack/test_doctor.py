"""`omi-bridge doctor` for Slack against the fake: the bot token, and the credential of the chosen transport."""

from __future__ import annotations

from adapters.slack.doctor import check_slack
from tests.slack.conftest import slack_settings
from tests.slack.fake_slack import APP_TOKEN


def lines(findings) -> list[str]:
    return [finding.line() for finding in findings]


async def test_http_mode_with_a_good_token_and_a_signing_secret(fake_slack):
    found = lines(await check_slack(slack_settings(fake_slack, PUBLIC_URL="https://bridge.example.org")))
    assert found == [
        "OK slack: bot @omi-bridge in workspace Fake Team",
        "OK slack: HTTP mode: Slack calls https://bridge.example.org/slack/events (requests signed)",
    ]


async def test_a_refused_token_and_a_missing_signing_secret_fail_with_the_fix(fake_slack):
    settings = slack_settings(fake_slack, SLACK_BOT_TOKEN="xoxb-wrong-token", SLACK_SIGNING_SECRET=None)
    token_line, secret_line = lines(await check_slack(settings))
    assert token_line.startswith("FAIL slack: Slack refused the bot token (invalid_auth) → ")
    assert "SLACK_BOT_TOKEN" in token_line and "xoxb-wrong-token" not in token_line
    assert secret_line.startswith("FAIL slack: HTTP mode without SLACK_SIGNING_SECRET")


async def test_socket_mode_checks_the_app_token(fake_slack):
    good = lines(await check_slack(slack_settings(fake_slack, SLACK_APP_TOKEN=APP_TOKEN, SLACK_SIGNING_SECRET=None)))
    assert good[1] == "OK slack: Socket Mode: the app token opens a connection"
    bad = lines(await check_slack(slack_settings(fake_slack, SLACK_APP_TOKEN="xapp-wrong")))
    assert bad[1].startswith("FAIL slack: Socket Mode: apps.connections.open failed (invalid_auth) → ")
    assert "xapp-wrong" not in bad[1]


async def test_an_unreachable_slack_fails_naming_the_setting(fake_slack):
    url = fake_slack.api_url
    await fake_slack.stop()
    [line, _] = lines(await check_slack(slack_settings(fake_slack)))
    assert line.startswith(f"FAIL slack: auth.test at {url} failed (") and "SLACK_API_URL" in line
