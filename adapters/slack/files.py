"""Slack audio files for transcription (SPEC §11): which file of a DM is audio (`audio_of`, at parse time), and
its bytes (`SlackAudio`, for the transcription job): `files.info` says where the file is, then a download with the
bot token (Slack's `url_private_download`, readable with `files:read`).

Nothing here puts the token or a file's URL into an exception or a log line: the URL names the workspace and the
file, and exceptions from httpx carry their request; they are never chained."""

from __future__ import annotations

import asyncio
import math
from typing import Any

import httpx
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from adapters.slack.client import BAD_TOKEN_ERRORS, CALL_ERRORS, api_error
from adapters.slack.jobs import as_dict, as_str
from bot.events import Audio
from bot.files import MAX_DOWNLOAD_BYTES, FileRefused, FileTooBig, FileUnavailable

#: A hard bound on one fetch, `files.info` and download together (a slow trickle must not hold the job).
FETCH_SECONDS = 120.0
#: Each network step of the download (connect, every read) may take this long.
STEP_SECONDS = 30.0
#: files.info errors that mean Slack is busy or away for now: the job tries again later.
TRANSIENT_ERRORS = ("ratelimited", "internal_error", "fatal_error", "service_unavailable", "request_timeout")
DELETED = "the file was deleted"
MISSING_SCOPE = "the Slack app lacks the files:read scope: the operator must reinstall it"
NOT_READABLE = "Slack would not let the bot read the file"
#: File name endings OpenAI's transcription API accepts (it tells formats by the name).
AUDIO_EXTENSIONS = frozenset({"flac", "m4a", "mp3", "mp4", "mpeg", "mpga", "oga", "ogg", "wav", "webm"})
#: A name's ending from Slack's `filetype`, else from the mimetype, for a file whose name has none of the above.
_FILETYPES = frozenset({"m4a", "mp3", "ogg", "wav", "webm"})
_MIME_EXTENSIONS = {
    "audio/mpeg": "mp3",
    "audio/mp3": "mp3",
    "audio/mp4": "m4a",
    "audio/m4a": "m4a",
    "audio/x-m4a": "m4a",
    "audio/ogg": "ogg",
    "audio/wav": "wav",
    "audio/wave": "wav",
    "audio/x-wav": "wav",
    "audio/vnd.wave": "wav",
    "audio/webm": "webm",
}


def audio_of(message: dict[str, Any]) -> Audio | None:
    """The first audio file of a message: an `audio/*` upload, or Slack's in-app audio clip (file subtype
    `slack_audio`, whose mimetype may be audio/mp4 or video/mp4). A file Slack announces by id alone
    (`file_access: check_file_info`) says nothing of being audio, so it is none."""
    files = message.get("files")
    for file in files if isinstance(files, list) else []:
        file = as_dict(file)
        mimetype = as_str(file.get("mimetype")).lower()
        clip = file.get("subtype") == "slack_audio"
        ref = as_str(file.get("id"))
        if not ref or not (clip or mimetype.startswith("audio/")):
            continue
        duration_ms, size = file.get("duration_ms"), file.get("size")
        return Audio(
            kind="voice" if clip else "audio",
            ref=ref,
            duration=duration_ms / 1000 if _count(duration_ms) else None,
            size=size if _count(size) and isinstance(size, int) else None,
            mime=mimetype or "application/octet-stream",
            filename=_audio_filename(file, mimetype),
        )
    return None


def _count(value: object) -> bool:
    """A size or duration as Slack writes them: a finite number, not negative."""
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value) and value >= 0


def _audio_filename(file: dict[str, Any], mimetype: str) -> str:
    """The name the transcription service is given: the file's own when it ends in a format the service knows
    (the ending lower-cased), else `audio.<format>` from Slack's filetype or the mimetype (m4a when unknown)."""
    name = as_str(file.get("name")).strip()
    stem, dot, ending = name.rpartition(".")
    if dot and stem and ending.lower() in AUDIO_EXTENSIONS:
        return f"{stem}.{ending.lower()}"
    filetype = as_str(file.get("filetype")).lower()
    if filetype not in _FILETYPES:
        filetype = _MIME_EXTENSIONS.get(mimetype.split(";")[0].strip(), "m4a")
    return f"audio.{filetype}"


