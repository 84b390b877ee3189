"""How fast does the bridge acknowledge? Telegram webhook POSTs and Slack slash commands against
`omi-bridge serve` (a subprocess) while the sandbox takes 2 s per create, beside three floors measured in the
same run: a bare aiohttp route, the same plus one insert+commit per request on the run's engine (SQLite, or
PostgreSQL on one connection), and a naive bridge that calls Omi inside the handler; and beside its two peers,
what users would otherwise run (bench/peers.py, the `bench` extra): a plain python-telegram-bot webhook bot
(`run_webhook`) fed the same Telegram bodies, and a plain slack-bolt AsyncApp fed the same signed `/omi`
commands, each acknowledging before it stores anything. Every server is its own process and gets the same load.
Load: wrk (Debian) at a fixed concurrency. The bridge's database: an SQLite file, or a fresh schema of a
PostgreSQL database. The table gives the bridge's rate as a ratio of the bare route's and of its peer's.

    python bench/ack_latency.py [--engine sqlite|postgresql] [--seconds 10] [--connections 32] [--omi-latency 2]
                                [--max-group N] [--switch-interval S] [--no-floors] [--no-peers] [--json FILE]
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlencode

import httpx
from common import (  # type: ignore[import-not-found]
    ROOT,
    SLACK_BOT_TOKEN,
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
from loadgen import LoadResult, have_wrk, run_load, run_replay  # type: ignore[import-not-found]

USERS = 200
#: The peers' rows (bench/peers.py), and the bridge's row each is compared with.
PTB = "peer: PTB run_webhook"
BOLT = "peer: Bolt AsyncApp /omi"
TELEGRAM_ROW = "bridge: Telegram webhook"
SLACK_ROW = "bridge: Slack /omi remember"
PEER_OF = {TELEGRAM_ROW: PTB, SLACK_ROW: BOLT}
TELEGRAM_HEADERS = {"Content-Type": "application/json", "X-Telegram-Bot-Api-Secret-Token": TELEGRAM_SECRET}
#: The bridge's Telegram bodies are numbered from here (above the floors'); its peer's are the same.
TELEGRAM_BASE = 10_000_000
SLACK_REQUESTS = 80_000
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


@dataclass(frozen=True)
class PeerRun:
    name: str
    result: LoadResult
    peak_rss_mb: float
    handled: int | None  # what the peer's handler/listener saw, as it printed at its stop


def rss_mb(proc: Proc, field: str = "VmRSS") -> float:
    """A /proc/PID/status memory field in MB: VmRSS (resident now), VmHWM (the high-water mark)."""
    for line in Path(f"/proc/{proc.pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    return 0.0


def peer(kind: str, fakes: dict[str, str], work: Path, seconds: float, connections: int) -> PeerRun:
    """Start a peer (bench/peers.py) on the bench's fakes, check that it acknowledges one request with 200, load it
    with what the bridge gets (the same Telegram bodies and headers, or the same signed slash commands)."""
    port = free_port()
    args = [sys.executable, str(ROOT / "bench" / "peers.py"), kind, "--port", str(port)]
    if kind == "ptb":
        args += ["--bot-api", fakes["telegram_url"], "--token", fakes["telegram_token"], "--secret", TELEGRAM_SECRET]
    else:
        args += ["--slack-api", fakes["slack_url"], "--token", SLACK_BOT_TOKEN]
        args += ["--signing-secret", SLACK_SIGNING_SECRET]
    server = Proc(args)
    server.wait_for("ready")
    try:
        if kind == "ptb":
            url = f"http://127.0.0.1:{port}/telegram/webhook"
            n = TELEGRAM_BASE - 1  # below the load's numbers
            body = TELEGRAM_BODY.replace("{n}", str(n)).replace("{u}", str(1000 + n % USERS))
            check = httpx.post(url, content=body, headers=TELEGRAM_HEADERS, timeout=10)
        else:
            url = f"http://127.0.0.1:{port}/slack/events"
            requests = work / "slack-requests-bolt.txt"
            slack_requests(requests, SLACK_REQUESTS, fakes["slack_url"].rsplit("/api", 1)[0])
            stamp, signature, body = requests.read_text().split("\n", 1)[0].split("\t", 2)
            headers = {
                "Content-Type": "application/x-www-form-urlencoded",
                "X-Slack-Request-Timestamp": stamp,
                "X-Slack-Signature": signature,
            }
            check = httpx.post(url, content=body, headers=headers, timeout=10)
        if check.status_code != 200:
            raise RuntimeError(f"{kind} answered {check.status_code} {check.text[:200]!r}; log: {server.log[-10:]}")
        if kind == "ptb":
            result = run_load(
                url, TELEGRAM_BODY, TELEGRAM_HEADERS, connections=connections, seconds=seconds, base=TELEGRAM_BASE
            )
        else:
            result = run_replay(url, str(requests), connections=connections, seconds=seconds)
        peak = server.peak_rss_mb()
    finally:
        server.stop()
    try:
        handled: int | None = int(server.wait_for(r"^handled (\d+)$", timeout=5).group(1))
    except RuntimeError:
        handled = None
    return PeerRun(PTB if kind == "ptb" else BOLT, result, peak, handled)


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
    parser.add_argument("--no-floors", action="store_true", help="no floors (bare, durable, naive)")
    parser.add_argument("--no-peers", action="store_true", help="no peers (PTB webhook bot, Bolt AsyncApp)")
    add_engine_arguments(parser)
    args = parser.parse_args()
    if not have_wrk():
        print("wrk not found (apt-get install -y wrk): using a Python client, which may be the bottleneck")
    work = Path(tempfile.mkdtemp(prefix="omi-bridge-bench-"))
    fakes_proc, fakes = start_fakes(omi_latency=args.omi_latency)
    measured: list[tuple[str, object]] = []
    peers: list[PeerRun] = []
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
        # Bolt gets the bridge's signed slash commands, which wrk alone replays (as the bridge's Slack run).
        kinds = () if args.no_peers else ("ptb", "bolt") if have_wrk() else ("ptb",)
        for kind in kinds:
            run = peer(kind, fakes, work, args.seconds, args.connections)
            peers.append(run)
            measured.append((run.name, run.result))

        with database:
            idle_rss, rss = bridge(args, fakes, work, database.url, measured)
    finally:
        fakes_proc.stop()

    bare = measured[0][1].rate if not args.no_floors else 0.0  # type: ignore[attr-defined]
    rates = {name: r.rate for name, r in measured}  # type: ignore[attr-defined]

    def versus(name: str, rate: float, peer_name: str) -> str:
        base = rates.get(peer_name, 0.0) if PEER_OF.get(name) == peer_name else 0.0
        return f"{rate / base:.2f}×" if base else "–"

    rows = [
        [
            name,
            f"{r.rate:,.0f}",  # type: ignore[attr-defined]
            f"{r.rate / bare:.2f}×" if bare else "–",  # type: ignore[attr-defined]
            versus(name, r.rate, PTB),  # type: ignore[attr-defined]
            versus(name, r.rate, BOLT),  # type: ignore[attr-defined]
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
    print(table(["server", "acks/s", "vs bare", "vs PTB", "vs Bolt", "p50 ms", "p99 ms", "errors"], rows))
    print(f"bridge RSS: idle {idle_rss:.0f} MB, peak {rss:.0f} MB")
    if peers:
        print("peers' peak RSS: " + ", ".join(f"{p.name.removeprefix('peer: ')} {p.peak_rss_mb:.0f} MB" for p in peers))
    for p in peers:
        # Every answered request (and the check before the load) reached the peer's handler or listener.
        if p.handled is None or p.handled < p.result.requests + 1:
            print(f"warning: {p.name} handled {p.handled} updates for {p.result.requests + 1} answered requests")
    figures: dict[str, object] = {"max_group": args.max_group, "switch_interval": args.switch_interval}
    figures |= {"connections": args.connections, "seconds": args.seconds, "rss_mb": rss, "rss_idle_mb": idle_rss}
    for name, r in measured:
        figures[name] = {"rate": r.rate, "p50_ms": r.p50_ms, "p99_ms": r.p99_ms, "errors": r.errors}  # type: ignore[attr-defined]
    for p in peers:
        figures[p.name] |= {"peak_rss_mb": p.peak_rss_mb, "handled": p.handled}  # type: ignore[operator]
    for row, peer_name in PEER_OF.items():
        if row in rates and rates.get(peer_name):
            figures[row] |= {"vs_peer": rates[row] / rates[peer_name]}  # type: ignore[operator]
    record(args.json, "ack_latency", args.engine, figures)
    return 0


def bridge(
    args: argparse.Namespace, fakes: dict[str, str], work: Path, url: str, measured: list[tuple[str, object]]
) -> tuple[float, float]:
    """Link the users, start `serve` on the database at `url`, load it; returns its RSS in MB right after it
    started (before any load) and its peak."""
    link_users(
        url,
        [(f"telegram:{1000 + n}", f"bench-uid-{n}") for n in range(USERS)]
        + [(f"slack:U{1000 + n}", f"bench-uid-{n}") for n in range(USERS)],
    )
    serve, base = start_serve(
        serve_env(fakes, url, free_port()), cwd=work, max_group=args.max_group, switch_interval=args.switch_interval
    )
    idle = rss_mb(serve)
    try:
        telegram = run_load(
            f"{base}/telegram/webhook",
            TELEGRAM_BODY,
            TELEGRAM_HEADERS,
            connections=args.connections,
            seconds=args.seconds,
            base=TELEGRAM_BASE,
        )
        measured.append((TELEGRAM_ROW, telegram))
        if have_wrk():
            requests = work / "slack-requests.txt"
            slack_requests(requests, SLACK_REQUESTS, fakes["slack_url"].rsplit("/api", 1)[0])
            slack = run_replay(
                f"{base}/slack/events", str(requests), connections=args.connections, seconds=args.seconds
            )
            measured.append((SLACK_ROW, slack))
        return idle, serve.peak_rss_mb()
    finally:
        serve.stop()


if __name__ == "__main__":
    sys.exit(main())
