"""Which process this is among several sharing one database (SPEC §13): named once per start."""

from __future__ import annotations

import os
import secrets
import socket
import time
from collections.abc import Callable

from bot.store.database import Database


def instance_name() -> str:
    """Host, pid and a random part: a restart is a new instance, so a lease of the previous run is never its own."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


#: An instance clock further than this from the database's is worth a WARN (SPEC §13): leases use the database's.
CLOCK_OFFSET_WARN_SECONDS = 1.0


async def clock_offset(db: Database, wall: Callable[[], float] = time.time) -> float:
    """How far this machine's clock (`wall`) is ahead (+) or behind (−) the database's, in seconds: the
    database's clock read once, against the middle of the round trip on ours."""
    before = wall()
    theirs = await db.clock() - db.clock_skew
    after = wall()
    return (before + after) / 2 - theirs
