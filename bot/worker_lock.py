"""One delivery worker per database: a second bridge on the same database waits, then gives up clearly."""

from __future__ import annotations

import asyncio
import fcntl
import os
import socket
import time
from pathlib import Path

LOCK_WAIT_SECONDS = 60.0


class WorkerLockBusy(Exception):
    """Another process delivers from this database."""


class WorkerLock:
    """An exclusive `flock` on `<database>.worker-lock`: the OS drops it when the holder dies (even kill -9),
    so a restart never waits on a stale lock. The file names the holder, for the message the next one prints."""

    def __init__(self, database_path: str) -> None:
        self.path = None if database_path == ":memory:" else Path(f"{database_path}.worker-lock")
        self._fd: int | None = None

    def try_acquire(self) -> bool:
        if self.path is None or self._fd is not None:
            return True
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        os.ftruncate(fd, 0)
        os.write(
            fd, f"pid {os.getpid()} on {socket.gethostname()} since {time.strftime('%Y-%m-%d %H:%M:%S')}\n".encode()
        )
        self._fd = fd
        return True

    def holder(self) -> str:
        try:
            return self.path.read_text().strip() if self.path is not None else ""
        except OSError:
            return ""

    async def acquire(self, wait: float | None = None) -> None:
        """Take the lock, waiting up to `wait` seconds (default 60) for another holder to stop."""
        deadline = time.monotonic() + (LOCK_WAIT_SECONDS if wait is None else wait)
        while not self.try_acquire():
            if time.monotonic() >= deadline:
                holder = self.holder() or "another process"
                raise WorkerLockBusy(
                    f"another omi-bridge ({holder}) is delivering from this database ({self.path}); "
                    "stop it first, or give this one its own DATABASE_URL"
                )
            await asyncio.sleep(0.5)  # polling a lock file: no event exists to wait on

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None
