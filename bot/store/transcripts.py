"""Transcription jobs (SPEC §11): one row per voice message, keyed by the message, so the transcript is paid for once
— a replayed inbox row, a restart, another instance all find it here. Who runs a job is the lease
`transcribe:<key>` (bot/store/leases.py); every outcome is written only while that lease is still the writer's."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from bot.store.database import Conn, Database
from bot.store.leases import Lease, Leases


class JobState(StrEnum):
    PENDING = "pending"
    DONE = "done"  # `text` is what was heard
    FAILED = "failed"  # `text` is why nothing was (a fixed, user-safe phrase)


@dataclass(frozen=True, slots=True)
class Job:
    key: str
    account: str
    state: JobState
    text: str | None
    attempts: int
    first_attempt_at: float | None
    next_attempt_at: float

    @property
    def finished(self) -> bool:
        return self.state is not JobState.PENDING


def lease_name(key: str) -> str:
    return f"transcribe:{key}"


def _job(row: Any) -> Job:
    return Job(
        key=row["key"],
        account=row["account"],
        state=JobState(row["state"]),
        text=row["text"],
        attempts=int(row["attempts"]),
        first_attempt_at=row["first_attempt_at"],
        next_attempt_at=float(row["next_attempt_at"]),
    )


_COLUMNS = "key, account, state, text, attempts, first_attempt_at, next_attempt_at"


class Transcripts:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def want(self, key: str, account: str, now: float) -> Job:
        """The job for `key`: a new pending one, due now, or the one already there (whatever its state)."""

        def work(conn: Conn) -> Job:
            conn.execute(
                "INSERT INTO transcripts (key, account, next_attempt_at, created_at) VALUES (?, ?, ?, ?)"
                " ON CONFLICT (key) DO NOTHING",
                (key, account, now, now),
            )
            row = conn.execute(f"SELECT {_COLUMNS} FROM transcripts WHERE key = ?", (key,)).fetchone()  # noqa: S608
            return _job(row)

        return await self._db.write(work)

    async def get(self, key: str) -> Job | None:
        row = await self._db.fetchone(f"SELECT {_COLUMNS} FROM transcripts WHERE key = ?", (key,))  # noqa: S608
        return _job(row) if row is not None else None

    async def take(self, key: str, owner: str, seconds: float) -> Lease | None:
        """The job's lease, when no other instance holds it (a dead one's has expired)."""
        now_sql = self._db.now_sql
        return await self._db.write(lambda conn: Leases.take(conn, now_sql, lease_name(key), owner, seconds))

    async def renew(self, lease: Lease, seconds: float) -> bool:
        now_sql = self._db.now_sql
        return await self._db.write(lambda conn: Leases.renew(conn, now_sql, lease, seconds))

    async def release(self, lease: Lease) -> None:
        await self._db.write(lambda conn: Leases.release(conn, lease))

    async def started(self, lease: Lease, key: str, now: float) -> bool:
        """An attempt begins: counted first (a crash mid-request still counts it). False: no longer ours."""

        def work(conn: Conn) -> bool:
            if not Leases.held(conn, lease):
                return False
            return bool(
                conn.execute(
                    "UPDATE transcripts SET attempts = attempts + 1,"
                    " first_attempt_at = COALESCE(first_attempt_at, ?) WHERE key = ? AND state = 'pending'",
                    (now, key),
                ).rowcount
            )

        return await self._db.write(work)

    async def retry_at(self, lease: Lease, key: str, at: float) -> bool:
        def work(conn: Conn) -> bool:
            if not Leases.held(conn, lease):
                return False
            return bool(
                conn.execute(
                    "UPDATE transcripts SET next_attempt_at = ? WHERE key = ? AND state = 'pending'", (at, key)
                ).rowcount
            )

        return await self._db.write(work)

    async def finish(self, lease: Lease, key: str, state: JobState, text: str, now: float) -> bool:
        """Record the outcome (done with the transcript, or failed with the reason), once, by the lease holder."""

        def work(conn: Conn) -> bool:
            if not Leases.held(conn, lease):
                return False
            done = conn.execute(
                "UPDATE transcripts SET state = ?, text = ?, finished_at = ? WHERE key = ? AND state = 'pending'",
                (state.value, text, now, key),
            ).rowcount
            Leases.release(conn, lease)
            return bool(done)

        return await self._db.write(work)

    @staticmethod
    def forget(conn: Conn, keys: Iterable[str]) -> None:
        """Inside the transaction that stores their burst: the transcripts are in the outbox item now."""
        for key in keys:
            conn.execute("DELETE FROM transcripts WHERE key = ?", (key,))

    @staticmethod
    def purge(conn: Conn, before: float) -> None:
        """Housekeeping: jobs whose message was never stored with a burst (its row dropped) after a day."""
        conn.execute("DELETE FROM transcripts WHERE created_at < ?", (before,))
