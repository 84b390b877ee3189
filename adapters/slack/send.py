"""Replies → Slack: ephemeral through the response_url while it lasts, else `chat.postEphemeral`, else a DM."""

from __future__ import annotations

import logging
from typing import Any

from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.webhook.async_client import AsyncWebhookClient

from adapters.slack.client import CALL_ERRORS, TIMEOUT_SECONDS, api_error
from adapters.slack.jobs import BUTTON_PREFIX
from adapters.slack.markup import markdown_to_mrkdwn
from bot.clock import Clock
from bot.events import Address, Button, Reply

log = logging.getLogger(__name__)

#: Slack accepts a response_url 5 times within 30 minutes.
RESPONSE_URL_USES = 5
SECTION_LIMIT = 3000  # characters of one section block's text
MAX_BLOCKS = 50
TEXT_LIMIT = 39_000  # chat.postMessage truncates at 40,000


def _chunks(text: str, limit: int) -> list[str]:
    """Text cut at paragraph (else line) breaks into pieces of at most `limit` characters."""
    pieces: list[str] = []
    while len(text) > limit:
        cut = text.rfind("\n\n", 0, limit)
        if cut <= 0:
            cut = text.rfind("\n", 0, limit)
        if cut <= 0:
            cut = limit
        pieces.append(text[:cut])
        text = text[cut:].lstrip("\n")
    if text:
        pieces.append(text)
    return pieces


def _button(button: Button) -> dict[str, Any]:
    return {
        "type": "button",
        "text": {"type": "plain_text", "text": button.label[:75]},
        # The value is what comes back on a click (jobs.py, convert.py); the action_id only has to be unique.
        "action_id": (BUTTON_PREFIX + button.data)[:255],
        "value": button.data,
    }


def message_body(reply: Reply) -> dict[str, Any]:
    """`text` (mrkdwn, also the notification fallback) and, with buttons, Block Kit blocks."""
    text = markdown_to_mrkdwn(reply.text or reply.reaction or "")
    body: dict[str, Any] = {"text": text[:TEXT_LIMIT]}
    if reply.buttons:
        sections = [{"type": "section", "text": {"type": "mrkdwn", "text": c}} for c in _chunks(text, SECTION_LIMIT)]
        actions = {"type": "actions", "elements": [_button(button) for button in reply.buttons[:25]]}
        body["blocks"] = [*sections[: MAX_BLOCKS - 1], actions]
    return body


class ResponseUrls:
    """How often each response_url was used; Slack refuses the sixth use and any use after 30 minutes."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._uses: dict[str, tuple[int, float]] = {}  # url → (uses, expires at)

    def take(self, address: Address) -> str | None:
        url = address.extra.get("response_url")
        if not url:
            return None
        now = self._clock.now()
        uses, expires = self._uses.get(url, (0, float(address.extra.get("response_url_expires", "inf"))))
        if uses >= RESPONSE_URL_USES or now >= expires:
            return None
        if len(self._uses) > 1000:  # dead urls are useless: keep only live ones
            self._uses = {key: value for key, value in self._uses.items() if value[1] > now}
        self._uses[url] = (uses + 1, expires)
        return url


class SlackSender:
    """The core's `ReplySender` for Slack. Reactions are not used here: their text is sent instead."""

    def __init__(self, client: AsyncWebClient, clock: Clock) -> None:
        self._client = client
        self._response_urls = ResponseUrls(clock)
        self._dm_channels: dict[str, str] = {}

    async def send(self, reply: Reply) -> None:
        body = message_body(reply)
        if not body["text"].strip():
            return
        if reply.ephemeral and await self._ephemeral(reply.address, body):
            return
        await self._direct_message(reply.address, body)

    async def _ephemeral(self, address: Address, body: dict[str, Any]) -> bool:
        url = self._response_urls.take(address)
        if url is not None:
            # The Web API client's session when it has one (kept-alive connections; else one of its own per reply).
            webhook = AsyncWebhookClient(url, timeout=TIMEOUT_SECONDS, session=self._client.session)
            try:
                answer = await webhook.send_dict({**body, "response_type": "ephemeral", "replace_original": False})
                if answer.status_code == 200:
                    return True
                log.info("slack: response_url refused the reply (%s); falling back", answer.status_code)
            except CALL_ERRORS as exc:
                log.info("slack: response_url failed (%s); falling back", api_error(exc))
        if address.chat_id and address.chat_id != address.user_id:
            try:
                await self._client.chat_postEphemeral(channel=address.chat_id, user=address.user_id, **body)
                return True
            except CALL_ERRORS as exc:
                # E.g. a channel the bot is not in: the DM still reaches the user.
                log.info("slack: chat.postEphemeral failed (%s); sending a DM instead", api_error(exc))
        return False

    async def _direct_message(self, address: Address, body: dict[str, Any]) -> None:
        channel = self._dm_channels.get(address.user_id)
        if channel is None:
            opened = await self._client.conversations_open(users=address.user_id)
            channel = str(opened["channel"]["id"])
            self._dm_channels[address.user_id] = channel
        await self._client.chat_postMessage(channel=channel, **body)
