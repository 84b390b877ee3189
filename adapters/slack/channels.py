"""Channel names from `conversations.info`, cached: a mention without a label (`<#C123>`) is shown as `#general`."""

from __future__ import annotations

import logging

from slack_sdk.web.async_client import AsyncWebClient

from adapters.slack.client import CALL_ERRORS, api_error
from bot.clock import Clock

log = logging.getLogger(__name__)

#: Channels are renamed rarely; an hour keeps conversations.info to one call per channel per hour, and a
#: channel the bot may not see (or a missing scope) is asked about again only after that long too.
CACHE_SECONDS = 3600


class ChannelDirectory:
    """`conversations.info` behind a cache (needs `channels:read` / `groups:read`); None when Slack won't say."""

    def __init__(self, client: AsyncWebClient, clock: Clock) -> None:
        self._client = client
        self._clock = clock
        self._names: dict[str, tuple[str | None, float]] = {}

    async def name(self, channel_id: str) -> str | None:
        cached = self._names.get(channel_id)
        if cached is not None and cached[1] > self._clock.now():
            return cached[0]
        try:
            answer = await self._client.conversations_info(channel=channel_id)
        except CALL_ERRORS as exc:
            error = api_error(exc)
            if error == "missing_scope":
                log.warning(
                    "slack: conversations.info needs the channels:read and groups:read scopes; reinstall the app"
                    " from slack-manifest.yml to show channel names"
                )
            else:
                log.info("slack: conversations.info failed (%s); the channel is shown by its id", error)
            name = None
        else:
            channel = answer.get("channel")
            found = channel.get("name") if isinstance(channel, dict) else None
            name = found if isinstance(found, str) and found else None
        self._names[channel_id] = (name, self._clock.now() + CACHE_SECONDS)
        return name

    async def names(self, channel_ids: set[str]) -> dict[str, str]:
        found = {channel_id: await self.name(channel_id) for channel_id in sorted(channel_ids)}
        return {channel_id: name for channel_id, name in found.items() if name}
