"""`omi-bridge serve` with two knobs for experiments, from the environment:

BENCH_MAX_GROUP        the group commit's cap (`bot.store.database.MAX_GROUP`, read by the writer at every
                       group): 1 makes every write a commit of its own, to measure what sharing commits buys
BENCH_SWITCH_INTERVAL  `sys.setswitchinterval` in seconds (Python's default 0.005): how long the database thread
                       may wait for the GIL behind the event loop after each statement's round trip

  BENCH_MAX_GROUP=1 python bench/serve.py      # otherwise the same settings (environment) as `omi-bridge serve`
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import bot.store.database as database
from bot.cli import main

if __name__ == "__main__":
    database.MAX_GROUP = int(os.environ.get("BENCH_MAX_GROUP", database.MAX_GROUP))
    if interval := os.environ.get("BENCH_SWITCH_INTERVAL"):
        sys.setswitchinterval(float(interval))
    print(f"bench: at most {database.MAX_GROUP} writes per commit, switch interval {sys.getswitchinterval()} s")
    sys.exit(main(["serve", *sys.argv[1:]]))
