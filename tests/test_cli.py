"""The command line (SPEC §2), run as `python -m bot` in a subprocess with a clean environment and working directory."""

from __future__ import annotations

import asyncio
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import pytest

from bot.omi.client import OmiClient
from bot.omi.models import NewConversation
from bot.sandbox import Sandbox
from bot.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
DEADLINE = 20.0
SANDBOX_NAMES = ("OMI_API_BASE_URL", "OMI_APP_ID", "OMI_API_KEY", "OMI_TEST_UID")
FINDING = re.compile(r"^(OK|WARN|FAIL) [a-z_-]+: \S")


def clean_env(**extra: str) -> dict[str, str]:
    """The test's environment without any bridge setting, able to import `bot` from the repository."""
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("OMI_", "TELEGRAM_", "SLACK_")) and name not in Settings.model_fields
    }
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env.update(extra)
    return env


def command(*args: str) -> list[str]:
    return [sys.executable, "-m", "bot", *args]


@dataclass
class Result:
    code: int
    out: str
    err: str

    @property
    def out_lines(self) -> list[str]:
        return self.out.splitlines()

    @property
    def err_lines(self) -> list[str]:
        return self.err.splitlines()


def run(*args: str, cwd: Path, env: dict[str, str] | None = None) -> Result:
    done = subprocess.run(  # noqa: S603 - our own interpreter and module
        command(*args), cwd=cwd, env=env or clean_env(), capture_output=True, text=True, timeout=DEADLINE
    )
    return Result(done.returncode, done.stdout, done.stderr)


