"""A fake Slack on 127.0.0.1: the Web API methods the bridge calls, response_url endpoints and a Socket Mode
websocket. It records every call and can be told to fail (`not_in_channel`, `ratelimited` with Retry-After, …).
A channel's history (`conversations.history`, newest first, cursor pages) holds what tests `post` and every
thread's parent (with `reply_count`) and broadcast replies; a channel the bot `leave`s answers `not_in_channel`."""

from __future__ import annotations

import asyncio
import itertools
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSMsgType, web

BOT_TOKEN = "xoxb-fake-bot-token"
APP_TOKEN = "xapp-fake-app-token"
BOT_USER_ID = "UBOTOMI01"
BOT_ID = "BBOTOMI01"
TEAM_ID = "T0FAKE001"
WAIT_SECONDS = 5.0
#: Slack allows a response_url 5 uses.
RESPONSE_URL_USES = 5


@dataclass
class Call:
    method: str  # a Web API method ("chat.postMessage"), or "response_url"
    args: dict[str, Any]
    token: str | None = None
    peer: object = None  # the caller's address: one per connection

    @property
    def text(self) -> str:
        return str(self.args.get("text", ""))


@dataclass
class Fault:
    error: str
    status: int = 200
    retry_after: int | None = None
    fields: dict[str, Any] = field(default_factory=dict)  # more of Slack's answer, e.g. missing_scope's `needed`


@dataclass
class Thread:
    channel: str
    messages: list[dict[str, Any]] = field(default_factory=list)


