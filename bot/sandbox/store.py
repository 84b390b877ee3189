"""The sandbox's SQLite persistence: apps, key hashes, enabled uids, conversations, memories, notifications."""

from __future__ import annotations

import contextlib
import json
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

_SCHEMA = """
CREATE TABLE IF NOT EXISTS apps (
    app_id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    capabilities TEXT NOT NULL,
    setup_completed_url TEXT,
    created_at REAL NOT NULL
);
-- Keys outlive their app's record on purpose: deleting an app is how the 404 `App not found` row is reached.
CREATE TABLE IF NOT EXISTS api_keys (
    key_hash TEXT PRIMARY KEY,
    app_id TEXT NOT NULL,
    created_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS enabled_apps (
    uid TEXT NOT NULL,
    app_id TEXT NOT NULL,
    PRIMARY KEY (uid, app_id)
);
CREATE TABLE IF NOT EXISTS conversations (
    id TEXT PRIMARY KEY,
    uid TEXT NOT NULL,
    created_us INTEGER NOT NULL,
    status TEXT NOT NULL,
    discarded INTEGER NOT NULL,
    body TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS conversations_by_uid ON conversations (uid, created_us);
CREATE TABLE IF NOT EXISTS memories (
    uid TEXT NOT NULL,
    id TEXT NOT NULL,
    manually_added INTEGER NOT NULL,
    created_us INTEGER NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (uid, id)
);
CREATE TABLE IF NOT EXISTS extracted_sources (
    app_id TEXT NOT NULL,
    uid TEXT NOT NULL,
    source_id TEXT NOT NULL,
    PRIMARY KEY (app_id, uid, source_id)
);
CREATE TABLE IF NOT EXISTS notifications (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    app_id TEXT NOT NULL,
    uid TEXT NOT NULL,
    message TEXT NOT NULL,
    created_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
"""


@dataclass(frozen=True)
class AppRecord:
    app_id: str
    name: str
    capabilities: tuple[str, ...]
    setup_completed_url: str | None


@dataclass(frozen=True)
class StoredMemory:
    """A memory row to write: `body` is the MemoryItem dict; `created_us` orders reads."""

    id: str
    manually_added: bool
    created_us: int
    body: dict[str, Any]


