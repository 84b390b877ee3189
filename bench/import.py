"""Importing a big Telegram export (SPEC §10): a generated `result.json` of N messages → read (both passes: the
validating one and the chat's), grouped into conversations, and queued (staged in batches of 500, flipped whole)
into a fresh database — each step timed, and the peak RSS of the process doing it, so memory can be seen not to
grow with the file. Each measurement runs in a process of its own (a clean RSS).

    python bench/import.py [--messages 100000] [--megabytes 200] [--engine sqlite|postgresql]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import ROOT, BenchDatabase, add_engine_arguments, table  # type: ignore[import-not-found]

WORDS = "we could move the launch review to thursday and ask the design team to join us for the demo".split()


def generate(path: Path, *, messages: int | None = None, megabytes: float | None = None) -> tuple[int, int]:
    """A one-chat export as Telegram Desktop writes it, of `messages` messages or about `megabytes` MB, written
    as a stream. Returns (messages, bytes)."""
    start = 1_600_000_000
    written = count = 0
    with path.open("w", encoding="utf-8") as out:
        head = '{\n "name": "Big Family",\n "type": "private_supergroup",\n "id": 1234567890,\n "messages": [\n'
        out.write(head)
        written += len(head)
        while True:
            if messages is not None and count >= messages:
                break
            if megabytes is not None and written >= megabytes * 1_000_000:
                break
            moment = start + count * 97 + (count // 25) * 7200  # talk in runs of 25, two hours apart
            words = " ".join(WORDS[(count + k) % len(WORDS)] for k in range(8 + count % 20))
            entry = {
                "id": count + 1,
                "type": "message",
                "date": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(moment)),
                "date_unixtime": str(moment),
                "from": ["Alice Liddell", "Bob Byrne", "Ольга Петрова"][count % 3],
                "from_id": f"user{1001 + count % 3}",
                "text": words,
                "text_entities": [{"type": "plain", "text": words}],
            }
            line = ("  " if count == 0 else ",\n  ") + json.dumps(entry, ensure_ascii=False)
            out.write(line)
            written += len(line.encode())
            count += 1
        out.write("\n ]\n}\n")
    return count, path.stat().st_size


def child(step: str, path: str, database: str) -> dict[str, float]:
    """One measurement, in this (fresh) process."""
    sys.path.insert(0, str(ROOT))
    from adapters.telegram.export import TelegramExport
    from bot.clock import SystemClock
    from bot.events import Address, Platform
    from bot.importing.grouping import conversations
    from bot.importing.queueing import ImportTarget, queue_import
    from bot.store import Store

    started = time.perf_counter()
    export = TelegramExport.open(path)
    chat = export.choose(None)
    figures: dict[str, float] = {"validate_s": time.perf_counter() - started}
    if step == "read":
        figures["messages"] = sum(1 for _ in export.messages(chat))
    elif step == "group":
        groups = list(conversations(export.messages(chat)))
        figures["conversations"] = len(groups)
    else:

        async def queue() -> int:
            store = await Store.open(database, SystemClock())
            try:
                await store.links.link_verified("telegram:1001", "bench-uid")
                target = ImportTarget("telegram:1001", "bench-uid", Address(Platform.TELEGRAM, "1001", "1001"))
                queued = await queue_import(
                    store.imports, SystemClock(), target, source="telegram", chat=chat.id, chat_name=chat.name,
                    messages=export.messages(chat),
                )  # fmt: skip
                return queued.conversations
            finally:
                await store.close()

        figures["conversations"] = asyncio.run(queue())
    figures["total_s"] = time.perf_counter() - started
    figures["rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return figures


def measure(step: str, path: Path, database: str) -> dict[str, float]:
    out = subprocess.run(  # noqa: S603 - our own interpreter and script
        [sys.executable, __file__, "--child", step, str(path), database], capture_output=True, text=True, check=True
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=100_000, help="the export to parse, split and queue")
    parser.add_argument("--megabytes", type=float, default=200.0, help="the big export read for memory (0: skip)")
    parser.add_argument("--child", nargs=3, metavar=("STEP", "FILE", "DATABASE"), help=argparse.SUPPRESS)
    add_engine_arguments(parser)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(*args.child)))
        return 0
    work = Path(tempfile.mkdtemp(prefix="omi-bridge-import-"))
    rows = []
    count, size = generate(work / "result.json", messages=args.messages)
    with BenchDatabase(args.engine, work, args.postgres) as database:
        for step in ("read", "group", "queue"):
            f = measure(step, work / "result.json", database.url)
            rows.append([f"{count:,} messages ({size / 1e6:.0f} MB)", step, f"{f['validate_s']:.1f}",
                         f"{f['total_s']:.1f}", f"{count / f['total_s']:,.0f}", f"{f['rss_mb']:.0f}",
                         f"{f.get('conversations', f.get('messages', 0)):,.0f}"])  # fmt: skip
    if args.megabytes:
        big = work / "big.json"
        count, size = generate(big, megabytes=args.megabytes)
        f = measure("read", big, "")
        rows.append([f"{count:,} messages ({size / 1e6:.0f} MB)", "read", f"{f['validate_s']:.1f}",
                     f"{f['total_s']:.1f}", f"{count / f['total_s']:,.0f}", f"{f['rss_mb']:.0f}",
                     f"{f['messages']:,.0f}"])  # fmt: skip
        big.unlink()
    print(f"\nimport of a generated Telegram export on {BenchDatabase(args.engine, work, args.postgres).describe()}")
    headers = ["export", "step", "validate s", "total s", "messages/s", "peak RSS MB", "out"]
    print(table(headers, rows))
    print("steps: read = validate + read the chat; group = + conversations; queue = + staged and flipped into the DB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
