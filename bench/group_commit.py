"""What group commit buys: the store's own intake write (`Inbox.accept`, a Telegram-sized update with its two
dedupe keys) from C concurrent arrivals for a few seconds, with concurrent writes sharing commits (the bridge as it
is, at most `MAX_GROUP` = 256 per commit) and with every write a commit of its own (`MAX_GROUP` = 1), on SQLite and
on PostgreSQL. In process, on uvloop, no HTTP: the figure is the database path alone (one hop to the database
thread, the transaction, the commit), not what a webhook costs.

    python bench/group_commit.py [--engines sqlite,postgresql] [--concurrency 1,8,32,128] [--seconds 5] [--json FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import uvloop
from common import (  # type: ignore[import-not-found]
    ENGINES,
    POSTGRES,
    BenchDatabase,
    record,
    table,
)

import bot.store.database as database
from bot.clock import SystemClock
from bot.store import Arrival, Store

PAYLOAD = '{"update_id": %d, "message": {"message_id": %d, "chat": {"id": %d}, "text": "%s"}}'
TEXT = "We should move the launch review to Thursday and invite the design team. " * 4


async def measure(url: str, concurrency: int, seconds: float, max_group: int) -> dict[str, Any]:
    database.MAX_GROUP = max_group  # read by the writer at every group
    store = await Store.open(url, SystemClock())
    commits = 0
    commit = store.db._commit

    async def counted(group: Any) -> None:
        nonlocal commits
        commits += 1
        await commit(group)

    store.db._commit = counted  # type: ignore[method-assign]
    latencies: list[float] = []
    counter = 0
    deadline = time.perf_counter() + seconds

    async def arrivals() -> None:
        nonlocal counter
        while time.perf_counter() < deadline:
            counter += 1
            n, chat = counter, 1000 + counter % 200
            arrival = Arrival(
                "telegram", "update", PAYLOAD % (n, n, chat, TEXT), (f"tg:update:{n}", f"tg:msg:{chat}:{n}")
            )
            started = time.perf_counter()
            accepted = await store.inbox.accept(arrival)
            latencies.append(time.perf_counter() - started)
            assert not accepted.duplicate

    try:
        started = time.perf_counter()
        await asyncio.gather(*(arrivals() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    finally:
        await store.close()
        database.MAX_GROUP = 256
    latencies.sort()
    pick = lambda q: latencies[min(len(latencies) - 1, int(q * len(latencies)))] * 1000  # noqa: E731
    return {
        "concurrency": concurrency,
        "max_group": max_group,
        "accepts": len(latencies),
        "rate": len(latencies) / elapsed,
        "commits": commits,
        "per_commit": len(latencies) / commits if commits else 0.0,
        "p50_ms": pick(0.5),
        "p99_ms": pick(0.99),
    }


def one(engine: str, postgres: str, concurrency: int, seconds: float, max_group: int) -> dict[str, Any]:
    with (
        tempfile.TemporaryDirectory(prefix="omi-bridge-group-") as work,
        BenchDatabase(engine, Path(work), postgres) as db,
    ):
        return uvloop.run(measure(db.url, concurrency, seconds, max_group))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--engines",
        "--engine",
        default="sqlite,postgresql",
        help="comma-separated, measured in turn at each concurrency (interleaved; default %(default)s)",
    )
    parser.add_argument("--concurrency", default="1,8,32,128", help="concurrent arrivals, comma-separated")
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--postgres", default=POSTGRES, metavar="URL", help="default %(default)s")
    parser.add_argument("--json", metavar="FILE", help="also append every figure to FILE as JSON lines")
    args = parser.parse_args()
    engines = args.engines.split(",")
    if unknown := [e for e in engines if e not in ENGINES]:
        parser.error(f"unknown engine {unknown[0]!r} (choose from {', '.join(ENGINES)})")
    described = {engine: BenchDatabase(engine, Path(), args.postgres).describe() for engine in engines}
    rows: dict[str, list[list[object]]] = {engine: [] for engine in engines}
    # Engines interleaved at each concurrency, so that the machine's drift over the run hits both alike.
    for concurrency in (int(c) for c in args.concurrency.split(",")):
        for engine in engines:
            shared = one(engine, args.postgres, concurrency, args.seconds, 256)
            alone = one(engine, args.postgres, concurrency, args.seconds, 1)
            for figures in (shared, alone):
                record(args.json, "group_commit", engine, figures)
            rows[engine].append(
                [
                    described[engine],
                    concurrency,
                    f"{shared['rate']:,.0f}",
                    f"{shared['per_commit']:.1f}",
                    f"{shared['p50_ms']:.2f} / {shared['p99_ms']:.2f}",
                    f"{alone['rate']:,.0f}",
                    f"{alone['p50_ms']:.2f} / {alone['p99_ms']:.2f}",
                    f"{shared['rate'] / alone['rate']:.2f}×",
                ]
            )
    print(f"\ngroup commit: Inbox.accept from C concurrent arrivals, {args.seconds:g} s each, uvloop, in process")
    headers = ["engine", "C", "shared acc/s", "writes/commit", "p50/p99 ms", "one-per-commit acc/s", "p50/p99 ms"]
    print(table([*headers, "gain"], [row for engine in engines for row in rows[engine]]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
