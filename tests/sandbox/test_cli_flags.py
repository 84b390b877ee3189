"""`omi-bridge sandbox --notifications-per-hour N --flavor fastapi|api-core` (SPEC §2), run as a real process."""

from __future__ import annotations

import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[2]
DEADLINE = 20.0
NAMES = ("OMI_API_BASE_URL", "OMI_APP_ID", "OMI_API_KEY", "OMI_TEST_UID")


def env() -> dict[str, str]:
    clean = {name: value for name, value in os.environ.items() if not name.startswith(("OMI_", "TELEGRAM_", "SLACK_"))}
    clean["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), clean.get("PYTHONPATH")]))
    return clean


def sandbox_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "bot", "sandbox", *args]


class Settings:
    """Reads the printed `NAME=value` lines of a running sandbox on a thread, with a deadline."""

    def __init__(self, stream: IO[str]) -> None:
        self._lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._pump, args=(stream,), daemon=True).start()

    def _pump(self, stream: IO[str]) -> None:
        for line in stream:
            self._lines.put(line.rstrip("\n"))
        self._lines.put(None)

    def read(self) -> tuple[str, dict[str, str]]:
        """(the banner line, the settings)."""
        found: dict[str, str] = {}
        banner = ""
        end = time.monotonic() + DEADLINE
        while not set(NAMES) <= set(found):
            line = self._lines.get(timeout=max(0.01, end - time.monotonic()))
            assert line is not None, f"stdout closed early; got {found}"
            if match := re.fullmatch(r"([A-Z_]+)=(.*)", line):
                found[match.group(1)] = match.group(2)
            elif line.startswith("#"):
                banner = line
        return banner, found


@pytest.fixture
def sandbox_process(tmp_path: Path) -> Iterator[list[subprocess.Popen[str]]]:
    processes: list[subprocess.Popen[str]] = []
    yield processes
    for process in processes:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=DEADLINE)
        for stream in (process.stdout, process.stderr):
            if stream is not None:
                stream.close()


def test_help_shows_the_new_flags(tmp_path: Path) -> None:
    done = subprocess.run(  # noqa: S603 - our own interpreter and module
        sandbox_command("--help"), cwd=tmp_path, env=env(), capture_output=True, text=True, timeout=DEADLINE
    )
    assert done.returncode == 0, done.stderr
    for mention in ("--notifications-per-hour", "default 9", "--flavor", "fastapi", "api-core"):
        assert mention in done.stdout, mention


@pytest.mark.parametrize(
    ("args", "complaint"),
    [
        (("--notifications-per-hour", "-1"), "--notifications-per-hour: must be 0 (off) or more"),
        (("--conversations-per-hour", "ten"), "--conversations-per-hour: not a whole number"),
        (("--flavor", "django"), "--flavor: invalid choice: 'django'"),
    ],
)
def test_bad_values_are_one_line_and_exit_2(tmp_path: Path, args: tuple[str, ...], complaint: str) -> None:
    done = subprocess.run(  # noqa: S603
        sandbox_command(*args), cwd=tmp_path, env=env(), capture_output=True, text=True, timeout=DEADLINE
    )
    assert done.returncode == 2
    assert complaint in done.stderr and len(done.stderr.splitlines()) == 1, done.stderr
    assert "Traceback" not in done.stderr


def start(processes: list[subprocess.Popen[str]], cwd: Path, *args: str) -> tuple[str, dict[str, str]]:
    process = subprocess.Popen(  # noqa: S603
        sandbox_command("--port", "0", *args),
        cwd=cwd,
        env=env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    processes.append(process)
    assert process.stdout is not None
    return Settings(process.stdout).read()


async def test_api_core_flavor_with_a_notification_limit(
    sandbox_process: list[subprocess.Popen[str]], tmp_path: Path
) -> None:
    banner, values = start(sandbox_process, tmp_path, "--flavor", "api-core", "--notifications-per-hour", "2")
    assert "(api-core)" in banner
    uid, prefix = values["OMI_TEST_UID"], f"/v2/integrations/{values['OMI_APP_ID']}"
    headers = {"Authorization": f"Bearer {values['OMI_API_KEY']}"}
    async with httpx.AsyncClient(base_url=values["OMI_API_BASE_URL"], headers=headers, trust_env=False) as http:
        created = await http.post(f"{prefix}/user/conversations", params={"uid": uid}, json={"text": "Hello there."})
        assert created.status_code == 200
        [conversation] = (await http.get(f"{prefix}/conversations", params={"uid": uid})).json()["conversations"]
        assert set(conversation["external_data"]) == {"integration"}
        statuses = [
            (await http.post(f"{prefix}/notification", params={"uid": uid, "message": "hi"})).status_code
            for _ in range(3)
        ]
        assert statuses == [200, 200, 429]
    sandbox_process[0].send_signal(signal.SIGTERM)
    assert sandbox_process[0].wait(timeout=DEADLINE) == 0


async def test_fastapi_is_the_default_with_nine_notifications(
    sandbox_process: list[subprocess.Popen[str]], tmp_path: Path
) -> None:
    banner, values = start(sandbox_process, tmp_path)
    assert "(fastapi)" in banner
    uid, prefix = values["OMI_TEST_UID"], f"/v2/integrations/{values['OMI_APP_ID']}"
    headers = {"Authorization": f"Bearer {values['OMI_API_KEY']}"}
    async with httpx.AsyncClient(base_url=values["OMI_API_BASE_URL"], headers=headers, trust_env=False) as http:
        first = await http.post(f"{prefix}/notification", params={"uid": uid, "message": "hi"})
        assert (first.status_code, first.headers["X-RateLimit-Remaining"]) == (200, "8")
    sandbox_process[0].send_signal(signal.SIGTERM)
    assert sandbox_process[0].wait(timeout=DEADLINE) == 0
