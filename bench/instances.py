"""Several instances on one PostgreSQL database (SPEC §13), in one run: for K = 1, 2, 3 `omi-bridge serve`
processes on a fresh schema (the fakes shared by all of them, Telegram in webhook mode, the bench users linked),

  (a) acknowledgement: Telegram webhook POSTs from one `wrk` per instance, all at once, the connections split
      between them (32 in all by default: 32 / 16+16 / 11+11+10); the rates are summed, latency is the worst
      instance's. No balancer in front: what is measured is the instances and the database, not a proxy.
      Omi takes 2 s per create, as in bench/ack_latency.py, so deliveries stay light during the load;
  (b) delivery: N Telegram messages as bursts of 1–5 from 200 users (bench/throughput.py's rounds, window
      0.5 s, Omi answering at once), the bursts spread over the instances; conversations delivered are summed
      from every instance's /metrics while it runs, and at the end the sandbox is read back: every message must
      be in Omi exactly once.

Each run has its own schema and its own fakes; the instances of a run start together (migrations run by the
first, under the lock). These are figures, not targets: on a 2-core machine K instances share the same two cores
with the load generator, the fakes and PostgreSQL, so more instances need not mean more capacity there. A burst's
messages are sent one after another, each after the previous one's 200: where acknowledging gets slow (a loaded
machine) two of them can arrive more than the window apart and make two conversations — "conversations" then
exceeds "bursts" while "lost" and "duplicated" stay 0.

Where a burst's messages go: by default every user's bursts go to one instance (user number modulo K), because
until sessions are shared in the database (SPEC §13: "a session's messages collect in the database and the
instance holding that session's lease closes its burst") a burst whose messages reach two instances can become two
conversations. `--spread` sends the messages round-robin per message instead — a burst's messages reach
different instances, as behind a balancer — which is the figure to take once sessions are shared; before that its
"conversations" column shows the splitting (more conversations than bursts).

    python bench/instances.py [--instances 1,2,3] [--seconds 10] [--connections 32] [--messages 2000]
                              [--users 200] [--spread] [--window 0.5] [--no-ack] [--no-delivery]
                              [--postgres URL] [--json FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import re
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from ack_latency import TELEGRAM_BODY  # type: ignore[import-not-found]
from common import (  # type: ignore[import-not-found]
    POSTGRES,
    TELEGRAM_SECRET,
    BenchDatabase,
    Proc,
    free_port,
    link_users,
    read_back,
    record,
    serve_env,
    start_fakes,
    table,
)
from loadgen import LoadResult, have_wrk, run_load  # type: ignore[import-not-found]
from throughput import WINDOW, plan, post_rounds  # type: ignore[import-not-found]

#: Requests in flight from the delivery run's client, across all instances (as bench/throughput.py).
CONCURRENCY = 32
HEADERS = {"Content-Type": "application/json", "X-Telegram-Bot-Api-Secret-Token": TELEGRAM_SECRET}


@dataclass
class Instances:
    """K `serve` processes on one database, each on a port of its own."""

    procs: list[Proc]
    urls: list[str]

    def stop(self, timeout: float = 30.0) -> None:
        """SIGTERM to all at once, then each gets its grace (and SIGKILL after `timeout`)."""
        for proc in self.procs:
            if proc.popen.poll() is None:
                proc.popen.terminate()
        for proc in self.procs:
            try:
                proc.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.popen.kill()
                proc.popen.wait()

    def peak_rss_mb(self) -> list[float]:
        return [proc.peak_rss_mb() for proc in self.procs]


def start_instances(k: int, fakes: dict[str, str], url: str, work: Path, **extra: str) -> Instances:
    """Start K instances together (they meet at the migration lock), wait until each serves."""
    procs, urls = [], []
    for n in range(k):
        port = free_port()
        env = serve_env(fakes, url, port, **extra)
        env["LOG_LEVEL"] = "INFO"  # for the "serving on" line
        folder = work / f"instance-{n + 1}"
        folder.mkdir()
        procs.append(Proc([sys.executable, "-m", "bot", "serve"], env=env, cwd=folder))
    try:
        for proc in procs:
            urls.append(proc.wait_for(r"serving on (http://\S+)", timeout=120).group(1))
    except BaseException:
        Instances(procs, urls).stop()
        raise
    return Instances(procs, urls)


def enable_users(fakes: dict[str, str], users: int) -> None:
    with httpx.Client(base_url=fakes["omi_url"]) as admin:
        for n in range(users):
            admin.post(f"/_sandbox/apps/{fakes['app_id']}/enable", json={"uid": f"bench-uid-{n}"})


def split(total: int, k: int) -> list[int]:
    """`total` connections over k instances: 32 → 11+11+10."""
    return [total // k + (1 if n < total % k else 0) for n in range(k)]


# --- (a) acknowledgement ------------------------------------------------------------------------------------


@dataclass
class AckRun:
    k: int
    connections: list[int]
    rates: list[float]
    p50_ms: list[float]
    p99_ms: list[float]
    errors: int
    rss_mb: list[float]
    tool: str

    @property
    def rate(self) -> float:
        return sum(self.rates)


def ack_run(k: int, seconds: float, connections: int, users: int, postgres: str) -> AckRun:
    work = Path(tempfile.mkdtemp(prefix=f"omi-bridge-instances-ack{k}-"))
    fakes_proc, fakes = start_fakes(omi_latency=2.0)
    try:
        enable_users(fakes, users)
        with BenchDatabase("postgresql", work, postgres) as database:
            link_users(database.url, [(f"telegram:{1000 + n}", f"bench-uid-{n}") for n in range(users)])
            instances = start_instances(k, fakes, database.url, work)
            try:
                shares = split(connections, k)
                results: list[LoadResult | BaseException | None] = [None] * k

                def load(n: int) -> None:
                    try:
                        results[n] = run_load(
                            f"{instances.urls[n]}/telegram/webhook",
                            TELEGRAM_BODY,
                            HEADERS,
                            connections=shares[n],
                            seconds=seconds,
                            base=10_000_000 * (n + 1),  # update ids unique across the instances
                        )
                    except BaseException as exc:  # reported below, in the main thread
                        results[n] = exc

                threads = [threading.Thread(target=load, args=(n,)) for n in range(k)]
                for thread in threads:
                    thread.start()
                for thread in threads:
                    thread.join()
                for result in results:
                    if not isinstance(result, LoadResult):
                        raise RuntimeError(f"load failed: {result!r}")
                done: list[LoadResult] = results  # type: ignore[assignment]
                return AckRun(
                    k,
                    shares,
                    [r.rate for r in done],
                    [r.p50_ms for r in done],
                    [r.p99_ms for r in done],
                    sum(r.errors for r in done),
                    instances.peak_rss_mb(),
                    done[0].tool,
                )
            finally:
                instances.stop()
    finally:
        fakes_proc.stop()


# --- (b) delivery -------------------------------------------------------------------------------------------


@dataclass
class DeliveryRun:
    k: int
    spread: bool
    n: int
    bursts: int
    intake_rate: float
    delivered: list[int]  # conversations delivered, per instance (its /metrics)
    total_seconds: float  # first message sent → last conversation delivered
    backlog: int  # conversations delivered after the last message was acknowledged
    drain_seconds: float  # ... and how long they took
    in_omi: int  # conversations the sandbox holds
    lost: int  # messages sent but in no conversation
    duplicated: int  # messages in more than one conversation (or twice in one)
    rss_mb: list[float] = field(default_factory=list)

    @property
    def drain_rate(self) -> float | None:
        """Conversations/s over what was left when the last message was acknowledged (None: delivery kept up)."""
        if self.backlog < 64 or not self.drain_seconds:
            return None
        return self.backlog / self.drain_seconds


def metric(text: str, name: str) -> int:
    match = re.search(rf'{name}\{{kind="conversation"\}} ([0-9.e+]+)', text)
    return int(float(match.group(1))) if match else 0


def counts(client: httpx.Client, urls: list[str]) -> tuple[list[int], int, int]:
    """From every instance's /metrics: conversations delivered per instance, conversations queued in all, and
    items waiting (the queue depth, which is the shared database's: every instance shows the same)."""
    delivered, queued, depth = [], 0, 0
    for url in urls:
        text = client.get(f"{url}/metrics").text
        delivered.append(metric(text, "omi_bridge_items_delivered_total"))
        queued += metric(text, "omi_bridge_items_queued_total")
        match = re.search(r"^omi_bridge_queue_depth ([0-9.e+]+)", text, re.MULTILINE)
        depth = max(depth, int(float(match.group(1))) if match else 0)
    return delivered, queued, depth


def delivery_run(k: int, n: int, users: int, spread: bool, max_wait: float, postgres: str) -> DeliveryRun:
    rng = random.Random(n)
    rounds = plan(n, users, rng)
    bursts = sum(len(r) for r in rounds)
    work = Path(tempfile.mkdtemp(prefix=f"omi-bridge-instances-delivery{k}-"))
    fakes_proc, fakes = start_fakes(omi_latency=0.0)
    try:
        enable_users(fakes, users)
        with BenchDatabase("postgresql", work, postgres) as database:
            link_users(database.url, [(f"telegram:{1000 + u}", f"bench-uid-{u}") for u in range(users)])
            instances = start_instances(
                k, fakes, database.url, work, BATCH_WINDOW_SECONDS=str(WINDOW), DELIVERY_CONCURRENCY="32"
            )
            urls = instances.urls
            if spread:
                turn = iter(range(10**12))
                target = lambda user, m: urls[next(turn) % k]  # noqa: E731 - round robin per message
            else:
                target = lambda user, m: urls[user % k]  # noqa: E731 - a user's bursts to one instance
            try:
                started = time.perf_counter()
                sending = asyncio.run(post_rounds(rounds, lambda user, k: f"{target(user, k)}/telegram/webhook", rng))
                intake_done = time.perf_counter()
                with httpx.Client(timeout=10) as client:
                    delivered, queued, depth = counts(client, urls)
                    at_intake = sum(delivered)
                    # Done when every burst is in Omi and nothing waits any more (the last bursts close a window
                    # after the last message; a split burst — --spread, or a gap over the window on a loaded
                    # machine — makes more conversations than bursts, and those must be in Omi too).
                    last_change, last = time.perf_counter(), sum(delivered)
                    while time.perf_counter() - started < max_wait:
                        settled = time.perf_counter() - intake_done > 2 * WINDOW and depth == 0
                        if settled and sum(delivered) >= max(bursts, queued):
                            break
                        time.sleep(0.1)  # polling /metrics from a benchmark script: nothing to wait on
                        delivered, queued, depth = counts(client, urls)
                        if sum(delivered) != last:
                            last_change, last = time.perf_counter(), sum(delivered)
                finished = last_change  # the last delivery seen, not the end of the wait for more
                rss = instances.peak_rss_mb()
            finally:
                instances.stop()
        in_omi, lost, duplicated = read_back(fakes["omi_url"], users, n)
    finally:
        fakes_proc.stop()
    return DeliveryRun(
        k,
        spread,
        n,
        bursts,
        n / sending,
        delivered,
        finished - started,
        sum(delivered) - at_intake,
        max(0.0, finished - intake_done),
        in_omi,
        lost,
        duplicated,
        rss,
    )


# --- the run ------------------------------------------------------------------------------------------------


def describe(postgres: str) -> str:
    return BenchDatabase("postgresql", Path(), postgres).describe()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--instances", default="1,2,3", help="the K to run, comma-separated (default %(default)s)")
    parser.add_argument("--seconds", type=float, default=10.0, help="(a): wrk's duration")
    parser.add_argument("--connections", type=int, default=32, help="(a): connections in all, split over K")
    parser.add_argument("--messages", type=int, default=2000, help="(b): N messages")
    parser.add_argument("--users", type=int, default=200)
    parser.add_argument("--spread", action="store_true", help="(b): messages round-robin per message")
    parser.add_argument(
        "--window",
        type=float,
        default=WINDOW,
        help="(b): BATCH_WINDOW_SECONDS (default %(default)s, as bench/throughput.py); a burst's messages more than"
        " this apart (a loaded machine acknowledging slowly) become two conversations",
    )
    parser.add_argument("--max-wait", type=float, default=240.0, help="(b): stop waiting for deliveries after this")
    parser.add_argument("--no-ack", action="store_true", help="skip (a)")
    parser.add_argument("--no-delivery", action="store_true", help="skip (b)")
    parser.add_argument(
        "--postgres",
        default=POSTGRES,
        metavar="URL",
        help="the database each run gets a fresh schema of, dropped after (default %(default)s)",
    )
    parser.add_argument("--json", metavar="FILE", help="also append every figure to FILE as JSON lines")
    args = parser.parse_args()
    globals()["WINDOW"] = args.window  # read by the delivery run's client and instances
    ks = [int(k) for k in args.instances.split(",") if k]
    if not have_wrk():
        print("wrk not found (apt-get install -y wrk): using a Python client, which may be the bottleneck")
    engine = describe(args.postgres)

    acks: list[AckRun] = []
    deliveries: list[DeliveryRun] = []
    for k in ks:
        if not args.no_ack:
            run = ack_run(k, args.seconds, args.connections, args.users, args.postgres)
            acks.append(run)
            record(args.json, "instances_ack", "postgresql", {**run.__dict__, "rate": run.rate})
            print(f"K={k}: {run.rate:,.0f} acks/s", flush=True)
        if not args.no_delivery:
            one = delivery_run(k, args.messages, args.users, args.spread, args.max_wait, args.postgres)
            deliveries.append(one)
            record(args.json, "instances_delivery", "postgresql", {**one.__dict__, "drain_rate": one.drain_rate})
            print(f"K={k}: {sum(one.delivered):,} conversations in {one.total_seconds:.1f} s", flush=True)

    print(f"\nseveral instances on {engine}, one schema per run")
    if acks:
        base = next((a.rate for a in acks if a.k == 1), 0.0)
        tool = acks[0].tool
        print(
            f"\n(a) Telegram webhook acks: {args.connections} connections split over the instances, one {tool} per"
            f" instance, {args.seconds:g} s, Omi 2 s per create"
        )
        rows = [
            [
                a.k,
                "+".join(str(c) for c in a.connections),
                f"{a.rate:,.0f}",
                f"{a.rate / base:.2f}×" if base else "–",
                " / ".join(f"{r:,.0f}" for r in a.rates),
                f"{max(a.p50_ms):.1f}",
                f"{max(a.p99_ms):.1f}",
                a.errors,
                f"{max(a.rss_mb):.0f}",
            ]
            for a in acks
        ]
        headers = ["K", "connections", "acks/s (sum)", "vs K=1", "per instance", "p50 ms", "p99 ms", "errors"]
        print(table([*headers, "peak MB"], rows))
        print("p50/p99: the worst instance's")
    if deliveries:
        mode = "round-robin per message (--spread)" if args.spread else "each user's bursts to one instance"
        print(
            f"\n(b) delivery: {args.messages:,} messages from {args.users} users in bursts of 1–5, {mode},"
            f" window {args.window:g} s, Omi 0 s, {CONCURRENCY} requests in flight from the client"
        )
        rows = [
            [
                d.k,
                f"{d.intake_rate:,.0f}",
                f"{sum(d.delivered):,} (bursts {d.bursts:,})",
                " / ".join(f"{c:,}" for c in d.delivered),
                f"{d.total_seconds:.1f}",
                f"{d.n / d.total_seconds:,.0f}",
                f"{d.backlog:,}",
                "kept up" if d.drain_rate is None else f"{d.drain_rate:.1f}",
                f"{d.in_omi:,}",
                d.lost,
                d.duplicated,
            ]
            for d in deliveries
        ]
        headers = ["K", "intake msg/s", "conversations", "per instance", "total s", "msg/s end to end", "backlog"]
        headers.append("drain conv/s")
        print(table([*headers, "in Omi", "lost", "duplicated"], rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
