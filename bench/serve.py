"""`omi-bridge serve` with two knobs for experiments, from the environment:

BENCH_MAX_GROUP        the group commit's cap (`bot.store.database.MAX_GROUP`, read by the writer at every
                       group): 1 makes every write a commit of its own, to measure what sharing commits buys
BENCH_SWITCH_INTERVAL  `sys.setswitchinterval` in seconds (Python's default 0.005): how long the database thread
                       may wait for the GIL behind the event loop after each statement's round trip
BENCH_GC_THRESHOLD     `gc.set_threshold` for generation 0 (Python's default 700): how many allocations between
                       young collections (each also ages objects toward the costly full collections)
BENCH_GC_LOG           1: every collection of generation 2 and how long it stopped the process, printed as it ends
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
    print(f"bench: gc thresholds {gc.get_threshold()}, freeze after {freeze or '-'} s")
    print(f"bench: at most {database.MAX_GROUP} writes per commit, switch interval {sys.getswitchinterval()} s")
    sys.exit(main(["serve", *sys.argv[1:]]))
