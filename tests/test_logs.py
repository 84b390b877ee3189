"""Logs: one line per event, JSON on request, secrets masked wherever they come from."""

from __future__ import annotations

import io
import json
import logging

import pytest

from bot.logs import configure_logging

SECRET = "sk_0123456789abcdef0123456789abcdef"


@pytest.fixture
def restore_logging():
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def test_json_lines_with_secrets_masked_even_in_tracebacks(restore_logging):
    stream = io.StringIO()
    configure_logging("INFO", "json", [SECRET], stream=stream)
    log = logging.getLogger("omi-bridge.test")
    log.info("calling %s/v2/integrations with %s", "http://127.0.0.1", SECRET)
    try:
        raise RuntimeError(f"boom with {SECRET}")
    except RuntimeError:
        log.exception("it failed")
    lines = stream.getvalue().splitlines()
    assert len(lines) == 2
    first, second = (json.loads(line) for line in lines)
    assert first["level"] == "INFO" and "[redacted]" in first["message"]
    assert "RuntimeError" in second["exception"]
    assert SECRET not in stream.getvalue()


def test_text_format_is_one_line_per_event(restore_logging):
    stream = io.StringIO()
    configure_logging("DEBUG", "text", [SECRET], stream=stream)
    try:
        raise ValueError("line one\nline two")
    except ValueError:
        logging.getLogger("omi-bridge.test").exception("oops %s", SECRET)
    [line] = stream.getvalue().splitlines()
    assert "oops [redacted]" in line and "ValueError" in line


def test_httpx_stays_quiet_at_info(restore_logging):
    configure_logging("INFO", "text", [], stream=io.StringIO())
    assert logging.getLogger("httpx").getEffectiveLevel() >= logging.WARNING


def test_a_secret_learned_after_start_is_masked_too(restore_logging):
    import io
    import logging

    from bot.logs import configure_logging, mask_secret

    stream = io.StringIO()
    configure_logging("INFO", secrets=["configured-secret"], stream=stream)
    mask_secret("generated-webhook-secret-123")
    logging.getLogger("test").warning("path /omi/webhook/generated-webhook-secret-123 and configured-secret")
    assert "generated-webhook-secret-123" not in stream.getvalue() and "configured-secret" not in stream.getvalue()
    assert "[redacted]" in stream.getvalue()