class SandboxStore:
    """Synchronous sqlite3 access, used from the event loop thread only (each call is well under a millisecond)."""

    def __init__(self, path: str = ":memory:") -> None:
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA busy_timeout = 5000")
        if path != ":memory:" and not path.startswith("file::memory:"):
            self._db.execute("PRAGMA journal_mode = WAL")
            self._db.execute("PRAGMA synchronous = NORMAL")
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        self._db.close()

    def _write(self, sql: str, args: Sequence[Any] = ()) -> int:
        return self._db.execute(sql, args).rowcount

    # --- apps and keys ------------------------------------------------------------------------------

    def add_app(self, record: AppRecord, now: float) -> None:
        self._write(
            "INSERT INTO apps (app_id, name, capabilities, setup_completed_url, created_at) VALUES (?, ?, ?, ?, ?)",
            (record.app_id, record.name, json.dumps(list(record.capabilities)), record.setup_completed_url, now),
        )

    def app(self, app_id: str) -> AppRecord | None:
        row = self._db.execute(
            "SELECT app_id, name, capabilities, setup_completed_url FROM apps WHERE app_id = ?", (app_id,)
        ).fetchone()
        if row is None:
            return None
        return AppRecord(row[0], row[1], tuple(json.loads(row[2])), row[3])

    def delete_app(self, app_id: str) -> bool:
        return self._write("DELETE FROM apps WHERE app_id = ?", (app_id,)) > 0

    def set_capabilities(self, app_id: str, capabilities: Iterable[str]) -> bool:
        return (
            self._write("UPDATE apps SET capabilities = ? WHERE app_id = ?", (json.dumps(list(capabilities)), app_id))
            > 0
        )

    def set_setup_completed_url(self, app_id: str, url: str | None) -> bool:
        return self._write("UPDATE apps SET setup_completed_url = ? WHERE app_id = ?", (url, app_id)) > 0

    def add_key(self, app_id: str, key_hash: str, now: float) -> None:
        self._write("INSERT INTO api_keys (key_hash, app_id, created_at) VALUES (?, ?, ?)", (key_hash, app_id, now))

    def key_matches(self, app_id: str, key_hash: str) -> bool:
        row = self._db.execute(
            "SELECT 1 FROM api_keys WHERE key_hash = ? AND app_id = ?", (key_hash, app_id)
        ).fetchone()
        return row is not None

    def set_enabled(self, app_id: str, uid: str, enabled: bool) -> None:
        if enabled:
            self._write("INSERT OR IGNORE INTO enabled_apps (uid, app_id) VALUES (?, ?)", (uid, app_id))
        else:
            self._write("DELETE FROM enabled_apps WHERE uid = ? AND app_id = ?", (uid, app_id))

    def is_enabled(self, app_id: str, uid: str) -> bool:
        row = self._db.execute("SELECT 1 FROM enabled_apps WHERE uid = ? AND app_id = ?", (uid, app_id)).fetchone()
        return row is not None

    # --- conversations ------------------------------------------------------------------------------

    def add_conversation(self, uid: str, created_us: int, body: dict[str, Any]) -> None:
        self._write(
            "INSERT INTO conversations (id, uid, created_us, status, discarded, body) VALUES (?, ?, ?, ?, ?, ?)",
            (body["id"], uid, created_us, body["status"], int(body["discarded"]), json.dumps(body)),
        )

    def conversations(
        self,
        uid: str,
        *,
        include_discarded: bool = True,
        statuses: Sequence[str] = (),
        start_us: int | None = None,
        end_us: int | None = None,
        limit: int | None = None,
        offset: int = 0,
    ) -> list[dict[str, Any]]:
        """Newest `created_at` first (ties: the later write first), then offset and limit."""
        sql = "SELECT body FROM conversations WHERE uid = ?"
        args: list[Any] = [uid]
        if not include_discarded:
            sql += " AND discarded = 0"
        if statuses:
            sql += f" AND status IN ({', '.join('?' * len(statuses))})"
            args += list(statuses)
        if start_us is not None:
            sql += " AND created_us >= ?"
            args.append(start_us)
        if end_us is not None:
            sql += " AND created_us <= ?"
            args.append(end_us)
        sql += " ORDER BY created_us DESC, rowid DESC LIMIT ? OFFSET ?"
        args += [-1 if limit is None else limit, offset]
        return [json.loads(row[0]) for row in self._db.execute(sql, args)]

    # --- memories -----------------------------------------------------------------------------------

    def memory_created(self, uid: str, ids: Iterable[str]) -> dict[str, int]:
        """`created_us` of those of `ids` already stored for `uid` (an overwrite keeps its creation time)."""
        found: dict[str, int] = {}
        for memory_id in set(ids):
            row = self._db.execute(
                "SELECT created_us FROM memories WHERE uid = ? AND id = ?", (uid, memory_id)
            ).fetchone()
            if row is not None:
                found[memory_id] = row[0]
        return found

    def put_memories(self, uid: str, memories: Sequence[StoredMemory]) -> None:
        """Insert or replace, all in one transaction (Omi writes a request's memories in one batch)."""
        with self._transaction():
            self._db.executemany(
                "INSERT OR REPLACE INTO memories (uid, id, manually_added, created_us, body) VALUES (?, ?, ?, ?, ?)",
                [(uid, m.id, int(m.manually_added), m.created_us, json.dumps(m.body)) for m in memories],
            )

    def memories(self, uid: str, *, limit: int | None = None, offset: int = 0) -> list[dict[str, Any]]:
        """Manual memories first, then newest `created_at` first (ties: the later write first)."""
        rows = self._db.execute(
            "SELECT body FROM memories WHERE uid = ? "
            "ORDER BY manually_added DESC, created_us DESC, rowid DESC LIMIT ? OFFSET ?",
            (uid, -1 if limit is None else limit, offset),
        )
        return [json.loads(row[0]) for row in rows]

    def claim_source(self, app_id: str, uid: str, source_id: str) -> bool:
        """Record that `source_id` was extracted; False when it already was (the extraction is skipped)."""
        return (
            self._write(
                "INSERT OR IGNORE INTO extracted_sources (app_id, uid, source_id) VALUES (?, ?, ?)",
                (app_id, uid, source_id),
            )
            > 0
        )

    # --- notifications and meta ---------------------------------------------------------------------

    def add_notification(self, app_id: str, uid: str, message: str, now: float) -> None:
        self._write(
            "INSERT INTO notifications (app_id, uid, message, created_at) VALUES (?, ?, ?, ?)",
            (app_id, uid, message, now),
        )

    def notifications(self, uid: str | None = None) -> list[dict[str, Any]]:
        """Oldest first, the order they were sent in."""
        sql = "SELECT app_id, uid, message, created_at FROM notifications"
        args: tuple[Any, ...] = ()
        if uid is not None:
            sql += " WHERE uid = ?"
            args = (uid,)
        rows = self._db.execute(sql + " ORDER BY id", args)
        return [{"app_id": r[0], "uid": r[1], "message": r[2], "created_at": r[3]} for r in rows]

    def meta(self, key: str) -> str | None:
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else row[0]

    def set_meta(self, key: str, value: str) -> None:
        self._write("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, value))

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[None]:
        self._db.execute("BEGIN")
        try:
            yield
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")