def run_all(*commands: tuple[str, ...], cwd: Path, env: dict[str, str] | None = None) -> list[Result]:
    """Several commands at once (each is an interpreter start), results in order."""
    processes = [
        subprocess.Popen(  # noqa: S603
            command(*args), cwd=cwd, env=env or clean_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for args in commands
    ]
    results = []
    for process in processes:
        out, err = process.communicate(timeout=DEADLINE)
        results.append(Result(process.returncode, out, err))
    return results


async def arun(*args: str, cwd: Path, env: dict[str, str]) -> Result:
    """A command run without blocking the event loop (an in-process sandbox must keep answering)."""
    process = await asyncio.create_subprocess_exec(
        *command(*args), cwd=cwd, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    try:
        out, err = await asyncio.wait_for(process.communicate(), DEADLINE)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise
    assert process.returncode is not None
    return Result(process.returncode, out.decode(), err.decode())


# --- help ---------------------------------------------------------------------------------------------------------

HELP_MENTIONS: dict[str, tuple[str, ...]] = {
    "": ("run", "serve", "console", "sandbox", "link", "unlink", "doctor", "slack-manifest", "migrate-db", "--help"),
    "run": ("usage: omi-bridge run", "--help"),
    "serve": ("usage: omi-bridge serve", "--help"),
    "console": ("usage: omi-bridge console", "--help"),
    "sandbox": (
        "--host",
        "--port",
        "--db",
        "--conversations-per-hour",
        "--memories-per-hour",
        "--notifications-per-hour",
        "--flavor",
        "--help",
    ),
    "link": ("PLATFORM:USER_ID", "UID", "--help"),
    "unlink": ("PLATFORM:USER_ID", "--help"),
    "doctor": ("usage: omi-bridge doctor", "--help"),
    "slack-manifest": ("usage: omi-bridge slack-manifest", "--help"),
    "migrate-db": ("usage: omi-bridge migrate-db", "--to", "--help"),
}


def test_help_of_the_program_and_every_command(tmp_path: Path) -> None:
    names = list(HELP_MENTIONS)
    results = run_all(*[(name, "--help") if name else ("--help",) for name in names], cwd=tmp_path)
    for name, result in zip(names, results, strict=True):
        assert result.code == 0, (name, result.err)
        assert result.err == ""
        for mention in HELP_MENTIONS[name]:
            assert mention in result.out, (name, mention)
    assert list(tmp_path.iterdir()) == []  # --help touches nothing (no database created)


def test_unknown_command_is_a_usage_error(tmp_path: Path) -> None:
    result = run("frobnicate", cwd=tmp_path)
    assert result.code == 2
    assert "Traceback" not in result.err
    assert "frobnicate" in result.err


# --- invalid settings -----------------------------------------------------------------------------------------------


def test_invalid_setting_is_one_line_naming_it_and_exit_2(tmp_path: Path) -> None:
    (tmp_path / "from-file").mkdir()
    (tmp_path / "from-file" / ".env").write_text("PORT=abc\n", encoding="utf-8")
    env = clean_env(PORT="abc")
    results = [
        *run_all(("doctor",), (), ("link", "telegram:1", "uid-1"), cwd=tmp_path, env=env),
        run("doctor", cwd=tmp_path / "from-file"),
    ]
    for result in results:
        assert result.code == 2, result
        assert len(result.err_lines) == 1, result.err
        assert "PORT" in result.err
        assert "Traceback" not in result.err
        assert result.out == ""


def test_secret_in_an_invalid_setting_is_not_printed(tmp_path: Path) -> None:
    key = "sk_" + "ab" * 16
    result = run("doctor", cwd=tmp_path, env=clean_env(OMI_API_KEY=key))  # the app id is missing
    assert result.code == 2
    assert len(result.err_lines) == 1
    assert "OMI_APP_ID" in result.err
    assert key not in result.err + result.out


# --- sandbox ------------------------------------------------------------------------------------------------------


class LineReader:
    """Reads a process's stdout on a thread, so a test can wait for a line with a deadline."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        assert process.stdout is not None
        self._lines: queue.Queue[str | None] = queue.Queue()
        self._thread = threading.Thread(target=self._pump, args=(process.stdout,), daemon=True)
        self._thread.start()

    def _pump(self, stream: IO[str]) -> None:
        for line in stream:
            self._lines.put(line.rstrip("\n"))
        self._lines.put(None)

    def settings(self, deadline: float = DEADLINE) -> dict[str, str]:
        """The `NAME=value` lines, once all four sandbox names arrived."""
        found: dict[str, str] = {}
        end = time.monotonic() + deadline
        while not set(SANDBOX_NAMES) <= set(found):
            line = self._lines.get(timeout=max(0.01, end - time.monotonic()))
            assert line is not None, f"stdout closed early; got {found}"
            if match := re.fullmatch(r"([A-Z_]+)=(.*)", line):
                found[match.group(1)] = match.group(2)
        return found


StartSandbox = Callable[..., tuple[subprocess.Popen[str], dict[str, str]]]


@pytest.fixture
def start_sandbox(tmp_path: Path) -> Iterator[StartSandbox]:
    processes: list[subprocess.Popen[str]] = []

    def start(*args: str) -> tuple[subprocess.Popen[str], dict[str, str]]:
        process = subprocess.Popen(  # noqa: S603
            command("sandbox", "--port", "0", *args),
            cwd=tmp_path,
            env=clean_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        processes.append(process)
        return process, LineReader(process).settings()

    yield start
    for process in processes:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=DEADLINE)
        for stream in (process.stdout, process.stderr):
            if stream is not None:
                stream.close()


def stop(process: subprocess.Popen[str]) -> int:
    process.send_signal(signal.SIGTERM)
    return process.wait(timeout=DEADLINE)


async def create_and_read(values: dict[str, str], key: str | None = None, text: str = "") -> list[str]:
    """Create one conversation with the printed settings and return every text read back."""
    text = text or "We planned the quarterly project review meeting for Friday."
    uid = values["OMI_TEST_UID"]
    async with OmiClient(
        values["OMI_API_BASE_URL"], values["OMI_APP_ID"], key or values["OMI_API_KEY"], read_timeout=5
    ) as client:
        await client.create_conversation(uid, NewConversation(text=text, text_source_spec="console"))
        return [c.external_text or "" for c in await client.read_conversations(uid)]


async def test_sandbox_prints_working_settings_and_stops_on_sigterm(start_sandbox: StartSandbox) -> None:
    process, values = start_sandbox()

    assert re.fullmatch(r"http://127\.0\.0\.1:\d+", values["OMI_API_BASE_URL"])
    assert not values["OMI_API_BASE_URL"].endswith(":0"), "the printed URL must be the bound port"
    assert re.fullmatch(r"sk_[0-9a-f]{32}", values["OMI_API_KEY"])
    assert values["OMI_APP_ID"]
    assert values["OMI_TEST_UID"]

    texts = await create_and_read(values)
    assert texts == ["We planned the quarterly project review meeting for Friday."]

    assert stop(process) == 0
    assert process.stderr is not None
    assert "Traceback" not in process.stderr.read()


async def test_sandbox_db_keeps_app_and_uid_and_mints_a_new_key(start_sandbox: StartSandbox, tmp_path: Path) -> None:
    db = str(tmp_path / "sandbox.db")
    first_process, first = start_sandbox("--db", db)
    assert await create_and_read(first, text="First run notes about the project meeting.")
    assert stop(first_process) == 0

    second_process, second = start_sandbox("--db", db)
    assert (second["OMI_APP_ID"], second["OMI_TEST_UID"]) == (first["OMI_APP_ID"], first["OMI_TEST_UID"])
    assert second["OMI_API_KEY"] != first["OMI_API_KEY"]
    assert re.fullmatch(r"sk_[0-9a-f]{32}", second["OMI_API_KEY"])
    # State persisted, and the old key keeps working.
    texts = await create_and_read(second, key=first["OMI_API_KEY"], text="Second run notes about the budget review.")
    assert sorted(texts) == ["First run notes about the project meeting.", "Second run notes about the budget review."]
    assert stop(second_process) == 0


# --- doctor -------------------------------------------------------------------------------------------------------


async def test_doctor_against_a_sandbox(tmp_path: Path) -> None:
    sandbox = Sandbox(":memory:")
    base_url = await sandbox.start("127.0.0.1", 0)
    try:
        app = sandbox.create_app(name="doctor")
        omi = {"OMI_API_BASE_URL": base_url, "OMI_APP_ID": app.app_id}
        database = f"sqlite:///{tmp_path / 'b.db'}"
        (tmp_path / "a-file").write_text("", encoding="utf-8")
        good, bad, unset, broken_db = await asyncio.gather(
            arun("doctor", cwd=tmp_path, env=clean_env(**omi, OMI_API_KEY=app.api_key, DATABASE_URL=database)),
            arun("doctor", cwd=tmp_path, env=clean_env(**omi, OMI_API_KEY="sk_" + "0" * 32, DATABASE_URL=database)),
            arun("doctor", cwd=tmp_path, env=clean_env(DATABASE_URL=database)),
            arun("doctor", cwd=tmp_path, env=clean_env(DATABASE_URL=f"sqlite:///{tmp_path / 'a-file' / 'b.db'}")),
        )
        requests = sandbox.requests()
    finally:
        await sandbox.stop()
        sandbox.close()

    for result in (good, bad, unset, broken_db):
        assert result.out_lines, result
        assert all(FINDING.match(line) for line in result.out_lines), result.out
        assert "Traceback" not in result.err
        assert app.api_key not in result.out + result.err

    assert good.code == 0, good
    assert any(line.startswith("OK omi: key accepted") for line in good.out_lines), good.out
    assert any(line.startswith("OK database: ") for line in good.out_lines), good.out
    assert any(line.startswith("WARN public_url: ") for line in good.out_lines), good.out

    assert bad.code == 1, bad
    assert any(line.startswith("FAIL omi: ") and "→" in line for line in bad.out_lines), bad.out
    assert any(line.startswith("OK database: ") for line in bad.out_lines), bad.out

    assert unset.code == 0, unset
    assert any(line.startswith("WARN omi: ") for line in unset.out_lines), unset.out
    assert not any(line.startswith("FAIL") for line in unset.out_lines)

    assert broken_db.code == 1, broken_db
    assert any(line.startswith("FAIL database: ") for line in broken_db.out_lines), broken_db.out

    # Doctor probes with GETs only: a POST would count toward the user's rate limits.
    assert len(requests) == 2
    assert {(r["method"], r["route"]) for r in requests} == {("GET", "read_memories")}


# --- link / unlink ------------------------------------------------------------------------------------------------


def test_link_and_unlink(tmp_path: Path) -> None:
    env = clean_env(DATABASE_URL=f"sqlite:///{tmp_path / 'b.db'}")
    linked, nonsense, empty_uid = run_all(
        ("link", "telegram:42", "uid-1"), ("link", "nonsense", "uid"), ("link", "slack:U1", " "), cwd=tmp_path, env=env
    )
    assert linked.code == 0, linked
    assert len(linked.out_lines) == 1
    assert "telegram:42" in linked.out and "uid-1" in linked.out

    assert nonsense.code == 2, nonsense
    assert nonsense.out == ""
    assert len(nonsense.err_lines) == 1 and "nonsense" in nonsense.err
    assert empty_uid.code == 2, empty_uid

    unlinked = run("unlink", "telegram:42", cwd=tmp_path, env=env)
    assert unlinked.code == 0, unlinked
    assert len(unlinked.out_lines) == 1
    assert "telegram:42" in unlinked.out

    again, unknown = run_all(("unlink", "telegram:42"), ("unlink", "telegram:43"), cwd=tmp_path, env=env)
    for result, account in ((again, "telegram:42"), (unknown, "telegram:43")):
        assert result.code == 1, result
        assert len(result.out_lines) == 1
        assert account in result.out
        assert "Traceback" not in result.err
    assert (tmp_path / "b.db").exists()