class SlackAudio:
    """`bot.files.AudioSource` for Slack: `audio.ref` is the file's id."""

    def __init__(self, client: AsyncWebClient, token: str) -> None:
        self._client = client
        self._token = token

    async def fetch_audio(self, audio: Audio) -> bytes:
        """The file's bytes (≤ MAX_DOWNLOAD_BYTES), or FileTooBig, FileUnavailable, FileRefused (bot/files.py)."""
        if audio.size is not None and audio.size > MAX_DOWNLOAD_BYTES:
            raise FileTooBig(audio.size)
        try:
            async with asyncio.timeout(FETCH_SECONDS):
                url = await self._download_url(audio.ref)
                return await self._download(url)
        except TimeoutError:
            raise FileUnavailable("Slack took too long to hand over the file") from None

    async def _download_url(self, file_id: str) -> str:
        try:
            answer = await self._client.files_info(file=file_id)
        except SlackApiError as exc:
            raise _refusal(exc) from None
        except CALL_ERRORS as exc:  # a transport error or a timeout
            raise FileUnavailable(f"files.info failed ({api_error(exc)})") from None
        file = as_dict(answer.get("file"))
        mode = as_str(file.get("mode"))
        if mode == "tombstone" or file.get("is_deleted"):
            raise FileRefused(DELETED)
        if mode == "hidden_by_limit":
            raise FileRefused("the file is hidden by the workspace's plan limits")
        if file.get("is_external"):
            raise FileRefused("the file is stored outside Slack")
        size = file.get("size")
        if isinstance(size, int) and not isinstance(size, bool) and size > MAX_DOWNLOAD_BYTES:
            raise FileTooBig(size)
        url = as_str(file.get("url_private_download")) or as_str(file.get("url_private"))
        if not url.startswith(("https://", "http://")):
            raise FileRefused("Slack offers no download of this file")
        return url

    async def _download(self, url: str) -> bytes:
        """Streamed, so a file over the limit is dropped as soon as it passes it. Redirects are followed; httpx
        sends the token only to the origin it was meant for (it drops Authorization on a cross-origin hop)."""
        headers = {"Authorization": f"Bearer {self._token}"}
        try:
            async with (
                httpx.AsyncClient(trust_env=False, follow_redirects=True, timeout=STEP_SECONDS) as http,
                http.stream("GET", url, headers=headers) as response,
            ):
                _check_answer(response)
                declared = _content_length(response)
                if declared is not None and declared > MAX_DOWNLOAD_BYTES:
                    raise FileTooBig(declared)
                chunks: list[bytes] = []
                received = 0
                async for chunk in response.aiter_bytes():
                    received += len(chunk)
                    if received > MAX_DOWNLOAD_BYTES:
                        raise FileTooBig(None)  # what it really weighs is not known
                    chunks.append(chunk)
        except httpx.HTTPError as exc:  # the network, too many redirects, a broken stream
            raise FileUnavailable(f"the download failed ({type(exc).__name__})") from None
        return b"".join(chunks)


def _refusal(exc: SlackApiError) -> FileRefused | FileUnavailable:
    """What Slack's `ok: false` answer to files.info means for the job."""
    error = api_error(exc)
    status = getattr(exc.response, "status_code", 200)
    if error in TRANSIENT_ERRORS or status == 429 or status >= 500:
        return FileUnavailable(f"files.info failed ({error})")
    if error in ("file_not_found", "file_deleted"):
        return FileRefused(DELETED)
    if error == "missing_scope":
        return FileRefused(MISSING_SCOPE)
    if error in BAD_TOKEN_ERRORS:
        return FileRefused(f"Slack refused the bot's token ({error})")
    return FileRefused(f"Slack refused the file ({error})")


def _check_answer(response: httpx.Response) -> None:
    """A download Slack did not grant: an error status, or its sign-in page (`text/html`, answered 200 when the
    token cannot read the file)."""
    status = response.status_code
    if status in (408, 429) or status >= 500:
        raise FileUnavailable(f"the download failed (HTTP {status})")
    if status in (404, 410):
        raise FileRefused(DELETED)
    if not 200 <= status < 300 or response.headers.get("content-type", "").lower().startswith("text/html"):
        raise FileRefused(NOT_READABLE)


def _content_length(response: httpx.Response) -> int | None:
    value = response.headers.get("content-length", "")
    return int(value) if value.isdigit() else None
