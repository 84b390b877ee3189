"""A fake OpenAI-compatible speech-to-text server on 127.0.0.1 (aiohttp): `POST /v1/audio/transcriptions` and
`GET /v1/models`, as OpenAI, Groq, faster-whisper-server and whisper.cpp's server answer them.

It records every transcription request (multipart fields, the file, the Authorization header) and answers from a
script queued by the test: `queue_text`, `queue_error` (OpenAI's error body, optionally `Retry-After`), `queue_hang`
(never answers until `stop`). An empty script answers `{"text": default_text}`. Tests wait for requests with
`wait_for_requests(n)` — a condition, never a sleep."""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

OPENAI_ERRORS: dict[str, tuple[str, str]] = {  # code → (type, message), as OpenAI words them
    "rate_limit_exceeded": ("requests", "Rate limit reached for whisper-1 on requests per min (RPM)."),
    "insufficient_quota": (
        "insufficient_quota",
        "You exceeded your current quota, please check your plan and billing details.",
    ),
    "invalid_api_key": ("invalid_request_error", "Incorrect API key provided: sk-***."),
    "invalid_language_format": (
        "invalid_request_error",
        "Invalid language 'xx'. Use ISO-639-1.",
    ),
    "server_error": ("server_error", "The server had an error while processing your request."),
}


def openai_error(code: str | None, message: str = "", *, type_: str | None = None, param: str | None = None) -> dict:
    known_type, known_message = OPENAI_ERRORS.get(code or "", ("invalid_request_error", "Invalid file format."))
    return {"error": {"message": message or known_message, "type": type_ or known_type, "param": param, "code": code}}


@dataclass
class Reply:
    status: int = 200
    body: Any = None  # JSON; a str is sent as-is (text/plain)
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0  # seconds before answering, after the whole upload was read
    hang: bool = False  # never answer (until the server stops)


@dataclass
class Recorded:
    fields: dict[str, str]
    file: bytes | None
    filename: str | None
    content_type: str | None
    authorization: str | None
    path: str


class FakeSTT:
    def __init__(self, *, default_text: str = "hello from the fake") -> None:
        self.default_text = default_text
        self.script: deque[Reply] = deque()
        self.requests: list[Recorded] = []
        self.model_requests: list[str | None] = []  # the Authorization header of each GET /models
        self.model_list: list[str] = ["whisper-1"]
        self.models_shape = "openai"  # "openai": {"object": "list", "data": [...]}; "bare": [{"id": …}, …]
        self.models_reply: Reply | None = None  # an error answer for GET /models instead of the list
        self._changed = asyncio.Condition()
        self._stopping = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self.base_url = ""

    # --- life cycle -------------------------------------------------------------------------------------
    async def start(self) -> str:
        """Starts on a free port; returns the TRANSCRIBE_URL (`http://127.0.0.1:PORT/v1`)."""
        app = web.Application(client_max_size=30 * 1024 * 1024)
        app.router.add_post("/v1/audio/transcriptions", self._transcribe)
        app.router.add_get("/v1/models", self._models)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        host, port = self._runner.addresses[0][:2]
        self.base_url = f"http://{host}:{port}/v1"
        return self.base_url

    async def stop(self) -> None:
        self._stopping.set()
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()

    async def __aenter__(self) -> FakeSTT:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # --- the script -------------------------------------------------------------------------------------
    def queue_text(self, text: str, *, delay: float = 0.0) -> None:
        self.script.append(Reply(200, {"text": text}, delay=delay))

    def queue_error(
        self,
        status: int,
        code: str | None = None,
        *,
        retry_after: str | None = None,
        param: str | None = None,
        body: Any = None,
    ) -> None:
        headers = {"Retry-After": retry_after} if retry_after is not None else {}
        self.script.append(Reply(status, body if body is not None else openai_error(code, param=param), headers))

    def queue_reply(self, reply: Reply) -> None:
        self.script.append(reply)

    def queue_hang(self) -> None:
        self.script.append(Reply(hang=True))

    async def wait_for_requests(self, count: int, timeout: float = 5.0) -> None:
        async with asyncio.timeout(timeout), self._changed:
            await self._changed.wait_for(lambda: len(self.requests) >= count)

    # --- handlers ---------------------------------------------------------------------------------------
    async def _transcribe(self, request: web.Request) -> web.StreamResponse:
        form = await request.post()
        fields: dict[str, str] = {}
        file = filename = content_type = None
        for name, value in form.items():
            if isinstance(value, web.FileField):
                if name == "file":
                    file, filename, content_type = value.file.read(), value.filename, value.content_type
            else:
                fields[name] = str(value)
        async with self._changed:
            self.requests.append(
                Recorded(fields, file, filename, content_type, request.headers.get("Authorization"), request.path)
            )
            self._changed.notify_all()
        reply = self.script.popleft() if self.script else Reply(200, {"text": self.default_text})
        return await self._answer(reply)

    async def _models(self, request: web.Request) -> web.StreamResponse:
        self.model_requests.append(request.headers.get("Authorization"))
        if self.models_reply is not None:
            return await self._answer(self.models_reply)
        items = [{"id": name, "object": "model", "created": 1700000000, "owned_by": "fake"} for name in self.model_list]
        return web.json_response({"object": "list", "data": items} if self.models_shape == "openai" else items)

    async def _answer(self, reply: Reply) -> web.StreamResponse:
        if reply.hang:
            await self._stopping.wait()
            return web.Response(status=503)
        if reply.delay:
            await asyncio.sleep(reply.delay)  # the service's own latency, not a test waiting
        if isinstance(reply.body, str):
            return web.Response(status=reply.status, text=reply.body, headers=reply.headers)
        return web.json_response(reply.body, status=reply.status, headers=reply.headers)
