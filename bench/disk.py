"""The disk's own limit: how many commits per second SQLite makes here with the bridge's settings (WAL,
`synchronous=FULL`: each commit waits for the disk), one writer, one 700-byte row per commit — no Python server
around it. The ack bench's figures are read against this and the bare route.

    python bench/disk.py [--commits 5000] [--dir DIR]
"""

from __future__ import annotations

import argparse
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

ROW = "x" * 700


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--commits", type=int, default=5000)
    parser.add_argument("--dir", default=None, help="where the database file goes (default: a temporary directory)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=args.dir) as work:
        conn = sqlite3.connect(Path(work) / "disk.db", isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, payload TEXT)")
        started = time.perf_counter()
        for _ in range(args.commits):
            conn.execute("BEGIN IMMEDIATE")
            conn.execute("INSERT INTO t (payload) VALUES (?)", (ROW,))
            conn.execute("COMMIT")
        seconds = time.perf_counter() - started
        conn.close()
    print(f"SQLite {sqlite3.sqlite_version}, WAL, synchronous=FULL, one writer, a 700-byte row per commit:")
    print(f"{args.commits / seconds:,.0f} commits/s, {1000 * seconds / args.commits:.3f} ms each")
    return 0


if __name__ == "__main__":
    sys.exit(main())
