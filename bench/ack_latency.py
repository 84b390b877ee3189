"""How fast does the bridge acknowledge? Telegram webhook POSTs and Slack slash commands against
`omi-bridge serve` (a subprocess) while the sandbox takes 2 s per create, beside three floors measured in the
same run: a bare aiohttp route, the same plus one insert+commit per request on the run's engine (SQLite, or
PostgreSQL on one connection), and a naive bridge that calls Omi inside the handler. Load: wrk (Debian) at a
fixed concurrency. The bridge's database: an SQLite file, or a fresh schema of a PostgreSQL database.

    python bench/ack_latency.py [--engine sqlite|postgresql] [--seconds 10] [--connections 32] [--omi-latency 2]
                                [--max-group N] [--switch-interval S] [--no-floors] [--json FILE]
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlencode

import httpx
from common import (  # type: ignore[import-not-found]
    ROOT,
    SLACK_SIGNING_SECRET,
    TELEGRAM_SECRET,
    BenchDatabase,
    Proc,
    add_engine_arguments,
    free_port,
    link_users,
    record,
    serve_env,
    start_fakes,
    start_serve,
    table,
)
from loadgen import have_wrk, run_load, run_replay  # type: ignore[import-not-found]

USERS = 200
#: A webhook-sized Telegram update: `{n}` is unique per request, `{u}` one of 200 linked users.
TELEGRAM_BODY = (
    '{"update_id": {n}, "message": {"message_id": {n}, "date": 1764300000, "chat": {"id": {u}, "type": "private"},'
    ' "from": {"id": {u}, "is_bot": false, "first_name": "Ada", "last_name": "Lovelace", "language_code": "en"},'
    ' "text": "' + "We should move the launch review to Thursday and invite the design team. " * 4 + '"}}'
)


def slack_requests(path: Path, count: int, response_base: str) -> None:
    """Signed `/omi remember` slash commands, each with its own trigger_id (else they are duplicates)."""
    stamp = str(int(time.time()))
    with path.open("w") as out:
        for n in range(count):
            user = f"U{1000 + n % USERS}"
            body = urlencode(
                {
                    "team_id": "T0BENCH",
                    "channel_id": f"D{user}",
                    "user_id": user,
                    "user_name": user.lower(),
                    "command": "/omi",
                    "text": f"remember bench fact number {n} is worth keeping #bench",
                    "response_url": f"{response_base}/respond/{n}",
                    "trigger_id": f"{n}.bench",
                    "api_app_id": "A0BENCH",
                }
            )
            digest = hmac.new(SLACK_SIGNING_SECRET.encode(), f"v0:{stamp}:{body}".encode(), hashlib.sha256)
            out.write(f"{stamp}\tv0={digest.hexdigest()}\t{body}\n")


def floor(
    kind: str, fakes: dict[str, str], seconds: float, connections: int, uvloop: bool = False, postgres: str = ""
) -> list[object]:
    port = free_port()
    args = [sys.executable, str(ROOT / "bench" / "floors.py"), kind, "--port", str(port)]
    if uvloop:
        args.append("--uvloop")
    if postgres:
        args += ["--postgres", postgres]
    if kind == "naive":
        args += ["--omi", fakes["omi_url"], "--app-id", fakes["app_id"], "--api-key", fakes["api_key"]]
        args += ["--uid", "bench-uid-0"]
    server = Proc(args)
    server.wait_for("ready")
    try:
        result = run_load(
            f"http://127.0.0.1:{port}/telegram/webhook",
            TELEGRAM_BODY,
            {"Content-Type": "application/json"},
            connections=connections,
            seconds=seconds,
        )
    finally:
        server.stop()
    return [f"{kind} (uvloop)" if uvloop else kind, result]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--omi-latency", type=float, default=2.0)
    parser.add_argument(
        "--max-group",
        type=int,
        metavar="N",
        help="at most N writes per commit in the bridge (1: one commit per write; default: the bridge's own)",
    )
    parser.add_argument(
        "--switch-interval",
        type=float,
        metavar="S",
        help="the bridge's GIL switch interval (sys.setswitchinterval; Python's default 0.005)",
    )
    parser.add_argument("--no-floors", action="store_true", help="measure the bridge only")
    add_engine_arguments(parser)
    args = parser.parse_args()
    if not have_wrk():
        print("wrk not found (apt-get install -y wrk): using a Python client, which may be the bottleneck")
    work = Path(tempfile.mkdtemp(prefix="omi-bridge-bench-"))
    fakes_proc, fakes = start_fakes(omi_latency=args.omi_latency)
    measured: list[tuple[str, object]] = []
    database = BenchDatabase(args.engine, work, args.postgres)
    engine = database.describe()
    try:
        with httpx.Client(base_url=fakes["omi_url"]) as admin:
            for n in range(USERS):
                admin.post(f"/_sandbox/apps/{fakes['app_id']}/enable", json={"uid": f"bench-uid-{n}"})
        floors = () if args.no_floors else (("bare", False), ("bare", True), (args.engine, False), ("naive", False))
        for kind, uvloop in floors:
            postgres = args.postgres if kind == "postgresql" else ""
            name, result = floor(kind, fakes, args.seconds, args.connections, uvloop, postgres)
            measured.append((name, result))

        with database:
            rss = bridge(args, fakes, work, database.url, measured)
    finally:
        fakes_proc.stop()

    bare = measured[0][1].rate if not args.no_floors else 0.0  # type: ignore[attr-defined]
    rows = [
        [
            name,
            f"{r.rate:,.0f}",  # type: ignore[attr-defined]
            f"{r.rate / bare:.2f}×" if bare else "–",  # type: ignore[attr-defined]
            f"{r.p50_ms:.1f}",  # type: ignore[attr-defined]
            f"{r.p99_ms:.1f}",  # type: ignore[attr-defined]
            r.errors,  # type: ignore[attr-defined]
        ]
        for name, r in measured
    ]
    tool = measured[0][1].tool  # type: ignore[attr-defined]
    group = "" if args.max_group is None else f", at most {args.max_group} writes per commit"
    group += "" if args.switch_interval is None else f", switch interval {args.switch_interval:g} s"
    print(
        f"\nack latency on {engine}: {args.connections} connections, {args.seconds:.0f} s each,"
        f" Omi {args.omi_latency:g} s per create, load by {tool}{group}"
    )
    print(table(["server", "acks/s", "vs bare", "p50 ms", "p99 ms", "errors"], rows))
    print(f"bridge peak RSS: {rss:.0f} MB")
    figures: dict[str, object] = {"max_group": args.max_group, "switch_interval": args.switch_interval}
    figures |= {"connections": args.connections, "seconds": args.seconds, "rss_mb": rss}
    for name, r in measured:
        figures[name] = {"rate": r.rate, "p50_ms": r.p50_ms, "p99_ms": r.p99_ms, "errors": r.errors}  # type: ignore[attr-defined]
    record(args.json, "ack_latency", args.engine, figures)
    return 0


def bridge(
    args: argparse.Namespace, fakes: dict[str, str], work: Path, url: str, measured: list[tuple[str, object]]
) -> float:
    """Link the users, start `serve` on the database at `url`, load it; returns its peak RSS in MB."""
    link_users(
        url,
        [(f"telegram:{1000 + n}", f"bench-uid-{n}") for n in range(USERS)]
        + [(f"slack:U{1000 + n}", f"bench-uid-{n}") for n in range(USERS)],
    )
    serve, base = start_serve(
        serve_env(fakes, url, free_port()), cwd=work, max_group=args.max_group, switch_interval=args.switch_interval
    )
    try:
        telegram = run_load(
            f"{base}/telegram/webhook",
            TELEGRAM_BODY,
            {"Content-Type": "application/json", "X-Telegram-Bot-Api-Secret-Token": TELEGRAM_SECRET},
            connections=args.connections,
            seconds=args.seconds,
            base=10_000_000,
        )
        measured.append(("bridge: Telegram webhook", telegram))
        if have_wrk():
            requests = work / "slack-requests.txt"
            slack_requests(requests, 80_000, fakes["slack_url"].rsplit("/api", 1)[0])
            slack = run_replay(
                f"{base}/slack/events", str(requests), connections=args.connections, seconds=args.seconds
            )
            measured.append(("bridge: Slack /omi remember", slack))
        return serve.peak_rss_mb()
    finally:
        serve.stop()


if __name__ == "__main__":
    sys.exit(main())
