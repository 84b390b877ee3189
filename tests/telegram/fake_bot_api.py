"""A fake Telegram Bot API server on 127.0.0.1: records every call, answers like the real one, injects faults."""

from __future__ import annotations

import asyncio
import html.parser
import itertools
import json
import re
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from telegram.constants import ReactionEmoji

TOKEN = "123456:TEST-token-never-logged"
BOT_USER = {
    "id": 777000,
    "is_bot": True,
    "first_name": "Omi Bridge",
    "username": "omibridge_bot",
    "can_join_groups": True,
    "can_read_all_group_messages": False,
    "supports_inline_queries": False,
}
ALLOWED_REACTIONS = frozenset(emoji.value for emoji in ReactionEmoji)
#: Telegram's HTML parse mode: these tags only, properly nested, `&` only as an entity.
HTML_TAGS = frozenset(
    {"b", "strong", "i", "em", "u", "ins", "s", "strike", "del", "a", "code", "pre", "tg-spoiler", "span",
     "blockquote", "tg-emoji"}
)  # fmt: skip
#: getFile refuses bigger files ("file is too big"): the Bot API's download limit.
MAX_DOWNLOAD_BYTES = 20 * 1024 * 1024


#: A request header naming the client (e.g. one of several bridge instances): recorded as `Call.client`.
CLIENT_HEADER = "X-Test-Client"


@dataclass
class Call:
    method: str
    params: dict[str, Any]
    at: float = field(default_factory=time.monotonic)
    client: str | None = None  # the request's CLIENT_HEADER, if it sent one


@dataclass
class Fault:
    status: int = 400
    description: str = "Bad Request"
    retry_after: int | None = None
    delay: float = 0.0


class ApiError(Exception):
    def __init__(self, status: int, description: str, parameters: dict[str, Any] | None = None) -> None:
        super().__init__(description)
        self.status = status
        self.description = description
        self.parameters = parameters


