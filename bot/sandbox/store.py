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
    created_at REAL NOT NULL,
    private INTEGER NOT NULL DEFAULT 0,
    owner TEXT,
    webhook_url TEXT
);
CREATE TABLE IF NOT EXISTS app_testers (
    app_id TEXT NOT NULL,
    uid TEXT NOT NULL,
    PRIMARY KEY (app_id, uid)
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
    scoring TEXT NOT NULL DEFAULT '',
    updated_us INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (uid, id)
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


#: Columns added after the first release, for `--db` files made by it: (table, column, declaration, backfill SQL).
_ADDED_COLUMNS = (
    ("apps", "private", "INTEGER NOT NULL DEFAULT 0", None),
    ("apps", "owner", "TEXT", None),
    ("apps", "webhook_url", "TEXT", None),
    (
        "memories",
        "scoring",
        "TEXT NOT NULL DEFAULT ''",
        "UPDATE memories SET scoring = json_extract(body, '$.scoring')",
    ),
    ("memories", "updated_us", "INTEGER NOT NULL DEFAULT 0", "UPDATE memories SET updated_us = created_us"),
)


@dataclass(frozen=True)
class AppRecord:
    app_id: str
    name: str
    capabilities: tuple[str, ...]
    setup_completed_url: str | None
    private: bool = False
    owner: str | None = None
    webhook_url: str | None = None


@dataclass(frozen=True)
class StoredMemory:
    """A memory row to write: `body` is the MemoryItem dict; `scoring` and the times order reads."""

    id: str
    manually_added: bool
    created_us: int
    body: dict[str, Any]
    scoring: str = ""
    updated_us: int = 0


class SandboxStore:
    """Synchronous sqlite3 access, used from the event loop thread only (each call is well under a millisecond)."""

    def __init__(self, path: str = ":memory:") -> None:
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA busy_timeout = 5000")
        if path != ":memory:" and not path.startswith("file::memory:"):
            self._db.execute("PRAGMA journal_mode = WAL")
            self._db.execute("PRAGMA synchronous = NORMAL")
        self._db.executescript(_SCHEMA)
        self._add_missing_columns()

    def close(self) -> None:
        self._db.close()

    def _write(self, sql: str, args: Sequence[Any] = ()) -> int:
        return self._db.execute(sql, args).rowcount

    def _add_missing_columns(self) -> None:
        for table, column, declaration, backfill in _ADDED_COLUMNS:
            present = {row[1] for row in self._db.execute(f"PRAGMA table_info({table})")}
            if column not in present:
                with self._transaction():
                    self._db.execute(f"ALTER TABLE {table} ADD COLUMN {column} {declaration}")
                    if backfill:
                        self._db.execute(backfill)

    # --- apps and keys ------------------------------------------------------------------------------

    def add_app(self, record: AppRecord, now: float) -> None:
        self._write(
            "INSERT INTO apps"
            " (app_id, name, capabilities, setup_completed_url, created_at, private, owner, webhook_url)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                record.app_id,
                record.name,
                json.dumps(list(record.capabilities)),
                record.setup_completed_url,
                now,
                int(record.private),
                record.owner,
                record.webhook_url,
            ),
        )

    def app(self, app_id: str) -> AppRecord | None:
        row = self._db.execute(
            "SELECT app_id, name, capabilities, setup_completed_url, private, owner, webhook_url FROM apps"
            " WHERE app_id = ?",
            (app_id,),
        ).fetchone()
        if row is None:
            return None
        return AppRecord(row[0], row[1], tuple(json.loads(row[2])), row[3], bool(row[4]), row[5], row[6])

    def delete_app(self, app_id: str) -> bool:
        return self._write("DELETE FROM apps WHERE app_id = ?", (app_id,)) > 0

    def set_capabilities(self, app_id: str, capabilities: Iterable[str]) -> bool:
        return (
            self._write("UPDATE apps SET capabilities = ? WHERE app_id = ?", (json.dumps(list(capabilities)), app_id))
            > 0
        )

    def set_setup_completed_url(self, app_id: str, url: str | None) -> bool:
        return self._write("UPDATE apps SET setup_completed_url = ? WHERE app_id = ?", (url, app_id)) > 0

    def set_webhook_url(self, app_id: str, url: str | None) -> bool:
        return self._write("UPDATE apps SET webhook_url = ? WHERE app_id = ?", (url, app_id)) > 0

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

    def enabled_apps(self, uid: str) -> list[AppRecord]:
        """The apps `uid` has enabled that still exist, oldest first."""
        rows = self._db.execute(
            "SELECT apps.app_id FROM enabled_apps JOIN apps ON apps.app_id = enabled_apps.app_id"
            " WHERE enabled_apps.uid = ? ORDER BY apps.created_at, apps.rowid",
            (uid,),
        ).fetchall()
        return [app for (app_id,) in rows if (app := self.app(app_id)) is not None]

    def set_tester(self, app_id: str, uid: str, tester: bool) -> None:
        if tester:
            self._write("INSERT OR IGNORE INTO app_testers (app_id, uid) VALUES (?, ?)", (app_id, uid))
        else:
            self._write("DELETE FROM app_testers WHERE app_id = ? AND uid = ?", (app_id, uid))

    def is_tester(self, app_id: str, uid: str) -> bool:
        row = self._db.execute("SELECT 1 FROM app_testers WHERE app_id = ? AND uid = ?", (app_id, uid)).fetchone()
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
                "INSERT OR REPLACE INTO memories (uid, id, manually_added, created_us, body, scoring, updated_us)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                [
                    (uid, m.id, int(m.manually_added), m.created_us, json.dumps(m.body), m.scoring, m.updated_us)
                    for m in memories
                ],
            )

    def memories(
        self, uid: str, *, limit: int | None = None, offset: int = 0, newest_updated_first: bool = False
    ) -> list[dict[str, Any]]:
        """By `scoring` (manual, then explicit before extracted, then newest), or by newest `updated_at`.

        Ties go to the later write.
        """
        order = "updated_us DESC" if newest_updated_first else "scoring DESC, created_us DESC"
        rows = self._db.execute(
            f"SELECT body FROM memories WHERE uid = ? ORDER BY {order}, rowid DESC LIMIT ? OFFSET ?",  # noqa: S608
            (uid, -1 if limit is None else limit, offset),
        )
        return [json.loads(row[0]) for row in rows]

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
