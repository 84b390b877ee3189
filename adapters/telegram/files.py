"""Voice messages, audio files and video notes a user sent, fetched through the Bot API for transcription (SPEC §11):
getFile, then the download from the file base URL, within the Bot API's 20 MB download limit.

One attempt per call: the core's transcription job tries again later (`FileUnavailable`), so nothing here sleeps.
No exception raised here carries the Bot API's text or a URL (a file URL contains the token)."""

from __future__ import annotations

from telegram import Bot
from telegram.error import BadRequest, TelegramError

from bot.events import Audio
from bot.files import MAX_DOWNLOAD_BYTES, FileRefused, FileTooBig, FileUnavailable

#: A 20 MB file over a slow link: the Bot's usual 15 s read timeout is too short for it (as in exports.py).
DOWNLOAD_TIMEOUT_SECONDS = 120.0
#: Why a file Telegram refuses to hand over cannot be transcribed, as a user may read it.
GONE = "Telegram no longer has the file"


class TelegramAudio:
    """`bot.files.AudioSource` for Telegram: the bytes of a voice message, audio file or video note by file_id."""

    def __init__(self, bot: Bot, *, read_timeout: float = DOWNLOAD_TIMEOUT_SECONDS) -> None:
        self._bot = bot
        self._read_timeout = read_timeout

    async def fetch_audio(self, audio: Audio) -> bytes:
        """The whole file: FileTooBig over 20 MB (before any request when the message announced its size),
        FileRefused when Telegram refuses the file_id (gone, invalid), FileUnavailable when it cannot be reached."""
        if audio.size is not None and audio.size > MAX_DOWNLOAD_BYTES:
            raise FileTooBig(audio.size)
        try:
            file = await self._bot.get_file(audio.ref)
            if file.file_size is not None and file.file_size > MAX_DOWNLOAD_BYTES:
                raise FileTooBig(file.file_size)
            data = bytes(await file.download_as_bytearray(read_timeout=self._read_timeout))
        except BadRequest as exc:  # "file is too big", "invalid file_id", "wrong file_id": trying again cannot help
            if "too big" in str(exc).lower():
                raise FileTooBig(audio.size) from None
            raise FileRefused(GONE) from None
        except TelegramError as exc:  # NetworkError, TimedOut, a 5xx, an expired file path (404): the job retries
            # `from None`: the library's error and its cause may quote the request, whose URL holds the token.
            raise FileUnavailable(f"Telegram: {type(exc).__name__}") from None
        if len(data) > MAX_DOWNLOAD_BYTES:
            raise FileTooBig(len(data))
        return data