class FakeSlack:
    def __init__(self) -> None:
        self.calls: list[Call] = []
        self.users: dict[str, dict[str, Any]] = {}
        self.channels: dict[str, dict[str, Any]] = {}
        self.history: dict[str, list[dict[str, Any]]] = {}  # channel → top-level messages, any order
        self.files: dict[str, tuple[dict[str, Any], bytes, str]] = {}  # id → (files.info's file, bytes, type)
        self._holds: dict[str, asyncio.Event] = {}
        self.threads: dict[tuple[str, str], Thread] = {}
        self.page_size = 2  # small pages, so a thread of five takes three requests
        self.acks: dict[str, dict[str, Any]] = {}
        self._faults: dict[str, list[Fault]] = {}
        self._response_uses: dict[str, int] = {}
        self._changed = asyncio.Condition()
        self._socket: web.WebSocketResponse | None = None
        self._ts = itertools.count(1)
        self._runner: web.AppRunner | None = None
        self.base_url = ""
        self.connected = asyncio.Event()

    # --- life cycle -------------------------------------------------------------------------------------

    async def start(self, port: int = 0) -> str:
        """`port`: a fixed one, e.g. one a bridge was already refused on (Slack "comes back")."""
        app = web.Application()
        app.router.add_route("*", "/api/{method}", self._api)
        app.router.add_post("/respond/{key}", self._respond)
        app.router.add_get("/socket", self._websocket)
        app.router.add_get("/files-pri/{name}/download", self._download)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", port)
        await site.start()
        host, bound = self._runner.addresses[0][:2]
        self.base_url = f"http://{host}:{bound}"
        return self.api_url

    @property
    def api_url(self) -> str:
        return f"{self.base_url}/api/"

    async def stop(self) -> None:
        for gate in self._holds.values():
            gate.set()
        if self._socket is not None:
            await self._socket.close()
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()

    # --- the workspace ----------------------------------------------------------------------------------

    def add_user(self, user_id: str, real_name: str, *, tz: str = "Europe/London", locale: str = "en-GB") -> None:
        handle = real_name.split()[0].lower()
        self.users[user_id] = {
            "id": user_id,
            "team_id": TEAM_ID,
            "name": handle,
            "real_name": real_name,
            "tz": tz,
            "locale": locale,
            "profile": {"real_name": real_name, "display_name": handle},
        }

    def add_channel(self, channel_id: str, name: str, *, private: bool = False) -> None:
        """A channel `conversations.info` describes (needs channels:read, or groups:read when private)."""
        self.channels[channel_id] = {
            "id": channel_id,
            "name": name,
            "is_channel": not private,
            "is_group": private,
            "is_private": private,
            "is_im": False,
            "created": 1700000000,
            "is_archived": False,
            "is_general": name == "general",
            "name_normalized": name,
            "is_member": True,
        }

    def hold(self, method: str) -> asyncio.Event:
        """Calls of `method` wait (a slow Slack) until the returned event is set, or the fake stops."""
        return self._holds.setdefault(method, asyncio.Event())

    def add_thread(self, channel: str, messages: list[tuple[str, str, str]]) -> str:
        """A thread of (user id, ts, text) messages, the first being the parent; returns the thread's ts."""
        thread_ts = messages[0][1]
        body = [
            {"type": "message", "user": user, "ts": ts, "text": text, "thread_ts": thread_ts}
            for user, ts, text in messages
        ]
        self.threads[(channel, thread_ts)] = Thread(channel, body)
        return thread_ts

    def post(self, channel: str, ts: str, text: str, *, user: str | None = None, **fields: Any) -> dict[str, Any]:
        """A message in the channel's history (`user` None with `bot_id`/`username`… for a bot's message)."""
        message = {"type": "message", "ts": ts, "text": text, **({"user": user} if user else {}), **fields}
        self.history.setdefault(channel, []).append(message)
        return message

    def add_file(self, file_id: str, content: bytes, *, content_type: str = "audio/mp4", **fields: Any) -> None:
        """A file `files.info` describes (`fields` add to or override it) and `GET /files-pri/…` serves with the
        bot token, answered `content_type` ("text/html": Slack's sign-in page)."""
        url = f"{self.base_url}/files-pri/{TEAM_ID}-{file_id}/download"
        info = {"id": file_id, "size": len(content), "url_private": url, "url_private_download": url, **fields}
        self.files[file_id] = (info, content, content_type)

    def leave(self, channel: str) -> None:
        """The bot is no longer in `channel`: reading its history or threads answers `not_in_channel`."""
        if channel not in self.channels:
            self.add_channel(channel, channel.lower())
        self.channels[channel]["is_member"] = False

    def fail(
        self, method: str, error: str, *, status: int = 200, retry_after: int | None = None, **fields: Any
    ) -> None:
        """The next call of `method` fails with Slack's `error` (once; call again to queue more); `fields` go into
        the answer too (`needed="channels:history"` for `missing_scope`)."""
        self._faults.setdefault(method, []).append(Fault(error, status, retry_after, fields))

    def rate_limit(self, method: str, *, retry_after: int, times: int = 1) -> None:
        """The next `times` calls of `method` get HTTP 429 `ratelimited` with `Retry-After: retry_after`."""
        for _ in range(times):
            self.fail(method, "ratelimited", status=429, retry_after=retry_after)

    def response_url(self, key: str | None = None) -> str:
        return f"{self.base_url}/respond/{key or uuid.uuid4().hex}"

    # --- what happened ----------------------------------------------------------------------------------

    def calls_to(self, method: str) -> list[Call]:
        return [call for call in self.calls if call.method == method]

    async def wait_for(
        self,
        method: str,
        where: Callable[[Call], bool] | None = None,
        *,
        count: int = 1,
        timeout: float = WAIT_SECONDS,
    ) -> list[Call]:
        """The first `count` calls of `method` (matching `where`), waiting for them to arrive."""

        def matching() -> list[Call]:
            return [call for call in self.calls_to(method) if where is None or where(call)]

        async with self._changed:
            try:
                await asyncio.wait_for(self._changed.wait_for(lambda: len(matching()) >= count), timeout)
            except TimeoutError:
                seen = [(call.method, call.text[:80]) for call in self.calls]
                raise AssertionError(f"no {count} × {method} within {timeout} s; calls: {seen}") from None
        return matching()[:count]

    async def said(self, text: str, *, method: str = "response_url") -> Call:
        """The first message to a user (by default: an ephemeral answer) containing `text`."""
        [call] = await self.wait_for(method, lambda call: text in call.text)
        return call

    async def _record(self, call: Call) -> None:
        async with self._changed:
            self.calls.append(call)
            self._changed.notify_all()

    # --- Web API ----------------------------------------------------------------------------------------

    async def _api(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        args: dict[str, Any] = dict(request.query)
        if request.method == "POST" and request.can_read_body:
            if request.content_type == "application/json":
                args.update(await request.json())
            else:
                args.update(await request.post())
        header = request.headers.get("Authorization", "")
        token = header.removeprefix("Bearer ") if header.startswith("Bearer ") else args.pop("token", None)
        await self._record(Call(method, args, token, _peer(request)))
        if method in self._holds:
            await self._holds[method].wait()
        faults = self._faults.get(method)
        if faults:
            fault = faults.pop(0)
            headers = {"Retry-After": str(fault.retry_after)} if fault.retry_after is not None else {}
            body = {"ok": False, "error": fault.error, **fault.fields}
            return web.json_response(body, status=fault.status, headers=headers)
        expected = APP_TOKEN if method == "apps.connections.open" else BOT_TOKEN
        if token != expected:
            return web.json_response({"ok": False, "error": "invalid_auth"})
        handler = getattr(self, "_" + method.replace(".", "_"), None)
        if handler is None:
            return web.json_response({"ok": False, "error": "unknown_method"})
        return web.json_response(handler(args))

    def _auth_test(self, args: dict[str, Any]) -> dict[str, Any]:
        return {
            "ok": True,
            "url": "https://fake-team.slack.com/",
            "team": "Fake Team",
            "user": "omi-bridge",
            "team_id": TEAM_ID,
            "user_id": BOT_USER_ID,
            "bot_id": BOT_ID,
        }

    def _users_info(self, args: dict[str, Any]) -> dict[str, Any]:
        user = self.users.get(str(args.get("user")))
        return {"ok": True, "user": user} if user else {"ok": False, "error": "user_not_found"}

    def _page(self, messages: list[dict[str, Any]], args: dict[str, Any]) -> dict[str, Any]:
        start = int(str(args.get("cursor") or "page_0").removeprefix("page_"))
        size = min(int(args.get("limit") or 1000), self.page_size)
        more = start + size < len(messages)
        return {
            "ok": True,
            "messages": messages[start : start + size],
            "has_more": more,
            "response_metadata": {"next_cursor": f"page_{start + size}" if more else ""},
        }

    def _not_a_member(self, channel: str) -> bool:
        return channel in self.channels and not self.channels[channel].get("is_member", True)

    def _conversations_replies(self, args: dict[str, Any]) -> dict[str, Any]:
        if self._not_a_member(str(args.get("channel"))):
            return {"ok": False, "error": "not_in_channel"}
        thread = self.threads.get((str(args.get("channel")), str(args.get("ts"))))
        if thread is None:
            return {"ok": False, "error": "thread_not_found"}
        return self._page(thread.messages, args)

    def _conversations_history(self, args: dict[str, Any]) -> dict[str, Any]:
        """Newest first, like Slack; `oldest`/`latest` bound the time range (`inclusive` keeps the ends)."""
        channel = str(args.get("channel"))
        if self._not_a_member(channel):
            return {"ok": False, "error": "not_in_channel"}
        threads = [thread for (where, _), thread in self.threads.items() if where == channel]
        if channel not in self.channels and channel not in self.history and not threads:
            return {"ok": False, "error": "channel_not_found"}
        messages = {message["ts"]: message for message in self.history.get(channel, [])}
        for thread in threads:
            parent, replies = thread.messages[0], thread.messages[1:]
            messages.setdefault(parent["ts"], {**parent, "reply_count": len(replies)})
            for reply in replies:
                if reply.get("subtype") == "thread_broadcast":
                    messages.setdefault(reply["ts"], reply)
        inclusive = str(args.get("inclusive", "0")).lower() in ("1", "true")
        oldest, latest = float(args.get("oldest") or 0), float(args.get("latest") or 10**12)

        def within(ts: str) -> bool:
            return oldest <= float(ts) <= latest if inclusive else oldest < float(ts) < latest

        found = sorted((message for ts, message in messages.items() if within(ts)), key=lambda m: -float(m["ts"]))
        return self._page(found, args)

    def _conversations_info(self, args: dict[str, Any]) -> dict[str, Any]:
        channel = self.channels.get(str(args.get("channel")))
        return {"ok": True, "channel": channel} if channel else {"ok": False, "error": "channel_not_found"}

    def _files_info(self, args: dict[str, Any]) -> dict[str, Any]:
        found = self.files.get(str(args.get("file")))
        return {"ok": True, "file": found[0]} if found else {"ok": False, "error": "file_not_found"}

    async def _download(self, request: web.Request) -> web.Response:
        """A file's bytes to its workspace's bot token; Slack's sign-in page (200, text/html) to anyone else."""
        header = request.headers.get("Authorization", "")
        file_id = request.match_info["name"].removeprefix(f"{TEAM_ID}-")
        await self._record(Call("download", {"file": file_id}, header.removeprefix("Bearer ") or None))
        found = self.files.get(file_id)
        if found is None or header != f"Bearer {BOT_TOKEN}":
            return web.Response(text="<html><body>Sign in to Slack</body></html>", content_type="text/html")
        return web.Response(body=found[1], content_type=found[2])

    def _conversations_open(self, args: dict[str, Any]) -> dict[str, Any]:
        return {"ok": True, "channel": {"id": "D" + str(args.get("users"))}}

    def _chat_postMessage(self, args: dict[str, Any]) -> dict[str, Any]:
        ts = f"1780000000.{next(self._ts):06d}"
        return {"ok": True, "channel": args.get("channel"), "ts": ts, "message": {"text": args.get("text"), "ts": ts}}

    def _chat_postEphemeral(self, args: dict[str, Any]) -> dict[str, Any]:
        return {"ok": True, "message_ts": f"1780000000.{next(self._ts):06d}"}

    def _views_publish(self, args: dict[str, Any]) -> dict[str, Any]:
        return {"ok": True, "view": {"id": "V0HOME", **args.get("view", {})}}

    def _apps_connections_open(self, args: dict[str, Any]) -> dict[str, Any]:
        return {"ok": True, "url": f"{self.base_url.replace('http://', 'ws://')}/socket"}

    # --- response_url -----------------------------------------------------------------------------------

    async def _respond(self, request: web.Request) -> web.Response:
        key = request.match_info["key"]
        body = await request.json()
        uses = self._response_uses.get(key, 0) + 1
        self._response_uses[key] = uses
        await self._record(Call("response_url", {**body, "key": key}, peer=_peer(request)))
        if uses > RESPONSE_URL_USES:
            return web.Response(status=404, text="used_url")
        return web.Response(text="ok")

    # --- Socket Mode ------------------------------------------------------------------------------------

    async def _websocket(self, request: web.Request) -> web.WebSocketResponse:
        socket = web.WebSocketResponse(autoping=True)
        await socket.prepare(request)
        self._socket = socket
        await socket.send_json({"type": "hello", "num_connections": 1, "debug_info": {"host": "fake"}})
        self.connected.set()
        async for message in socket:
            if message.type != WSMsgType.TEXT:
                continue
            ack = json.loads(message.data)
            async with self._changed:
                self.acks[str(ack.get("envelope_id"))] = ack
                self._changed.notify_all()
        self.connected.clear()
        return socket

    async def push(self, kind: str, payload: dict[str, Any], *, retry_attempt: int = 0) -> str:
        """Send an envelope (`slash_commands` | `interactive` | `events_api`); returns its envelope id."""
        await asyncio.wait_for(self.connected.wait(), WAIT_SECONDS)
        assert self._socket is not None
        envelope_id = uuid.uuid4().hex
        envelope: dict[str, Any] = {
            "envelope_id": envelope_id,
            "type": kind,
            "payload": payload,
            "accepts_response_payload": kind != "events_api",
        }
        if kind == "events_api":
            envelope |= {"retry_attempt": retry_attempt, "retry_reason": "timeout" if retry_attempt else ""}
        await self._socket.send_json(envelope)
        return envelope_id

    async def ack_of(self, envelope_id: str, timeout: float = WAIT_SECONDS) -> dict[str, Any] | None:
        """The app's acknowledgement of an envelope, or None if none came within `timeout`."""
        async with self._changed:
            try:
                await asyncio.wait_for(self._changed.wait_for(lambda: envelope_id in self.acks), timeout)
            except TimeoutError:
                return None
        return self.acks[envelope_id]


def _peer(request: web.Request) -> object:
    return request.transport.get_extra_info("peername") if request.transport is not None else None
