"""Slack's side in tests: people type `/omi`, use shortcuts, write DMs and click buttons; the requests reach the
bridge signed over HTTP (like Slack's servers) or as Socket Mode envelopes through the fake."""

from __future__ import annotations

import copy
import hashlib
import hmac
import itertools
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx

from tests.slack.fake_slack import FakeSlack

FIXTURES = Path(__file__).parent / "fixtures"
SIGNING_SECRET = "fake-signing-secret-8f14e45fceea167a"
GENERAL = "C0GENERAL1"


def fixture(name: str) -> dict[str, Any]:
    """A recorded Slack payload (tests/slack/fixtures/NAME.json), fresh for each use."""
    return copy.deepcopy(json.loads((FIXTURES / f"{name}.json").read_text(encoding="utf-8")))


def sign(body: str, *, secret: str = SIGNING_SECRET, timestamp: int | None = None) -> dict[str, str]:
    """Slack's request signature: `v0=` + hex HMAC-SHA256 over `v0:{timestamp}:{body}`."""
    stamp = str(int(time.time()) if timestamp is None else timestamp)
    digest = hmac.new(secret.encode(), f"v0:{stamp}:{body}".encode(), hashlib.sha256).hexdigest()
    return {"x-slack-request-timestamp": stamp, "x-slack-signature": f"v0={digest}"}


@dataclass(frozen=True)
class Person:
    id: str
    name: str
    tz: str = "Europe/London"
    locale: str = "en-GB"


ADA = Person("U0ADA0001", "Ada Lovelace", tz="America/New_York", locale="en-US")
GRACE = Person("U0GRACE01", "Grace Hopper")
ALAN = Person("U0ALAN001", "Alan Turing", locale="de-DE")


@dataclass
class Sent:
    """What Slack got back: the HTTP status (or 200 for an acked envelope, 0 for none) and the body."""

    status: int
    body: str = ""
    response_url: str | None = None


class SlackWorkspace:
    def __init__(
        self, fake: FakeSlack, *, events_url: str | None = None, web_url: str = "", platform: Any = None
    ) -> None:
        self.fake = fake
        self.events_url = events_url  # None: Socket Mode
        self.web_url = web_url  # the bridge's web server
        self.platform = platform  # the SlackPlatform under test
        self._ids = itertools.count(1)
        for person in (ADA, GRACE, ALAN):
            fake.add_user(person.id, person.name, tz=person.tz, locale=person.locale)

    # --- transport ----------------------------------------------------------------------------------------

    async def post(self, content: str, content_type: str, headers: dict[str, str] | None = None) -> httpx.Response:
        """A request to `/slack/events` as Slack's servers send it: signed (unless `headers` say otherwise)."""
        assert self.events_url is not None
        all_headers = {"content-type": content_type, **sign(content), **(headers or {})}
        async with httpx.AsyncClient() as client:
            return await client.post(self.events_url, content=content.encode(), headers=all_headers)

    async def deliver(self, kind: str, body: dict[str, Any], headers: dict[str, str] | None = None) -> Sent:
        if self.events_url is None:
            retry = int((headers or {}).get("x-slack-retry-num", 0))
            envelope_id = await self.fake.push(kind, body, retry_attempt=retry)
            ack = await self.fake.ack_of(envelope_id, timeout=1.0)
            return Sent(200 if ack is not None else 0, json.dumps(ack.get("payload", {})) if ack else "")
        if kind == "slash_commands":
            content, content_type = urlencode(body), "application/x-www-form-urlencoded"
        elif kind == "interactive":
            content, content_type = urlencode({"payload": json.dumps(body)}), "application/x-www-form-urlencoded"
        else:
            content, content_type = json.dumps(body), "application/json"
        answer = await self.post(content, content_type, headers)
        return Sent(answer.status_code, answer.text)

    def _trigger(self) -> str:
        return f"{next(self._ids)}.6411027382.{time.time_ns():x}"

    # --- what people do -----------------------------------------------------------------------------------

    async def command(self, person: Person, text: str, *, channel: str = GENERAL) -> Sent:
        """`/omi TEXT` typed by `person` in `channel`."""
        body = fixture("slash_command")
        response_url = self.fake.response_url()
        body |= {
            "user_id": person.id,
            "user_name": person.name.split()[0].lower(),
            "text": text,
            "channel_id": channel,
            "response_url": response_url,
            "trigger_id": self._trigger(),
        }
        sent = await self.deliver("slash_commands", body)
        sent.response_url = response_url
        return sent

    async def save_message(self, person: Person, message: dict[str, Any], *, channel: str = GENERAL) -> Sent:
        """The "Save to Omi" shortcut on `message` (a Slack message object)."""
        body = fixture("shortcut_save_to_omi")
        body["user"] |= {"id": person.id, "name": person.name.split()[0].lower()}
        body["channel"]["id"] = channel
        body |= {"message": message, "message_ts": message["ts"], "trigger_id": self._trigger()}
        body["response_url"] = self.fake.response_url()
        return await self.deliver("interactive", body)

    async def save_thread(self, person: Person, thread_ts: str, *, channel: str = GENERAL) -> Sent:
        """The "Save thread to Omi" shortcut on a thread's parent message."""
        body = fixture("shortcut_save_thread_to_omi")
        body["user"] |= {"id": person.id, "name": person.name.split()[0].lower()}
        body["channel"]["id"] = channel
        body["message"] |= {"ts": thread_ts, "thread_ts": thread_ts}
        body |= {"message_ts": thread_ts, "trigger_id": self._trigger(), "response_url": self.fake.response_url()}
        return await self.deliver("interactive", body)

    async def click(self, person: Person, data: str) -> Sent:
        """A click on a bridge button whose value is `data` (from an ephemeral answer in #general)."""
        body = fixture("block_actions")
        body["user"] |= {"id": person.id, "name": person.name.split()[0].lower()}
        body["actions"][0] |= {"action_id": f"omi:{data}", "value": data}
        body |= {"trigger_id": self._trigger(), "response_url": self.fake.response_url()}
        return await self.deliver("interactive", body)

    def dm_event(self, person: Person, text: str, ts: str) -> dict[str, Any]:
        body = fixture("dm_event")
        body["event"] |= {"user": person.id, "text": text, "ts": ts, "event_ts": ts, "channel": "D" + person.id}
        body["event_id"] = f"Ev{next(self._ids):010d}"
        return body

    async def write_dm(self, person: Person, text: str, ts: str) -> Sent:
        """`person` writes `text` to the bot in their direct message with it."""
        return await self.deliver("events_api", self.dm_event(person, text, ts))

    async def open_home(self, person: Person) -> Sent:
        body = fixture("app_home_opened")
        body["event"] |= {"user": person.id, "channel": "D" + person.id}
        body["event_id"] = f"Ev{next(self._ids):010d}"
        return await self.deliver("events_api", body)
