"""Both engines in one table: the JSON lines that `ack_latency.py`, `throughput.py` and `group_commit.py` append
with `--json FILE`, as median (min–max) over the runs per engine, and PostgreSQL's median over SQLite's.

    python bench/summary.py FILE [FILE ...]        # markdown, for BENCHMARKS.md
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from collections.abc import Callable
from typing import Any

Record = dict[str, Any]
Pick = Callable[[Record], float | None]

TELEGRAM = "bridge: Telegram webhook"
SLACK = "bridge: Slack /omi remember"


def ack(name: str, field: str, max_group: int | None = None) -> Pick:
    def pick(r: Record) -> float | None:
        if r["script"] != "ack_latency" or r.get("max_group") != max_group or r.get("switch_interval") is not None:
            return None
        value = r.get(name)
        return value[field] if isinstance(value, dict) else None

    return pick


def durable_floor(r: Record) -> float | None:
    value = r.get(r["engine"]) if r["script"] == "ack_latency" else None
    return value["rate"] if isinstance(value, dict) else None


def ack_rss(r: Record) -> float | None:
    return r["rss_mb"] if r["script"] == "ack_latency" and r.get("max_group") is None else None


def throughput(n: int, latency: float, field: str) -> Pick:
    def pick(r: Record) -> float | None:
        if r["script"] != "throughput" or r["n"] != n or r["latency"] != latency:
            return None
        return r[field]

    return pick


def group(concurrency: int, max_group: int, field: str = "rate") -> Pick:
    def pick(r: Record) -> float | None:
        if r["script"] != "group_commit" or r["concurrency"] != concurrency or r["max_group"] != max_group:
            return None
        return r[field]

    return pick


FIGURES: list[tuple[str, Pick, str]] = [
    ("Telegram webhook, acks/s (§1)", ack(TELEGRAM, "rate"), "{:,.0f}"),
    ("Telegram webhook, p50 ms", ack(TELEGRAM, "p50_ms"), "{:.1f}"),
    ("Telegram webhook, p99 ms", ack(TELEGRAM, "p99_ms"), "{:.1f}"),
    ("Slack `/omi remember`, acks/s", ack(SLACK, "rate"), "{:,.0f}"),
    ("Slack `/omi remember`, p99 ms", ack(SLACK, "p99_ms"), "{:.1f}"),
    ("naive durable floor (1 insert + commit per request), acks/s", durable_floor, "{:,.0f}"),
    (
        "bare aiohttp route on uvloop, acks/s (no database: the machine's own spread)",
        ack("bare (uvloop)", "rate"),
        "{:,.0f}",
    ),
    ("Telegram webhook, one commit per write (`--max-group 1`), acks/s", ack(TELEGRAM, "rate", 1), "{:,.0f}"),
    ("Telegram webhook, one commit per write, p99 ms", ack(TELEGRAM, "p99_ms", 1), "{:.1f}"),
    ("peak RSS of `serve` in §1, MB", ack_rss, "{:.0f}"),
    *[
        (f"drain conv/s, Omi 0 s, N = {n:,} (§2)", throughput(n, 0.0, "drain_rate"), "{:.1f}")
        for n in (1000, 5000, 20000)
    ],
    *[(f"drain conv/s, Omi 2 s, N = {n:,}", throughput(n, 2.0, "drain_rate"), "{:.1f}") for n in (1000, 5000)],
    ("intake msg/s (client-paced), Omi 0 s, N = 5,000", throughput(5000, 0.0, "intake_rate"), "{:,.0f}"),
    ("peak RSS, N = 20,000 at Omi 0 s, MB", throughput(20000, 0.0, "rss_mb"), "{:.0f}"),
    *[
        (f"`Inbox.accept`, {c} concurrent, commits shared, accepts/s", group(c, 256), "{:,.0f}")
        for c in (1, 8, 32, 128)
    ],
    *[
        (f"`Inbox.accept`, {c} concurrent, one commit per write, accepts/s", group(c, 1), "{:,.0f}")
        for c in (1, 8, 32, 128)
    ],
]


def cell(values: list[float], fmt: str) -> str:
    if not values:
        return "–"
    median = statistics.median(values)
    if len(values) == 1:
        return fmt.format(median)
    return f"{fmt.format(median)} ({fmt.format(min(values))}–{fmt.format(max(values))})"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("files", nargs="+")
    args = parser.parse_args()
    records = [json.loads(line) for path in args.files for line in open(path) if line.strip()]
    print("| figure | SQLite | PostgreSQL | PostgreSQL ÷ SQLite | runs |")
    print("|---|---|---|---|---|")
    for label, pick, fmt in FIGURES:
        values: dict[str, list[float]] = {"sqlite": [], "postgresql": []}
        for record in records:
            value = pick(record)
            if value is not None and record["engine"] in values:
                values[record["engine"]].append(value)
        if not values["sqlite"] and not values["postgresql"]:
            continue
        sqlite, postgres = values["sqlite"], values["postgresql"]
        both = sqlite and postgres and statistics.median(sqlite)
        ratio = f"{statistics.median(postgres) / statistics.median(sqlite):.2f}×" if both else "–"
        runs = "/".join(str(len(v)) for v in (sqlite, postgres))
        print(f"| {label} | {cell(sqlite, fmt)} | {cell(postgres, fmt)} | {ratio} | {runs} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
