"""`omi-bridge serve` with two knobs for experiments, from the environment:

BENCH_MAX_GROUP        the group commit's cap (`bot.store.database.MAX_GROUP`, read by the writer at every
                       group): 1 makes every write a commit of its own, to measure what sharing commits buys
BENCH_SWITCH_INTERVAL  `sys.setswitchinterval` in seconds (Python's default 0.005): how long the database thread
                       may wait for the GIL behind the event loop after each statement's round trip
BENCH_GC_THRESHOLD     `gc.set_threshold` for generation 0 (Python's default 700): how many allocations between
                       young collections (each also ages objects toward the costly full collections)
BENCH_GC_LOG           1: every collection of generation 2 and how long it stopped the process, printed as it ends
BENCH_LAG_TRACE        milliseconds: each time the event loop is held longer than this (its 2-ms heartbeat late), the
                       main thread's stack is sampled while it is held; at exit, the stalls' most common stacks
BENCH_GC_FREEZE        seconds after the start at which `gc.freeze()` moves everything alive (the imports, the
                       bridge's long-lived objects) out of the collector's sight

  BENCH_MAX_GROUP=1 python bench/serve.py      # otherwise the same settings (environment) as `omi-bridge serve`
"""

from __future__ import annotations

import gc
import os
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import bot.store.database as database
from bot.cli import main


def _trace_lag(threshold: float) -> None:
    """A heartbeat on the loop every 2 ms; a thread that, when the heartbeat is late by more than `threshold`,
    samples the main thread's stack (once per stall) — what held the loop — and prints a summary at exit."""
    import asyncio
    import atexit
    import collections
    import traceback

    import uvloop

    beat = [time.monotonic()]
    stalls: collections.Counter[str] = collections.Counter()
    longest: dict[str, float] = {}
    main_id = threading.main_thread().ident
    made = uvloop.new_event_loop

    def new_loop() -> asyncio.AbstractEventLoop:
        loop = made()

        def heartbeat() -> None:
            beat[0] = time.monotonic()
            loop.call_later(0.002, heartbeat)

        loop.call_soon(heartbeat)
        return loop

    def watch() -> None:
        while True:
            time.sleep(0.002)
            held = time.monotonic() - beat[0]
            if held < threshold:
                continue
            frame = sys._current_frames().get(main_id)
            stack = traceback.extract_stack(frame)[-12:] if frame is not None else []
            key = " < ".join(f"{f.name} ({os.path.basename(f.filename)}:{f.lineno})" for f in reversed(stack))
            stalls[key] += 1
            started = beat[0]
            while beat[0] == started:  # one sample per stall
                time.sleep(0.001)
            longest[key] = max(longest.get(key, 0.0), time.monotonic() - started)

    def report() -> None:
        print(f"bench: {sum(stalls.values())} stalls over {threshold * 1000:.0f} ms", flush=True)
        for key, count in stalls.most_common(12):
            print(f"bench: stall x{count}, longest {longest.get(key, 0) * 1000:.0f} ms: {key}", flush=True)

    uvloop.new_event_loop = new_loop
    threading.Thread(target=watch, daemon=True).start()
    atexit.register(report)


if __name__ == "__main__":
    database.MAX_GROUP = int(os.environ.get("BENCH_MAX_GROUP", database.MAX_GROUP))
    if interval := os.environ.get("BENCH_SWITCH_INTERVAL"):
        sys.setswitchinterval(float(interval))
    if threshold := os.environ.get("BENCH_GC_THRESHOLD"):
        gc.set_threshold(int(threshold), *gc.get_threshold()[1:])
    if freeze := os.environ.get("BENCH_GC_FREEZE"):
        threading.Timer(float(freeze), lambda: (gc.collect(), gc.freeze())).start()
    if os.environ.get("BENCH_GC_LOG"):
        started: list[float] = []

        def timed(phase: str, info: dict) -> None:
            if info.get("generation") != 2:
                return
            if phase == "start":
                started[:] = [time.perf_counter()]
            elif started:
                ms = (time.perf_counter() - started[0]) * 1000
                tracked = len(gc.get_objects())
                print(f"bench: gc gen2 {ms:.1f} ms, {info.get('collected')} collected, {tracked} tracked", flush=True)

        gc.callbacks.append(timed)
    if lag := os.environ.get("BENCH_LAG_TRACE"):
        _trace_lag(float(lag) / 1000)
    print(f"bench: gc thresholds {gc.get_threshold()}, freeze after {freeze or '-'} s")
    print(f"bench: at most {database.MAX_GROUP} writes per commit, switch interval {sys.getswitchinterval()} s")
    sys.exit(main(["serve", *sys.argv[1:]]))
