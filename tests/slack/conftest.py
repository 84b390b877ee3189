"""Slack fixtures: the fake Slack, and the real SlackPlatform on the `env` bridge over HTTP or Socket Mode."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from adapters.slack.platform import SlackPlatform
from bot.metrics import Metrics
from bot.settings import Settings
from bot.web.server import WebServer
from tests.slack.fake_slack import APP_TOKEN, BOT_TOKEN, FakeSlack
from tests.slack.workspace import SIGNING_SECRET, Person, SlackWorkspace


def slack_settings(fake: FakeSlack, **overrides: Any) -> Settings:
    """Settings for Slack against the fake, whatever the environment or a `.env` says."""
    values: dict[str, Any] = {
        "SLACK_BOT_TOKEN": BOT_TOKEN,
        "SLACK_SIGNING_SECRET": SIGNING_SECRET,
        "SLACK_APP_TOKEN": None,
        "SLACK_API_URL": fake.api_url,
    }
    return Settings(_env_file=None, **(values | overrides))  # type: ignore[call-arg]


async def link(env, person: Person) -> None:
    """`person`'s Slack account linked (verified) to the env's Omi uid, as `omi-bridge link` does."""
    await env.store.links.link_verified(f"slack:{person.id}", env.uid)


@pytest.fixture
async def fake_slack() -> AsyncIterator[FakeSlack]:
    fake = FakeSlack()
    await fake.start()
    yield fake
    await fake.stop()


async def _serve(env, fake: FakeSlack, settings: Settings) -> AsyncIterator[SlackWorkspace]:
    web = WebServer(env.bridge, Metrics())
    platform = SlackPlatform(settings, env.bridge, web)
    await platform.start()
    url = await web.start("127.0.0.1", 0)
    events_url = None if platform.socket_mode else f"{url}/slack/events"
    workspace = SlackWorkspace(fake, events_url=events_url, web_url=url, platform=platform)
    try:
        yield workspace
    finally:
        await web.stop()
        await platform.stop()
        await platform.close()


@pytest.fixture
async def slack(env, fake_slack: FakeSlack) -> AsyncIterator[SlackWorkspace]:
    """Slack in HTTP mode: signed requests to `POST /slack/events` on the bridge's web server."""
    async for workspace in _serve(env, fake_slack, slack_settings(fake_slack)):
        yield workspace


@pytest.fixture
async def socket_slack(env, fake_slack: FakeSlack) -> AsyncIterator[SlackWorkspace]:
    """Slack in Socket Mode: envelopes over the fake's websocket, acknowledged on it."""
    async for workspace in _serve(env, fake_slack, slack_settings(fake_slack, SLACK_APP_TOKEN=APP_TOKEN)):
        await asyncio.wait_for(fake_slack.connected.wait(), 5.0)
        yield workspace
