"""Files a user sent that the bridge fetches from the platform after accepting the message: a history export
(SPEC §10), a voice message or audio file to transcribe (SPEC §11). Each adapter fetches through its platform's file
API; the core sees only these types."""

from __future__ import annotations

from typing import Protocol

from bot.events import Audio

#: The Bot API lets a bot download files up to 20 MB; SPEC §11 holds Slack's audio files to the same bound.
MAX_DOWNLOAD_BYTES = 20 * 1024 * 1024


class FileTooBig(Exception):
    """The platform will not hand the file over: it is over its download limit."""

    def __init__(self, size: int | None) -> None:
        super().__init__(f"{size} bytes")
        self.size = size


class FileUnavailable(Exception):
    """The file could not be fetched (gone, or the platform unreachable after a few tries)."""


class FileRefused(Exception):
    """The platform refuses the file for good (a scope the app lacks, a file deleted): trying again cannot help.
    `str(exc)` is a short reason a user may read (no token, no URL)."""


class AudioSource(Protocol):
    """How a platform hands over a voice message's or audio file's bytes (Telegram getFile, Slack files.info)."""

    async def fetch_audio(self, audio: Audio) -> bytes:
        """The whole file, at most `MAX_DOWNLOAD_BYTES` (else FileTooBig, before downloading when the size is
        announced, else as soon as the download passes it). FileUnavailable when the file is gone or the platform
        cannot be reached: the job tries again later, so one attempt here is enough. FileRefused when trying again
        cannot help."""
        ...