class FakeBotApi:
    """`base_url`/`file_base_url` go into TELEGRAM_API_BASE_URL or `Bot(...)`. Tests push updates, read `calls`."""

    def __init__(self, token: str = TOKEN, bot_user: dict[str, Any] | None = None) -> None:
        self.token = token
        self.bot_user = dict(bot_user or BOT_USER)
        self.calls: list[Call] = []
        self.updates: list[dict[str, Any]] = []
        self.files: dict[str, tuple[str, bytes]] = {}
        #: What each message the bot sent shows now: (chat id, message id) → (text, reply_markup).
        self.shown: dict[tuple[str, int], tuple[str, Any]] = {}
        self.webhook: dict[str, Any] = {"url": "", "last_error_message": None}
        self._faults: dict[str, deque[Fault]] = {}
        self._holds: dict[str, asyncio.Event] = {}
        self._changed = asyncio.Condition()
        self._stopping = False
        self._update_ids = itertools.count(10_000)
        self._message_ids = itertools.count(50_000)
        self._runner: web.AppRunner | None = None
        self.url = ""

    # --- life cycle ---------------------------------------------------------------------------------

    async def start(self, port: int = 0) -> FakeBotApi:
        """`port`: a fixed one, e.g. one a bridge was already refused on (the Bot API "comes back")."""
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/bot{token}/{method}", self._api)
        app.router.add_get("/file/bot{token}/{path:.+}", self._download)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", port)
        await site.start()
        host, bound = self._runner.addresses[0][:2]
        self.url = f"http://{host}:{bound}"
        return self

    async def stop(self) -> None:
        """Wakes pending long polls (they answer with no updates) before closing."""
        self._stopping = True
        for gate in self._holds.values():
            gate.set()
        async with self._changed:
            self._changed.notify_all()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    @property
    def base_url(self) -> str:
        return f"{self.url}/bot"

    @property
    def file_base_url(self) -> str:
        return f"{self.url}/file/bot"

    # --- what tests do --------------------------------------------------------------------------------

    async def push_update(self, update: dict[str, Any]) -> dict[str, Any]:
        """Queue an update for getUpdates (an `update_id` is assigned when missing)."""
        update = dict(update)
        update.setdefault("update_id", next(self._update_ids))
        async with self._changed:
            self.updates.append(update)
            self._changed.notify_all()
        return update

    def add_file(self, file_id: str, path: str, content: bytes) -> None:
        self.files[file_id] = (path, content)

    def fail(
        self,
        method: str,
        status: int = 400,
        description: str = "Bad Request",
        *,
        retry_after: int | None = None,
        delay: float = 0.0,
        times: int = 1,
    ) -> None:
        """The next `times` calls of `method` fail this way (`retry_after`: a 429 with `parameters.retry_after`)."""
        if retry_after is not None:
            status, description = 429, f"Too Many Requests: retry after {retry_after}"
        for _ in range(times):
            self._faults.setdefault(method, deque()).append(Fault(status, description, retry_after, delay))

    def delay(self, method: str, seconds: float, times: int = 1) -> None:
        """The next `times` calls of `method` answer normally, `seconds` late."""
        for _ in range(times):
            self._faults.setdefault(method, deque()).append(Fault(status=200, delay=seconds))

    def hold(self, method: str) -> asyncio.Event:
        """Calls of `method` hang (a Bot API that accepts the connection and never answers) until the returned
        event is set, or the fake stops."""
        return self._holds.setdefault(method, asyncio.Event())

    def calls_to(self, method: str, *, client: str | None = None) -> list[dict[str, Any]]:
        """The calls' parameters; with `client`, only the calls that client made (see CLIENT_HEADER)."""
        return [
            call.params for call in self.calls if call.method == method and (client is None or call.client == client)
        ]

    async def wait_for(
        self, method: str, where: Callable[[dict[str, Any]], bool] = lambda _: True, *, count: int = 1,
        timeout: float = 5.0, client: str | None = None,
    ) -> list[dict[str, Any]]:  # fmt: skip
        """Until at least `count` calls of `method` matching `where` (by `client`, if given) were recorded;
        returns them all."""

        def matching() -> list[dict[str, Any]]:
            return [params for params in self.calls_to(method, client=client) if where(params)]

        async with asyncio.timeout(timeout):
            async with self._changed:
                await self._changed.wait_for(lambda: len(matching()) >= count)
        return matching()

    def sent_texts(self, chat_id: int | str | None = None) -> list[str]:
        return [
            params["text"]
            for params in self.calls_to("sendMessage")
            if chat_id is None or str(params.get("chat_id")) == str(chat_id)
        ]

    # --- the HTTP side ------------------------------------------------------------------------------

    async def _api(self, request: web.Request) -> web.Response:
        if request.match_info["token"] != self.token:
            return web.json_response({"ok": False, "error_code": 401, "description": "Unauthorized"}, status=401)
        method = request.match_info["method"]
        params = await _params(request)
        async with self._changed:
            self.calls.append(Call(method, params, client=request.headers.get(CLIENT_HEADER)))
            self._changed.notify_all()
        if method in self._holds:
            await self._holds[method].wait()
        fault = self._faults.get(method, deque()).popleft() if self._faults.get(method) else None
        if fault is not None and fault.delay:
            await asyncio.sleep(fault.delay)
        if fault is not None and fault.status != 200:
            parameters = {"retry_after": fault.retry_after} if fault.retry_after is not None else None
            return _error(ApiError(fault.status, fault.description, parameters))
        handler = getattr(self, f"_m_{method}", None)
        if handler is None:
            return _error(ApiError(404, "Not Found"))
        try:
            result = await handler(params)
        except ApiError as exc:
            return _error(exc)
        return web.json_response({"ok": True, "result": result})

    async def _download(self, request: web.Request) -> web.StreamResponse:
        if request.match_info["token"] != self.token:
            return web.Response(status=401)
        path = request.match_info["path"]
        for file_path, content in self.files.values():
            if file_path == path:
                async with self._changed:
                    self.calls.append(Call("download", {"path": path}))
                    self._changed.notify_all()
                return web.Response(body=content)
        return web.Response(status=404, text="Not Found")

    # --- methods ----------------------------------------------------------------------------------------

    async def _m_getMe(self, params: dict[str, Any]) -> dict[str, Any]:
        return self.bot_user

    async def _m_setMyCommands(self, params: dict[str, Any]) -> bool:
        for command in params.get("commands", []):
            if not (1 <= len(command.get("command", "")) <= 32) or not command["command"].replace("_", "").isalnum():
                raise ApiError(400, "Bad Request: BOT_COMMAND_INVALID")
            if not (1 <= len(command.get("description", "")) <= 256):
                raise ApiError(400, "Bad Request: BOT_COMMAND_DESCRIPTION_INVALID")
        return True

    async def _m_deleteWebhook(self, params: dict[str, Any]) -> bool:
        self.webhook = {"url": "", "last_error_message": None}
        if params.get("drop_pending_updates") is True:
            self.updates.clear()
        return True

    async def _m_setWebhook(self, params: dict[str, Any]) -> bool:
        self.webhook = {
            "url": params.get("url", ""),
            "secret_token": params.get("secret_token"),
            "allowed_updates": params.get("allowed_updates"),
            "last_error_message": None,
        }
        return True

    async def _m_getWebhookInfo(self, params: dict[str, Any]) -> dict[str, Any]:
        info: dict[str, Any] = {
            "url": self.webhook.get("url", ""),
            "has_custom_certificate": False,
            "pending_update_count": len(self.updates),
        }
        if self.webhook.get("last_error_message"):
            info["last_error_date"] = int(time.time())
            info["last_error_message"] = self.webhook["last_error_message"]
        return info

    async def _m_getUpdates(self, params: dict[str, Any]) -> list[dict[str, Any]]:
        if self.webhook.get("url"):
            raise ApiError(409, "Conflict: can't use getUpdates method while webhook is active; use deleteWebhook")
        offset = int(params.get("offset") or 0)
        limit = int(params.get("limit") or 100)
        timeout = float(params.get("timeout") or 0)
        # Asking with an offset confirms every update below it: Telegram forgets them.
        self.updates = [update for update in self.updates if update["update_id"] >= offset]
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        async with self._changed:
            while not self.updates and not self._stopping and (remaining := deadline - loop.time()) > 0:
                try:
                    async with asyncio.timeout(remaining):
                        await self._changed.wait()
                except TimeoutError:
                    break
        return [] if self._stopping else self.updates[:limit]

    async def _m_sendMessage(self, params: dict[str, Any]) -> dict[str, Any]:
        text = params.get("text", "")
        shown = check_html(text) if params.get("parse_mode") == "HTML" else text
        if not shown.strip():
            raise ApiError(400, "Bad Request: message text is empty")
        if len(shown.encode("utf-16-le")) // 2 > 4096:
            raise ApiError(400, "Bad Request: message is too long")
        message = self._message(params["chat_id"], shown)
        if params.get("reply_markup"):
            message["reply_markup"] = params["reply_markup"]
        self.shown[(str(params["chat_id"]), message["message_id"])] = (shown, params.get("reply_markup"))
        return message

    async def _m_editMessageText(self, params: dict[str, Any]) -> dict[str, Any]:
        text = params.get("text", "")
        shown = check_html(text) if params.get("parse_mode") == "HTML" else text
        if not shown.strip():
            raise ApiError(400, "Bad Request: message text is empty")
        key = (str(params["chat_id"]), int(params["message_id"]))
        if self.shown.get(key) == (shown, params.get("reply_markup")):
            raise ApiError(
                400,
                "Bad Request: message is not modified: specified new message content and reply markup are exactly"
                " the same as a current content and reply markup of the message",
            )
        self.shown[key] = (shown, params.get("reply_markup"))
        message = self._message(params["chat_id"], shown)
        message["message_id"] = int(params["message_id"])
        message["edit_date"] = int(time.time())
        if params.get("reply_markup"):
            message["reply_markup"] = params["reply_markup"]
        return message

    async def _m_answerCallbackQuery(self, params: dict[str, Any]) -> bool:
        return True

    async def _m_setMessageReaction(self, params: dict[str, Any]) -> bool:
        for reaction in params.get("reaction") or []:
            # Bots may use only the standard reactions (custom emoji need a paid, premium setup).
            if reaction.get("type") != "emoji" or reaction.get("emoji") not in ALLOWED_REACTIONS:
                raise ApiError(400, "Bad Request: REACTION_INVALID")
        return True

    async def _m_getFile(self, params: dict[str, Any]) -> dict[str, Any]:
        stored = self.files.get(params.get("file_id", ""))
        if stored is None:
            raise ApiError(400, "Bad Request: invalid file_id")
        path, content = stored
        if len(content) > MAX_DOWNLOAD_BYTES:
            raise ApiError(400, "Bad Request: file is too big")
        return {"file_id": params["file_id"], "file_unique_id": f"u-{path}", "file_size": len(content),
                "file_path": path}  # fmt: skip

    def _message(self, chat_id: object, text: str) -> dict[str, Any]:
        chat_id = int(chat_id) if str(chat_id).lstrip("-").isdigit() else chat_id
        chat = {"id": chat_id, "type": "private" if isinstance(chat_id, int) and chat_id > 0 else "supergroup"}
        return {
            "message_id": next(self._message_ids),
            "date": int(time.time()),
            "chat": chat,
            "from": self.bot_user,
            "text": text,
        }


