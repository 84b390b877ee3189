"""What the benchmark scripts share: processes with their output lines, the fakes, `omi-bridge serve`, the
database a run uses (SQLite file or a fresh PostgreSQL schema), tables, results as JSON lines."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import psycopg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bot.clock import SystemClock  # noqa: E402
from bot.store import Store  # noqa: E402
from tests.slack.fake_slack import BOT_TOKEN as SLACK_BOT_TOKEN  # noqa: E402
from tests.slack.workspace import SIGNING_SECRET as SLACK_SIGNING_SECRET  # noqa: E402

TELEGRAM_SECRET = "bench-webhook-secret"  # noqa: S105 - a fake's, for benchmarks
#: The PostgreSQL database `--engine postgresql` runs in (a fresh schema of it per run): the machine's `test`.
POSTGRES = os.environ.get("OMI_BRIDGE_BENCH_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")
ENGINES = ("sqlite", "postgresql")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Proc:
    """A child process whose output lines are collected as they come."""

    def __init__(self, args: list[str], env: dict[str, str] | None = None, cwd: Path | None = None) -> None:
        self.popen = subprocess.Popen(  # noqa: S603
            args,
            env=env,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self.log: list[str] = []
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        assert self.popen.stdout is not None
        for line in self.popen.stdout:
            self.lines.put(line.rstrip("\n"))

    def wait_for(self, pattern: str, timeout: float = 60.0) -> re.Match[str]:
        regex = re.compile(pattern)
        while True:
            try:
                line = self.lines.get(timeout=timeout)
            except queue.Empty:
                raise RuntimeError(f"no line matching {pattern!r}; last lines: {self.log[-10:]}") from None
            self.log.append(line)
            if match := regex.search(line):
                return match

    @property
    def pid(self) -> int:
        return self.popen.pid

    def peak_rss_mb(self) -> float:
        """The process's high-water resident memory (VmHWM), in MB."""
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        return 0.0

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> int:
        if self.popen.poll() is None:
            self.popen.send_signal(sig)
        try:
            return self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            return self.popen.wait()


def start_fakes(omi_latency: float = 0.0, omi_db: str | None = None) -> tuple[Proc, dict[str, str]]:
    args = [sys.executable, str(ROOT / "bench" / "fakes.py"), "--omi-latency", str(omi_latency)]
    if omi_db:
        args += ["--omi-db", omi_db]
    fakes = Proc(args, env={**os.environ, "PYTHONPATH": str(ROOT)})
    info = json.loads(fakes.wait_for(r"^\{.*\}$").group(0))
    return fakes, info


def add_engine_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--engine", choices=ENGINES, default="sqlite", help="the bridge's database (default sqlite)")
    parser.add_argument(
        "--postgres",
        default=POSTGRES,
        metavar="URL",
        help="for --engine postgresql: the database each run gets a fresh schema of, dropped after"
        " (default $OMI_BRIDGE_BENCH_POSTGRES or %(default)s)",
    )
    parser.add_argument("--json", metavar="FILE", help="also append every figure to FILE as JSON lines")


class BenchDatabase:
    """The database of one run: a file in the run's folder (SQLite) or a schema of its own in the PostgreSQL
    database (`search_path` in the URL, as the test-suite does), dropped when the run ends."""

    def __init__(self, engine: str, work: Path, postgres: str = POSTGRES) -> None:
        self.engine = engine
        self.postgres = postgres
        self.schema = f"bench_{uuid.uuid4().hex[:12]}"
        if engine == "sqlite":
            self.url = f"sqlite:///{work / 'bridge.db'}"
        else:
            options = quote(f"-csearch_path={self.schema}")
            self.url = f"{postgres}{'&' if '?' in postgres else '?'}options={options}"

    def __enter__(self) -> BenchDatabase:
        if self.engine == "postgresql":
            with psycopg.connect(self.postgres, autocommit=True) as conn:
                conn.execute(f"CREATE SCHEMA {self.schema}")
        return self

    def __exit__(self, *exc: object) -> None:
        if self.engine == "postgresql":
            with psycopg.connect(self.postgres, autocommit=True) as conn:
                conn.execute(f"DROP SCHEMA IF EXISTS {self.schema} CASCADE")

    def describe(self) -> str:
        """The engine as a header line says it, e.g. `PostgreSQL 15.20` or `SQLite 3.40.1 (WAL, synchronous=FULL)`."""
        if self.engine == "sqlite":
            import sqlite3

            return f"SQLite {sqlite3.sqlite_version} (WAL, synchronous=FULL)"
        with psycopg.connect(self.postgres) as conn:
            version = conn.execute("SHOW server_version").fetchone()[0].split()[0]  # type: ignore[index]
            sync = conn.execute("SHOW synchronous_commit").fetchone()[0]  # type: ignore[index]
        return f"PostgreSQL {version} (synchronous_commit={sync}, one connection)"


