"""Where `omi-bridge serve` spends an acknowledgement: the bench's load (Telegram webhooks or Slack `/omi remember`)
against serve while py-spy samples it (`--gil`: only samples holding the GIL, i.e. Python work), then the frames
with the most samples, inclusive, as a share of all samples.

    python bench/profile.py telegram|slack [--seconds 10] [--connections 32] [--top 30] [--flame FILE.svg]
"""

from __future__ import annotations

import argparse
import collections
import subprocess
import sys
import tempfile
from pathlib import Path

import httpx
from ack_latency import TELEGRAM_BODY, USERS, slack_requests  # type: ignore[import-not-found]
from common import (  # type: ignore[import-not-found]
    TELEGRAM_SECRET,
    free_port,
    link_users,
    serve_env,
    start_fakes,
    start_serve,
)
from loadgen import run_load, run_replay  # type: ignore[import-not-found]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("platform", choices=("telegram", "slack"))
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--top", type=int, default=30)
    parser.add_argument("--flame", help="also write py-spy's flame graph here")
    parser.add_argument("--all-threads", action="store_true", help="every thread's samples, not only the GIL's")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="omi-bridge-profile-"))
    fakes_proc, fakes = start_fakes(omi_latency=2.0)
    try:
        with httpx.Client(base_url=fakes["omi_url"]) as admin:
            for n in range(USERS):
                admin.post(f"/_sandbox/apps/{fakes['app_id']}/enable", json={"uid": f"bench-uid-{n}"})
        db = work / "bridge.db"
        link_users(
            db,
            [(f"telegram:{1000 + n}", f"bench-uid-{n}") for n in range(USERS)]
            + [(f"slack:U{1000 + n}", f"bench-uid-{n}") for n in range(USERS)],
        )
        serve, base = start_serve(serve_env(fakes, db, free_port()), cwd=work)
        raw = work / "stacks.txt"
        spy = subprocess.Popen(  # noqa: S603
            [
                str(Path(sys.executable).with_name("py-spy")),
                "record",
                *(["--gil"] if not args.all_threads else []),
                "-r",
                "200",
                "-f",
                "raw",
                "-o",
                str(raw),
                "-p",
                str(serve.pid),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            if args.platform == "telegram":
                headers = {"Content-Type": "application/json", "X-Telegram-Bot-Api-Secret-Token": TELEGRAM_SECRET}
                result = run_load(f"{base}/telegram/webhook", TELEGRAM_BODY, headers, connections=args.connections,
                                  seconds=args.seconds, base=10_000_000)  # fmt: skip
            else:
                requests = work / "slack-requests.txt"
                slack_requests(requests, 80_000, fakes["slack_url"].rsplit("/api", 1)[0])
                result = run_replay(f"{base}/slack/events", str(requests), connections=args.connections,
                                    seconds=args.seconds)  # fmt: skip
        finally:
            spy.send_signal(2)
            spy.wait(60)
            serve.stop()
        print(f"{args.platform}: {result.rate:,.0f} acks/s, p50 {result.p50_ms:.1f} ms, p99 {result.p99_ms:.1f} ms")
        report(raw, args.top)
        if args.flame:
            print("flame graph: run py-spy record -f flamegraph yourself; raw stacks are in", raw)
    finally:
        fakes_proc.stop()
    return 0


def report(raw: Path, top: int) -> None:
    inclusive: collections.Counter[str] = collections.Counter()
    own: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        samples = int(count)
        total += samples
        frames = [frame.split(" (")[0] + " " + _where(frame) for frame in stack.split(";")]
        for frame in set(frames):
            inclusive[frame] += samples
        own[frames[-1]] += samples
    print(f"{total} samples holding the GIL")
    print("inclusive (the frame and what it called):")
    for frame, samples in inclusive.most_common(top):
        print(f"  {100 * samples / total:5.1f}%  {frame}")
    print("own (the frame itself):")
    for frame, samples in own.most_common(top // 2):
        print(f"  {100 * samples / total:5.1f}%  {frame}")


def _where(frame: str) -> str:
    inside = frame.partition(" (")[2].rstrip(")")
    path = inside.rsplit(":", 1)[0]
    for marker in ("site-packages/", "/work/main/", "python3.11/"):
        if marker in path:
            path = path.split(marker, 1)[1]
    return f"({path})"


if __name__ == "__main__":
    sys.exit(main())
