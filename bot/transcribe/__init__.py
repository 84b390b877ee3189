"""Speech-to-text for voice messages (SPEC §11): the OpenAI-compatible client, its errors, and the retry policy."""

from bot.transcribe.client import Transcriber, model_ids, primary_language
from bot.transcribe.errors import TranscriptionError, TranscriptionFailed, TranscriptionRetry, classify
from bot.transcribe.policy import GiveUp, Retry, next_step

__all__ = [
    "GiveUp",
    "Retry",
    "Transcriber",
    "TranscriptionError",
    "TranscriptionFailed",
    "TranscriptionRetry",
    "classify",
    "model_ids",
    "next_step",
    "primary_language",
]