def record(path: str | None, script: str, engine: str, figures: dict[str, Any]) -> None:
    """One JSON line of figures for `bench/summary.py` (nothing without `--json`)."""
    if path:
        with open(path, "a") as out:
            out.write(json.dumps({"script": script, "engine": engine, **figures}) + "\n")


def serve_env(fakes: dict[str, str], db: Path | str, port: int, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OMI_", "TELEGRAM_", "SLACK_"))}
    env.update(
        PYTHONPATH=str(ROOT),
        OMI_API_BASE_URL=fakes["omi_url"],
        OMI_APP_ID=fakes["app_id"],
        OMI_API_KEY=fakes["api_key"],
        TELEGRAM_BOT_TOKEN=fakes["telegram_token"],
        TELEGRAM_API_BASE_URL=fakes["telegram_url"],
        TELEGRAM_WEBHOOK_URL=f"http://127.0.0.1:{port}/telegram/webhook",
        TELEGRAM_WEBHOOK_SECRET=TELEGRAM_SECRET,
        SLACK_BOT_TOKEN=SLACK_BOT_TOKEN,
        SLACK_SIGNING_SECRET=SLACK_SIGNING_SECRET,
        SLACK_API_URL=fakes["slack_url"],
        DATABASE_URL=db if isinstance(db, str) else f"sqlite:///{db}",
        HOST="127.0.0.1",
        PORT=str(port),
        LOG_LEVEL="WARNING",
        LINK_PREVIEWS="off",  # the bench's links are made up: nothing is fetched
    )
    env.update(extra)
    return env


def start_serve(
    env: dict[str, str], cwd: Path, max_group: int | None = None, switch_interval: float | None = None
) -> tuple[Proc, str]:
    """`omi-bridge serve`; with `max_group` or `switch_interval`, through `bench/serve.py`, which caps the writes
    sharing a commit (1: one commit per write, the group commit off) or sets Python's GIL switch interval (and
    the collector's knobs, `BENCH_GC_*` in the environment: see bench/serve.py)."""
    knobs = any(key.startswith(("BENCH_GC_", "BENCH_LAG_")) for key in env)
    if max_group is None and switch_interval is None and not knobs:
        args = [sys.executable, "-m", "bot", "serve"]
    else:
        args = [sys.executable, str(ROOT / "bench" / "serve.py")]
        if max_group is not None:
            env = {**env, "BENCH_MAX_GROUP": str(max_group)}
        if switch_interval is not None:
            env = {**env, "BENCH_SWITCH_INTERVAL": str(switch_interval)}
    serve = Proc(args, env={**env, "LOG_LEVEL": "INFO"}, cwd=cwd)
    url = serve.wait_for(r"serving on (http://\S+)").group(1)
    return serve, url


async def _link(db: Path | str, accounts: list[tuple[str, str]]) -> None:
    store = await Store.open(str(db), SystemClock())
    try:

        def link(conn) -> None:
            for account, uid in accounts:
                store.links.set_verified(conn, account, uid)

        await store.db.write(link)
    finally:
        await store.close()


def link_users(db: Path | str, accounts: list[tuple[str, str]]) -> None:
    """Operator links (verified), written before the bridge starts."""
    asyncio.run(_link(db, accounts))


#: How bench/throughput.py's messages name themselves: `message {n} from user {user}: …`.
MESSAGE = re.compile(r"message (\d+) from user (\d+):")


def conversation_text(conversation: dict[str, Any]) -> str:
    """The text a sandbox conversation was made from: `external_data.text` (FastAPI flavor), else its transcript
    segments (API core)."""
    external = conversation.get("external_data") or {}
    if isinstance(external.get("text"), str):
        return external["text"]
    return "\n".join(str(segment.get("text", "")) for segment in conversation.get("transcript_segments") or [])


def read_back(omi_url: str, users: int, n: int) -> tuple[int, int, int]:
    """From the sandbox after a run of messages 1..n from users 0..users-1 (uids `bench-uid-{user}`):
    conversations held, messages in none of them (lost), and messages in more than one (duplicated)."""
    seen: dict[int, int] = {}
    conversations = 0
    with httpx.Client(base_url=omi_url, timeout=30) as admin:
        for user in range(users):
            held = admin.get("/_sandbox/conversations", params={"uid": f"bench-uid-{user}"}).json()["conversations"]
            conversations += len(held)
            for conversation in held:
                for number in {int(m.group(1)) for m in MESSAGE.finditer(conversation_text(conversation))}:
                    seen[number] = seen.get(number, 0) + 1
    lost = sum(1 for number in range(1, n + 1) if number not in seen)
    duplicated = sum(count - 1 for count in seen.values() if count > 1)
    return conversations, lost, duplicated


def table(headers: list[str], rows: list[list[object]]) -> str:
    cells = [[str(c) for c in row] for row in [headers, *rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = [" | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in cells]
    lines.insert(1, "-|-".join("-" * w for w in widths))
    return "\n".join(lines)
