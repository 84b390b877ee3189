"""`omi-bridge doctor` for Slack: the bot token (`auth.test`), and the transport's own credential."""

from __future__ import annotations

from adapters.slack.client import BAD_TOKEN_ERRORS, CALL_ERRORS, api_error, web_client
from bot.checks import Finding
from bot.settings import Settings

OAUTH_PAGE_HINT = "copy the Bot User OAuth Token (xoxb-…) from the app's OAuth & Permissions page into SLACK_BOT_TOKEN"


async def check_slack(settings: Settings) -> list[Finding]:
    assert settings.SLACK_BOT_TOKEN is not None
    client = web_client(settings.SLACK_BOT_TOKEN.get_secret_value(), settings.SLACK_API_URL)
    findings: list[Finding] = []
    try:
        answer = await client.auth_test()
    except CALL_ERRORS as exc:
        error = api_error(exc)
        if error in BAD_TOKEN_ERRORS:
            findings.append(Finding("FAIL", "slack", f"Slack refused the bot token ({error})", OAUTH_PAGE_HINT))
        else:
            findings.append(
                Finding(
                    "FAIL",
                    "slack",
                    f"auth.test at {settings.SLACK_API_URL} failed ({error})",
                    "check SLACK_API_URL and the network",
                )
            )
    else:
        findings.append(Finding("OK", "slack", f"bot @{answer.get('user')} in workspace {answer.get('team')}"))

    if settings.SLACK_APP_TOKEN is not None:
        try:
            await client.apps_connections_open(app_token=settings.SLACK_APP_TOKEN.get_secret_value())
        except CALL_ERRORS as exc:
            findings.append(
                Finding(
                    "FAIL",
                    "slack",
                    f"Socket Mode: apps.connections.open failed ({api_error(exc)})",
                    "create an app-level token with connections:write (Basic Information → App-Level Tokens), set"
                    " SLACK_APP_TOKEN, and turn Socket Mode on in the app's settings",
                )
            )
        else:
            findings.append(Finding("OK", "slack", "Socket Mode: the app token opens a connection"))
    elif settings.SLACK_SIGNING_SECRET is None:
        findings.append(
            Finding(
                "FAIL",
                "slack",
                "HTTP mode without SLACK_SIGNING_SECRET: Slack's requests cannot be verified",
                "copy the Signing Secret from Basic Information → App Credentials, or set SLACK_APP_TOKEN for"
                " Socket Mode",
            )
        )
    else:
        findings.append(
            Finding("OK", "slack", f"HTTP mode: Slack calls {settings.public_url}/slack/events (requests signed)")
        )
    return findings
