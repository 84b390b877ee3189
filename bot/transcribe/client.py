"""The OpenAI-compatible speech-to-text client (SPEC §11): `POST {TRANSCRIBE_URL}/audio/transcriptions`, multipart
`file`, `model`, `response_format=json`, `language`; and `GET {TRANSCRIBE_URL}/models` for doctor.

OpenAI, Groq, faster-whisper-server (speaches), whisper.cpp's server and LocalAI all answer this shape. Every failure
comes out as a `TranscriptionRetry` or a `TranscriptionFailed` (bot.transcribe.errors); the key never leaves the
Authorization header — not in reasons, not in the repr.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Mapping
from types import TracebackType
from typing import Any

import httpx

from bot.transcribe.errors import (
    BAD_ADDRESS,
    TIMED_OUT,
    UNREACHABLE,
    UNREADABLE,
    TranscriptionFailed,
    TranscriptionRetry,
    classify,
    parse_retry_after,
)

DEFAULT_MODEL = "whisper-1"
CONNECT_TIMEOUT = 10.0
#: Upload, processing and answer of one file, wall clock. A 20 MB note of half an hour takes OpenAI tens of seconds;
#: a CPU-only local whisper can take minutes — operators with one raise this.
REQUEST_TIMEOUT = 180.0
MODELS_TIMEOUT = 15.0

_SUBTAG = re.compile(r"[a-z]{2}")


def primary_language(tag: str | None) -> str | None:
    """`pt` of `pt-br` / `pt_BR` / ` PT `: the ISO 639-1 primary subtag, lower-case; None when there is none.
    A three-letter or odd primary subtag (`fil`, `und`, `x-…`) gives None: the API takes ISO 639-1 only and would
    refuse the file, so the service detects the language itself instead."""
    if not tag:
        return None
    primary = re.split(r"[-_]", tag.strip(), maxsplit=1)[0].lower()
    return primary if _SUBTAG.fullmatch(primary) else None


def _json(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


def _refuses_language(body: Any) -> bool:
    """OpenAI's 400 for a language it does not know: `error.param == "language"` (code `invalid_language_format`)."""
    error = body.get("error") if isinstance(body, Mapping) else None
    if not isinstance(error, Mapping):
        return False
    return error.get("param") == "language" or "language" in str(error.get("code") or "")


def model_ids(body: Any) -> list[str]:
    """Model ids from OpenAI's `{"data": [{"id": …}]}`, a bare list (of objects or of strings), or `{"models": …}`;
    ValueError for anything else."""
    items = body
    if isinstance(body, Mapping):
        items = body.get("data", body.get("models"))
    if not isinstance(items, list):
        raise ValueError("no model list")
    ids = []
    for item in items:
        if isinstance(item, str):
            ids.append(item)
        elif isinstance(item, Mapping) and isinstance(item.get("id") or item.get("name"), str):
            ids.append(item.get("id") or item.get("name"))
    return ids


class Transcriber:
    """One speech-to-text service. Use as `async with Transcriber(...)`, or call `aclose()`.
    `transport`: tests may inject an httpx transport; `trust_env` is off, so no proxy from the environment."""

    def __init__(
        self,
        base_url: str,
        *,
        api_key: str | None = None,
        model: str = DEFAULT_MODEL,
        timeout: float = REQUEST_TIMEOUT,
        connect_timeout: float = CONNECT_TIMEOUT,
        models_timeout: float = MODELS_TIMEOUT,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        if not base_url.startswith(("http://", "https://")):
            raise ValueError("TRANSCRIBE_URL must be an http(s) URL")
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.timeout = timeout
        self.models_timeout = models_timeout
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._http = httpx.AsyncClient(
            headers=headers,
            timeout=httpx.Timeout(timeout, connect=connect_timeout),
            transport=transport,
            trust_env=False,
            follow_redirects=False,
        )

    def __repr__(self) -> str:  # never the key
        return f"Transcriber({self.base_url!r}, model={self.model!r})"

    async def __aenter__(self) -> Transcriber:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def transcribe(self, audio: bytes, *, filename: str, mime: str, language: str | None = None) -> str:
        """The transcript, stripped ("" when the service heard nothing). `language`: any tag (`pt-br`); only its
        primary subtag is sent, and when the service refuses that language the file is sent once more without it.
        Raises TranscriptionRetry or TranscriptionFailed."""
        lang = primary_language(language)
        response, body = await self._post(audio, filename=filename, mime=mime, language=lang)
        if response.status_code == 400 and lang is not None and _refuses_language(body):
            response, body = await self._post(audio, filename=filename, mime=mime, language=None)
        if not response.is_success:
            raise classify(response.status_code, body, parse_retry_after(response.headers))
        text = body.get("text") if isinstance(body, Mapping) else None
        if not isinstance(text, str):
            raise TranscriptionFailed(UNREADABLE, status=response.status_code)
        return text.strip()

    async def _post(
        self, audio: bytes, *, filename: str, mime: str, language: str | None
    ) -> tuple[httpx.Response, Any]:
        data = {"model": self.model, "response_format": "json"}
        if language:
            data["language"] = language
        files = {"file": (filename or "audio", audio, mime or "application/octet-stream")}
        response = await self._send("POST", "/audio/transcriptions", self.timeout, data=data, files=files)
        return response, _json(response)

    async def models(self) -> list[str]:
        """The ids `GET {TRANSCRIBE_URL}/models` lists. Raises TranscriptionRetry / TranscriptionFailed like
        `transcribe` (an unreadable list → TranscriptionFailed)."""
        response = await self._send("GET", "/models", self.models_timeout)
        body = _json(response)
        if not response.is_success:
            raise classify(response.status_code, body, parse_retry_after(response.headers))
        try:
            return model_ids(body)
        except ValueError:
            raise TranscriptionFailed(UNREADABLE, status=response.status_code) from None

    async def _send(self, method: str, path: str, timeout: float, **kwargs: Any) -> httpx.Response:
        try:
            async with asyncio.timeout(timeout):  # wall clock: httpx's timeouts are per read, a trickle passes them
                return await self._http.request(method, self.base_url + path, **kwargs)
        except TimeoutError:
            raise TranscriptionRetry(TIMED_OUT) from None
        except httpx.TimeoutException:
            raise TranscriptionRetry(TIMED_OUT) from None
        except (httpx.UnsupportedProtocol, httpx.InvalidURL):
            raise TranscriptionFailed(BAD_ADDRESS) from None
        except httpx.TransportError:  # refused, reset, DNS, a malformed answer
            raise TranscriptionRetry(UNREACHABLE) from None