async def _params(request: web.Request) -> dict[str, Any]:
    """PTB sends forms: strings as-is, everything else JSON-encoded. Decode each field, else keep the string."""
    if request.content_type == "application/json":
        body = await request.json()
        return dict(body) if isinstance(body, dict) else {}
    form = await request.post() if request.method == "POST" else request.query
    params: dict[str, Any] = {}
    for key, value in form.items():
        if not isinstance(value, str):
            params[key] = value  # an uploaded file
            continue
        try:
            params[key] = json.loads(value)
        except json.JSONDecodeError:
            params[key] = value
    # A numeric-looking string (e.g. a text of "42") was decoded to a number: keep text fields as text.
    for text_field in ("text", "caption", "secret_token", "url", "query_id", "callback_query_id", "data"):
        if text_field in form and isinstance(form[text_field], str):
            params[text_field] = form[text_field]
    return params


def _error(exc: ApiError) -> web.Response:
    body: dict[str, Any] = {"ok": False, "error_code": exc.status, "description": exc.description}
    if exc.parameters:
        body["parameters"] = exc.parameters
    return web.json_response(body, status=exc.status)


class _HtmlCheck(html.parser.HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.text: list[str] = []
        self.open: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag not in HTML_TAGS:
            raise ApiError(400, f'Bad Request: can\'t parse entities: Unsupported start tag "{tag}"')
        if tag == "a" and not dict(attrs).get("href"):
            raise ApiError(400, "Bad Request: can't parse entities: a tag without href")
        self.open.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if not self.open or self.open[-1] != tag:
            raise ApiError(400, f'Bad Request: can\'t parse entities: Unmatched end tag "{tag}"')
        self.open.pop()

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def check_html(text: str) -> str:
    """Telegram's HTML rules (the ones a bot can trip): known tags, nested properly, no bare `<` or `&`.
    Returns the text as a user sees it."""
    if re.search(r"&(?!(?:lt|gt|amp|quot|#\d+|#x[0-9a-fA-F]+);)", text):
        raise ApiError(400, "Bad Request: can't parse entities: Unknown entity")
    checker = _HtmlCheck()
    checker.feed(text)
    checker.close()
    if checker.open:
        raise ApiError(
            400, f"Bad Request: can't parse entities: Can't find end tag corresponding to {checker.open[-1]}"
        )
    return "".join(checker.text)
