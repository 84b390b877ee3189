"""End-to-end throughput: N Telegram messages, as bursts of 1–5 from M users, through `omi-bridge serve` (webhook
mode) into the sandbox (rate limits off), with Omi answering at once and after 2 s. Reports intake rate,
delivery rate in conversations/s and messages/s, the bridge's peak RSS, and how they grow with N; at the end the
sandbox is read back ("in Omi", "lost", "duplicated": every message must be in Omi exactly once). The bridge's
database: an SQLite file, or a fresh schema of a PostgreSQL database per run.

    python bench/throughput.py [--engine sqlite|postgresql] [--sizes 1000,5000,20000] [--slow-sizes 1000,5000]
                               [--users 200] [--json FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import re
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import aiohttp
import httpx
from common import (  # type: ignore[import-not-found]
    POSTGRES,
    TELEGRAM_SECRET,
    BenchDatabase,
    add_engine_arguments,
    free_port,
    link_users,
    read_back,
    record,
    serve_env,
    start_fakes,
    start_serve,
    table,
)

WINDOW = 0.5  # BATCH_WINDOW_SECONDS for these runs: rounds of bursts need the quiet time between them
CONCURRENCY = 32


@dataclass
class Run:
    n: int
    latency: float
    intake_rate: float  # messages acknowledged per second of sending (the pauses between rounds left out)
    conversations: int
    delivered: int
    total_seconds: float  # first message sent → last conversation in Omi
    backlog: int  # conversations delivered after the last message was acknowledged (not yet in Omi then)
    drain_seconds: float  # ... and how long they took
    rss_mb: float
    in_omi: int = 0  # conversations the sandbox holds at the end (more than `conversations`: bursts split)
    lost: int = 0  # messages in no conversation in Omi
    duplicated: int = 0  # messages held more than once

    @property
    def drain_rate(self) -> float | None:
        """Delivery capacity: conversations/s over the backlog left after intake (None: delivery kept up).
        Counts what was delivered while draining, so a run cut short by `--max-wait` does not overstate it."""
        if self.backlog < 64 or not self.drain_seconds:
            return None
        return self.backlog / self.drain_seconds

    @property
    def messages_per_conversation(self) -> float:
        return self.n / self.conversations


def plan(n: int, users: int, rng: random.Random) -> list[list[tuple[int, int]]]:
    """Rounds of bursts: in each round every user sends one burst of 1–5 messages (user, count)."""
    rounds: list[list[tuple[int, int]]] = []
    left = n
    while left > 0:
        current = []
        for user in range(users):
            if left <= 0:
                break
            size = min(left, rng.randint(1, 5))
            current.append((user, size))
            left -= size
        rounds.append(current)
    return rounds


def update(update_id: int, user: int, n: int, forward: bool) -> str:
    message = {
        "message_id": update_id,
        "date": 1764300000 + update_id,
        "chat": {"id": 1000 + user, "type": "private"},
        "from": {"id": 1000 + user, "is_bot": False, "first_name": "User", "last_name": str(user)},
        "text": f"message {n} from user {user}: the quarterly plan needs another review before friday",
    }
    if forward:
        message["forward_origin"] = {
            "type": "user",
            "date": 1764200000 + update_id,
            "sender_user": {"id": 77, "is_bot": False, "first_name": "Grace", "last_name": "Hopper"},
        }
    return json.dumps({"update_id": update_id, "message": message})


async def post_rounds(
    rounds: list[list[tuple[int, int]]], target: Callable[[int, int], str], rng: random.Random
) -> float:
    """Send every round (its bursts concurrently, CONCURRENCY requests at a time), then the quiet window.
    `target(user, k)`: the webhook URL for the k-th message of the user's burst (bench/instances.py spreads them).
    Returns the seconds spent sending (quiet windows excluded)."""
    headers = {"Content-Type": "application/json", "X-Telegram-Bot-Api-Secret-Token": TELEGRAM_SECRET}
    update_id = 0
    sending = 0.0
    limit = asyncio.Semaphore(CONCURRENCY)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=CONCURRENCY)) as session:

        async def burst(user: int, size: int, first: int) -> None:
            forward = rng.random() < 0.5
            async with limit:  # one user's burst back to back, like a client forwarding messages
                for k in range(size):
                    body = update(first + k, user, first + k, forward)
                    async with session.post(target(user, k), data=body, headers=headers) as response:
                        if response.status != 200:
                            raise RuntimeError(f"webhook answered {response.status}")

        for current in rounds:
            started = time.perf_counter()
            jobs = []
            for user, size in current:
                jobs.append(burst(user, size, update_id + 1))
                update_id += size
            await asyncio.gather(*jobs)
            sending += time.perf_counter() - started
            await asyncio.sleep(WINDOW * 1.5)  # pacing the load: every burst closes before the next round
    return sending


def delivered(metrics: str) -> int:
    match = re.search(r'omi_bridge_items_delivered_total\{kind="conversation"\} ([0-9.e+]+)', metrics)
    return int(float(match.group(1))) if match else 0


def queue_depth(metrics: str) -> int:
    match = re.search(r"^omi_bridge_queue_depth ([0-9.e+]+)", metrics, re.MULTILINE)
    return int(float(match.group(1))) if match else 0


def run(n: int, latency: float, users: int, max_wait: float, engine: str = "sqlite", postgres: str = POSTGRES) -> Run:
    rng = random.Random(n)
    rounds = plan(n, users, rng)
    conversations = sum(len(r) for r in rounds)
    work = Path(tempfile.mkdtemp(prefix="omi-bridge-throughput-"))
    fakes_proc, fakes = start_fakes(omi_latency=latency)
    try:
        with httpx.Client(base_url=fakes["omi_url"]) as admin:
            for user in range(users):
                admin.post(f"/_sandbox/apps/{fakes['app_id']}/enable", json={"uid": f"bench-uid-{user}"})
        with BenchDatabase(engine, work, postgres) as database:
            result = _run(n, latency, users, max_wait, rounds, conversations, work, fakes, database.url, rng)
        # Every message must be in Omi exactly once; more conversations than bursts means bursts were split
        # (a gap over the window between two of a burst's messages: a loaded machine).
        result.in_omi, result.lost, result.duplicated = read_back(fakes["omi_url"], users, n)
        return result
    finally:
        fakes_proc.stop()


def _run(
    n: int,
    latency: float,
    users: int,
    max_wait: float,
    rounds: list[list[tuple[int, int]]],
    conversations: int,
    work: Path,
    fakes: dict[str, str],
    db: str,
    rng: random.Random,
) -> Run:
    link_users(db, [(f"telegram:{1000 + user}", f"bench-uid-{user}") for user in range(users)])
    serve, url = start_serve(
        serve_env(fakes, db, free_port(), BATCH_WINDOW_SECONDS=str(WINDOW), DELIVERY_CONCURRENCY="32"), cwd=work
    )
    try:
        started = time.perf_counter()
        webhook = f"{url}/telegram/webhook"
        sending = asyncio.run(post_rounds(rounds, lambda _user, _k: webhook, rng))
        with httpx.Client(base_url=url, timeout=10) as client:
            intake_done = time.perf_counter()
            metrics = client.get("/metrics").text
            done = at_intake = delivered(metrics)
            # Done once every burst is in Omi and nothing waits: a burst split by a gap over the window (a loaded
            # machine) makes more conversations than bursts, and the last of them must be in Omi too.
            while time.perf_counter() - started < max_wait:
                if done >= conversations and queue_depth(metrics) == 0:
                    break
                time.sleep(0.1)  # polling /metrics from a benchmark script: nothing to wait on
                metrics = client.get("/metrics").text
                done = delivered(metrics)
        finished = time.perf_counter()
        rss = serve.peak_rss_mb()
    finally:
        serve.stop()
    return Run(
        n,
        latency,
        n / sending,
        conversations,
        done,
        finished - started,
        done - at_intake,
        finished - intake_done,
        rss,
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="1000,5000,20000", help="N with Omi answering at once")
    parser.add_argument("--slow-sizes", default="1000,5000", help="N with Omi taking 2 s per create")
    parser.add_argument("--users", type=int, default=200)
    parser.add_argument("--max-wait", type=float, default=240.0, help="stop waiting for deliveries after this")
    add_engine_arguments(parser)
    args = parser.parse_args()
    engine = BenchDatabase(args.engine, Path(), args.postgres).describe()
    plans = [(int(n), 0.0) for n in args.sizes.split(",") if n]
    plans += [(int(n), 2.0) for n in args.slow_sizes.split(",") if n]
    runs = []
    for n, latency in plans:
        r = run(n, latency, args.users, args.max_wait, args.engine, args.postgres)
        runs.append(r)
        record(args.json, "throughput", args.engine, {**asdict(r), "drain_rate": r.drain_rate})
    rows = [
        [
            f"{r.n:,}",
            f"{r.latency:g} s",
            f"{r.intake_rate:,.0f}",
            f"{r.delivered:,}/{r.conversations:,}",
            f"{r.total_seconds:.1f}",
            f"{r.total_seconds / r.n * 1000:.2f}",
            f"{r.backlog:,}",
            "kept up" if r.drain_rate is None else f"{r.drain_rate:.1f}",
            "kept up" if r.drain_rate is None else f"{r.drain_rate * r.messages_per_conversation:.0f}",
            f"{r.rss_mb:.0f}",
            f"{r.in_omi:,}",
            r.lost,
            r.duplicated,
        ]
        for r in runs
    ]
    print(
        f"\nthroughput on {engine}: {args.users} users, bursts of 1–5, window {WINDOW} s,"
        f" delivery concurrency {CONCURRENCY}"
    )
    print(
        table(
            [
                "N",
                "Omi",
                "intake msg/s",
                "conversations",
                "total s",
                "ms/msg",
                "backlog at end of intake",
                "drain conv/s",
                "drain msg/s",
                "peak MB",
                "in Omi",
                "lost",
                "duplicated",
            ],
            rows,
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
