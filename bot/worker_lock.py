"""Who may work on a database. SQLite: one delivery worker per file — a second bridge waits, then gives up clearly
(a lock file beside the database). PostgreSQL: any number of `serve` instances share the work (each holds the
advisory lock *shared*), while `migrate-db` needs it exclusive — it refuses a target that any instance runs on, and
an instance starting meanwhile waits for it."""

from __future__ import annotations

import asyncio
import fcntl
import os
import socket
import time
from pathlib import Path
from typing import Any

import psycopg

LOCK_WAIT_SECONDS = 60.0


class WorkerLockBusy(Exception):
    """Another process delivers from this database."""


class _Waiting:
    async def acquire(self, wait: float | None = None) -> None:
        """Take the lock, waiting up to `wait` seconds (default 60) for another holder to stop."""
        deadline = time.monotonic() + (LOCK_WAIT_SECONDS if wait is None else wait)
        while not self.try_acquire():
            if time.monotonic() >= deadline:
                holder = self.holder() or "another process"
                raise WorkerLockBusy(
                    f"another omi-bridge ({holder}) is delivering from this database ({self.where}); "
                    "stop it first, or give this one its own DATABASE_URL"
                )
            await asyncio.sleep(0.5)  # polling a lock: no event exists to wait on

    def try_acquire(self) -> bool:
        raise NotImplementedError

    def holder(self) -> str:
        raise NotImplementedError

    @property
    def where(self) -> str:
        raise NotImplementedError


class WorkerLock(_Waiting):
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

    @property
    def where(self) -> str:
        return str(self.path)

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    # --- asking the holder to hand over (an `omi-bridge import` delivering gives way to a starting `serve`) ---

    @property
    def _wanted_path(self) -> Path | None:
        return None if self.path is None else self.path.with_name(self.path.name.replace("-lock", "-wanted"))

    def want(self) -> None:
        """Say that this process waits for the lock (the holder, if it is an import, lets go within seconds)."""
        if self._wanted_path is not None:
            self._wanted_path.touch()

    def unwant(self) -> None:
        if self._wanted_path is not None:
            self._wanted_path.unlink(missing_ok=True)

    def wanted(self) -> bool:
        return self._wanted_path is not None and self._wanted_path.exists()


#: The advisory lock's key (any constant the same for every instance).
POSTGRES_LOCK_KEY = 0x0B1D6F


class PostgresWorkerLock(_Waiting):
    """A session advisory lock, held on a connection of its own: PostgreSQL drops it when the holder's connection
    goes (a crash, kill -9), so a restart never waits on a stale lock. `shared`: as every `serve` takes it (they
    coexist); exclusive: as `migrate-db` does (alone, and no `serve` meanwhile)."""

    def __init__(self, url: str, shown_as: str, *, shared: bool = False) -> None:
        self._url = url
        self._shared = shared
        self._shown_as = shown_as  # the URL with its password masked
        self._conn: psycopg.Connection[Any] | None = None
        self._name = f"omi-bridge worker pid {os.getpid()} on {socket.gethostname()}"

    @property
    def where(self) -> str:
        return self._shown_as

    def try_acquire(self) -> bool:
        if self._conn is not None:
            return True
        conn = psycopg.connect(self._url, autocommit=True, connect_timeout=5, application_name=self._name[:63])
        # Keyed by the schema too: several bridges may live in one database, each in a schema of its own.
        function = "pg_try_advisory_lock_shared" if self._shared else "pg_try_advisory_lock"
        row = conn.execute(
            f"SELECT {function}(%s, hashtext(current_schema()))",
            (POSTGRES_LOCK_KEY,),
        ).fetchone()
        if row is None or not row[0]:
            conn.close()
            return False
        self._conn = conn
        return True

    def holder(self) -> str:
        try:
            with psycopg.connect(self._url, autocommit=True, connect_timeout=5) as conn:
                row = conn.execute(
                    "SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid"
                    " WHERE l.locktype = 'advisory' AND l.classid = %s AND l.database ="
                    " (SELECT oid FROM pg_database WHERE datname = current_database()) AND l.granted LIMIT 1",
                    (POSTGRES_LOCK_KEY,),
                ).fetchone()
        except psycopg.Error:
            return ""
        return str(row[0]) if row and row[0] else ""

    def release(self) -> None:
        if self._conn is not None:
            conn, self._conn = self._conn, None
            # Unlocked explicitly first: closing alone lets the server end the session (and free the lock) a moment
            # later, and a `migrate-db` or an instance trying right after would find it still held.
            function = "pg_advisory_unlock_shared" if self._shared else "pg_advisory_unlock"
            try:
                conn.execute(f"SELECT {function}(%s, hashtext(current_schema()))", (POSTGRES_LOCK_KEY,))
            except psycopg.Error:
                pass  # the connection is gone already: so is its lock
            conn.close()

    def others(self) -> int:
        """How many other sessions hold this lock (while we hold it): `serve` instances working on the database."""
        if self._conn is None:
            return 0
        row = self._conn.execute(
            "SELECT COUNT(*) FROM pg_locks WHERE locktype = 'advisory' AND granted AND classid = %s"
            " AND objid = hashtext(current_schema())::oid AND pid <> pg_backend_pid()"
            " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
            (POSTGRES_LOCK_KEY,),
        ).fetchone()
        return int(row[0]) if row else 0
