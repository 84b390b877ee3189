"""Live messages first (SPEC §10): once a 429 has shown a uid's limit L per window, its imports send at most L − 3
per window. One row per (uid, kind): the limit, the end of the window being counted, the import items sent in it."""

from __future__ import annotations

from bot.store.database import Conn, Database

#: Sends per window an import leaves to live messages.
RESERVE = 3
#: Omi's create windows are an hour (behaviour notes §1: fixed windows of 3600 s).
WINDOW_SECONDS = 3600.0

#: SQL (needs `outbox` in scope, and `now` as the one parameter): this import item's uid has used its imports'
#: share of the current window.
IMPORTS_SPENT = (
    "EXISTS (SELECT 1 FROM send_windows AS w WHERE w.uid = outbox.uid AND w.kind = outbox.kind"  # noqa: S608
    f" AND w.ends_at > ? AND w.imports_sent >= CASE WHEN w.max_sends > {RESERVE} THEN w.max_sends - {RESERVE}"
    " ELSE 1 END)"
)


def learn(conn: Conn, uid: str, kind: str, limit: int, window_ends_at: float) -> None:
    """A 429 said the limit and when its window ends: the next window (from then) starts with no import sent."""
    conn.execute(
        "INSERT INTO send_windows (uid, kind, max_sends, ends_at, imports_sent) VALUES (?, ?, ?, ?, 0)"
        " ON CONFLICT (uid, kind) DO UPDATE SET max_sends = excluded.max_sends, ends_at = excluded.ends_at,"
        " imports_sent = 0",
        (uid, kind, limit, window_ends_at + WINDOW_SECONDS),
    )


def count_import(conn: Conn, uid: str, kind: str, now: float) -> None:
    """An import item of `uid` was sent now: counted in the window now falls in (rolled forward when it ended)."""
    row = conn.execute("SELECT ends_at FROM send_windows WHERE uid = ? AND kind = ?", (uid, kind)).fetchone()
    if row is None:
        return  # no 429 has shown the limit yet: nothing to count against
    ends_at = float(row[0])
    if ends_at <= now:
        ends_at += WINDOW_SECONDS * (int((now - ends_at) // WINDOW_SECONDS) + 1)
        conn.execute(
            "UPDATE send_windows SET ends_at = ?, imports_sent = 1 WHERE uid = ? AND kind = ?", (ends_at, uid, kind)
        )
        return
    conn.execute("UPDATE send_windows SET imports_sent = imports_sent + 1 WHERE uid = ? AND kind = ?", (uid, kind))


async def import_share(db: Database, uid: str, kind: str = "conversation") -> int | None:
    """Import sends a window allows for `uid` (L − 3), once a 429 has shown L; None while unknown."""
    row = await db.fetchone("SELECT max_sends FROM send_windows WHERE uid = ? AND kind = ?", (uid, kind))
    if row is None:
        return None
    limit = int(row["max_sends"])
    return limit - RESERVE if limit > RESERVE else 1
