"""The terminal console, driven line by line from stdin."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

from bot.runtime import run_console
from bot.settings import load_settings

ROOT = Path(__file__).resolve().parent.parent


def console_settings(tmp_path: Path):
    return load_settings(
        DATABASE_URL=f"sqlite:///{tmp_path / 'bridge.db'}",
        OMI_APP_ID=None,
        OMI_API_KEY=None,
        TELEGRAM_BOT_TOKEN=None,
        SLACK_BOT_TOKEN=None,
    )


async def test_remember_then_memories_and_a_pasted_burst_then_recent(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    stdin = io.StringIO(
        "/remember #food I am vegetarian\n"
        "/memories\n"
        "Alice: are we still on for the hike on saturday?\n"
        "Bob: yes, meet at the trailhead at 8\n"
        "Alice: great, I will bring snacks\n"
        "/recent\n"
    )
    stdout = io.StringIO()
    assert await run_console(console_settings(tmp_path), stdin=stdin, stdout=stdout) == 0
    out = stdout.getvalue()
    assert out.startswith("omi> SANDBOX: nothing leaves this machine")
    assert "bot> • I am vegetarian  #food" in out
    assert "Saved 3 messages" in out
    recent = out[out.index("Saved 3 messages") :]
    assert "hike" in recent.lower() and "No conversations" not in recent


async def test_state_survives_a_restart_with_the_same_sandbox_account(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    settings = console_settings(tmp_path)
    first = io.StringIO()
    await run_console(settings, stdin=io.StringIO("/remember my bike is blue\n"), stdout=first)
    second = io.StringIO()
    await run_console(settings, stdin=io.StringIO("/memories\n"), stdout=second)
    assert "• my bike is blue" in second.getvalue()


async def test_empty_input_exits_cleanly(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    stdout = io.StringIO()
    assert await run_console(console_settings(tmp_path), stdin=io.StringIO(""), stdout=stdout) == 0
    assert "Linked to Omi uid" in stdout.getvalue()


def test_the_readme_command_runs_the_console_from_stdin(tmp_path):
    env = {key: value for key, value in os.environ.items() if not key.startswith(("OMI_", "TELEGRAM_", "SLACK_"))}
    env["PYTHONPATH"] = str(ROOT)
    done = subprocess.run(
        [sys.executable, "-m", "bot"],
        input="/remember #tea I like green tea\n/memories\n",
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert "SANDBOX: nothing leaves this machine" in done.stdout
    assert "• I like green tea  #tea" in done.stdout
    assert "Traceback" not in done.stderr


async def test_device_records_a_conversation_that_comes_back_when_notify_is_on(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    stdin = io.StringIO(
        "/device Alice: we need to buy milk for the party. Bob: I will get it after work today.\n"
        "/notify on\n"
        "/device Remind me to call the plumber about the kitchen tap tomorrow morning.\n"
    )
    stdout = io.StringIO()
    assert await run_console(console_settings(tmp_path), stdin=stdin, stdout=stdout) == 0
    out = stdout.getvalue()
    assert out.count("omi> your wearable recorded") == 2
    assert "Omi → chat is on" in out
    assert out.count("bot> New in Omi:") == 1  # the first came before /notify on: nothing pushed for it
    pushed = out[out.index("bot> New in Omi:") :]
    assert "plumber" in pushed.lower() and "Action items:" in pushed


async def test_device_needs_the_sandbox(tmp_path, monkeypatch):
    from adapters.console import ConsoleAdapter

    stdout = io.StringIO()
    console = ConsoleAdapter(lambda arrival: None, stdin=io.StringIO("/device hello\n"), stdout=stdout)
    await console.read_lines()
    assert "only with the embedded Omi sandbox" in stdout.getvalue()
