"""Running `omi-bridge` as a real subprocess in tests: clean environment, lines read with deadlines."""

from __future__ import annotations

import asyncio
import os
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DEADLINE = 20.0


def clean_env(**extra: str) -> dict[str, str]:
    """The parent's environment without any bridge setting, plus `extra`; the repo on PYTHONPATH."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("OMI_", "TELEGRAM_", "SLACK_", "DATABASE_URL", "PUBLIC_URL", "LOG_", "LINK_"))
        and key not in ("HOST", "PORT")
    }
    env["PYTHONPATH"] = str(ROOT)
    env["PYTHONUNBUFFERED"] = "1"
    # A `serve` of a test never fetches a page from the internet (its links are made up): previews are off
    # unless a test turns them on against its own fake web server.
    env["LINK_PREVIEWS"] = "off"
    env.update(extra)
    return env


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def serve_env(tmp_path: Path, omi_url: str, app: Any, **extra: str) -> dict[str, str]:
    """`clean_env` for a serve on the sandbox's app at `omi_url`: its own SQLite file in `tmp_path`, a free port on
    127.0.0.1, and `extra` (the platform's settings)."""
    return clean_env(
        OMI_API_BASE_URL=omi_url,
        OMI_APP_ID=app.app_id,
        OMI_API_KEY=app.api_key,
        HOST="127.0.0.1",
        PORT=str(free_port()),
        DATABASE_URL=f"sqlite:///{tmp_path / 'bridge.db'}",
        **extra,
    )


class BackgroundProcess:
    """`python -m bot ARGS` in the background; stdout and stderr lines are collected as they come."""

    def __init__(self, *args: str, cwd: Path, env: dict[str, str]) -> None:
        self.process = subprocess.Popen(  # noqa: S603 - our own interpreter and module
            [sys.executable, "-m", "bot", *args],
            cwd=cwd,
            env=env,
            stdin=subprocess.PIPE,  # kept open: a console waits for input instead of seeing EOF
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        for stream in (self.process.stdout, self.process.stderr):
            threading.Thread(target=self._pump, args=(stream,), daemon=True).start()

    def _pump(self, stream) -> None:  # type: ignore[no-untyped-def]
        for line in stream:
            self.lines.put(line.rstrip("\n"))

    def wait_for(self, pattern: str, deadline: float = DEADLINE) -> re.Match[str]:
        """The first new output line matching `pattern` (waits on the line queue, up to `deadline` s)."""
        regex = re.compile(pattern)
        while True:
            try:
                line = self.lines.get(timeout=deadline)
            except queue.Empty:
                raise AssertionError(f"no line matching {pattern!r}; seen: {self.seen[-20:]}") from None
            self.seen.append(line)
            if match := regex.search(line):
                return match

    def stop(self, timeout: float = DEADLINE) -> int:
        """SIGTERM, then the exit code (killing it if it does not stop in time)."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise

    def kill(self) -> None:
        """A test's last word (in its `finally`): the process is gone, however the test ended."""
        if self.process.poll() is None:
            self.process.kill()

    def rest(self) -> list[str]:
        """Every line seen so far plus whatever is still queued."""
        while True:
            try:
                self.seen.append(self.lines.get_nowait())
            except queue.Empty:
                return self.seen


async def operator_link(account: str, uid: str, *, cwd: Path, env: dict[str, str]) -> None:
    """`omi-bridge link ACCOUNT UID` (verified) on the database of `env`, before a serve starts on it."""
    linked = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "bot", "link", account, uid],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=DEADLINE * 3,
    )  # fmt: skip
    assert linked.returncode == 0, linked.stderr
