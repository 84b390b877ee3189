"""How fast does the bridge acknowledge? Telegram webhook POSTs and Slack slash commands against
`omi-bridge serve` (a subprocess) while the sandbox takes 2 s per create, beside three floors measured in the
same run: a bare aiohttp route, the same plus one SQLite insert+commit per request, and a naive bridge that
calls Omi inside the handler. Load: wrk (Debian) at a fixed concurrency.

    python bench/ack_latency.py [--seconds 10] [--connections 32] [--omi-latency 2]
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
    Proc,
    free_port,
    link_users,
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


def floor(kind: str, fakes: dict[str, str], seconds: float, connections: int, uvloop: bool = False) -> list[object]:
    port = free_port()
    args = [sys.executable, str(ROOT / "bench" / "floors.py"), kind, "--port", str(port)]
    if uvloop:
        args.append("--uvloop")
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
    args = parser.parse_args()
    if not have_wrk():
        print("wrk not found (apt-get install -y wrk): using a Python client, which may be the bottleneck")
    work = Path(tempfile.mkdtemp(prefix="omi-bridge-bench-"))
    fakes_proc, fakes = start_fakes(omi_latency=args.omi_latency)
    measured: list[tuple[str, object]] = []
    try:
        with httpx.Client(base_url=fakes["omi_url"]) as admin:
            for n in range(USERS):
                admin.post(f"/_sandbox/apps/{fakes['app_id']}/enable", json={"uid": f"bench-uid-{n}"})
        for kind, uvloop in (("bare", False), ("bare", True), ("sqlite", False), ("naive", False)):
            name, result = floor(kind, fakes, args.seconds, args.connections, uvloop)
            measured.append((name, result))

        db = work / "bridge.db"
        link_users(
            db,
            [(f"telegram:{1000 + n}", f"bench-uid-{n}") for n in range(USERS)]
            + [(f"slack:U{1000 + n}", f"bench-uid-{n}") for n in range(USERS)],
        )
        port = free_port()
        serve, url = start_serve(serve_env(fakes, db, port), cwd=work)
        try:
            telegram = run_load(
                f"{url}/telegram/webhook",
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
                    f"{url}/slack/events", str(requests), connections=args.connections, seconds=args.seconds
                )
                measured.append(("bridge: Slack /omi remember", slack))
            rss = serve.peak_rss_mb()
        finally:
            serve.stop()
    finally:
        fakes_proc.stop()

    bare = measured[0][1].rate  # type: ignore[attr-defined]
    rows = [
        [
            name,
            f"{r.rate:,.0f}",  # type: ignore[attr-defined]
            f"{r.rate / bare:.2f}×",  # type: ignore[attr-defined]
            f"{r.p50_ms:.1f}",  # type: ignore[attr-defined]
            f"{r.p99_ms:.1f}",  # type: ignore[attr-defined]
            r.errors,  # type: ignore[attr-defined]
        ]
        for name, r in measured
    ]
    tool = measured[0][1].tool  # type: ignore[attr-defined]
    print(
        f"\nack latency: {args.connections} connections, {args.seconds:.0f} s each,"
        f" Omi {args.omi_latency:g} s per create, load by {tool}"
    )
    print(table(["server", "acks/s", "vs bare", "p50 ms", "p99 ms", "errors"], rows))
    print(f"bridge peak RSS: {rss:.0f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
