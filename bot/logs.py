"""Logging set-up: one line per event, text or JSON, with every configured secret masked."""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import TextIO

_MASK = "[redacted]"


class SecretFilter(logging.Filter):
    """Masks secrets in the final message, whatever put them there (a URL, an exception text, a repr)."""

    def __init__(self, secrets: Iterable[str]) -> None:
        super().__init__()
        self.secrets = sorted({s for s in secrets if len(s) >= 4}, key=len, reverse=True)

    def redact(self, text: str) -> str:
        for secret in self.secrets:
            if secret in text:
                text = text.replace(secret, _MASK)
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        if self.secrets:
            message = self.redact(record.getMessage())
            if record.exc_info:
                # Render the traceback now, masked, so the formatter does not render it raw.
                record.exc_text = self.redact(logging.Formatter().formatException(record.exc_info))
                record.exc_info = None
            record.msg, record.args = message, None
        return True


class TextFormatter(logging.Formatter):
    """`time LEVEL logger: message`, a traceback folded onto the same line: one line per event."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        return super().format(record).replace("\n", " ⏎ ")


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key in ("platform", "uid_hash", "item_id", "kind", "event"):
            if hasattr(record, key):
                entry[key] = getattr(record, key)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            entry["exception"] = record.exc_text
        return json.dumps(entry, ensure_ascii=False)


def configure_logging(
    level: str = "INFO", fmt: str = "text", secrets: Iterable[str] = (), stream: TextIO | None = None
) -> None:
    """Install one handler (stderr by default) on the root logger; safe to call more than once."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    handler.addFilter(SecretFilter(secrets))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    # At INFO httpx logs every request URL, and Bot API URLs contain the bot token.
    for noisy in ("httpx", "httpcore", "aiohttp.access", "telegram.ext.Updater", "slack_bolt", "slack_sdk"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLevelName(level)))


def mask_secret(secret: str) -> None:
    """A secret known only after start (generated once and stored, e.g. the Omi webhook's path segment): masked
    from now on too, in every line the root logger's handlers write."""
    for handler in logging.getLogger().handlers:
        for found in handler.filters:
            if isinstance(found, SecretFilter) and secret not in found.secrets and len(secret) >= 4:
                found.secrets = sorted({*found.secrets, secret}, key=len, reverse=True)
