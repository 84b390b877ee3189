"""Versioned schema migrations (mautrix's upgrade table): each runs once, in order, at start."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass

from pydantic import ValidationError

from bot.store.writes import ItemKind, decode_write, encode_write


@dataclass(frozen=True)
class Migration:
    version: int
    description: str
    sql: str
    #: Runs after `sql`, in the same transaction: for rewrites SQL cannot express.
    rewrite: Callable[[sqlite3.Connection], None] | None = None


def _typed_payloads(conn: sqlite3.Connection) -> None:
    """Payloads queued by v1 were loose dicts; rewrite each open one as the typed Omi write of its kind. One that
    does not validate is left as it was: the worker fails it for good with the reason when it comes up (and tells
    the user, which a migration cannot)."""
    rows = conn.execute("SELECT id, kind, payload FROM outbox WHERE state NOT IN ('done', 'failed')").fetchall()
    for item_id, kind, payload in rows:
        try:
            item_kind = ItemKind(kind)
            legacy = json.loads(payload)
            write = decode_write(item_kind, json.dumps(legacy if isinstance(legacy, dict) else {}))
            conn.execute("UPDATE outbox SET payload = ? WHERE id = ?", (encode_write(item_kind, write), item_id))
        except (ValueError, ValidationError):
            continue


MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1,
        "initial schema: settings, links, claims, link tokens, inbox, dedupe, outbox",
        """
        CREATE TABLE settings (
            key   TEXT PRIMARY KEY,
            value TEXT NOT NULL
        );

        -- A chat account tied to an Omi uid. At most one claimed and one verified row per account:
        -- a new claim does not disturb a verified link until it is verified itself.
        CREATE TABLE links (
            account     TEXT NOT NULL,             -- "telegram:12345"
            state       TEXT NOT NULL CHECK (state IN ('claimed', 'verified')),
            uid         TEXT NOT NULL,
            platform    TEXT NOT NULL,
            user_id     TEXT NOT NULL,
            handle_hint TEXT NOT NULL DEFAULT '',  -- last two characters only, for the masked home page
            created_at  REAL NOT NULL,
            verified_at REAL,
            PRIMARY KEY (account, state)
        );
        CREATE INDEX links_uid ON links (uid);

        -- Verification codes of claimed links (the next issue fills these in).
        CREATE TABLE claims (
            account         TEXT PRIMARY KEY,
            uid             TEXT NOT NULL,
            code_hash       TEXT,
            code_expires_at REAL,
            wrong_attempts  INTEGER NOT NULL DEFAULT 0,
            created_at      REAL NOT NULL
        );
        CREATE TABLE codes_sent (
            uid     TEXT NOT NULL,
            sent_at REAL NOT NULL
        );
        CREATE INDEX codes_sent_uid ON codes_sent (uid, sent_at);

        CREATE TABLE link_tokens (
            token_hash TEXT PRIMARY KEY,
            uid        TEXT NOT NULL,
            created_at REAL NOT NULL,
            expires_at REAL NOT NULL,
            used_at    REAL
        );
        CREATE INDEX link_tokens_uid ON link_tokens (uid, expires_at);

        -- Accepted platform payloads. A row is 'new' until its effects are committed with it marked 'done'
        -- (same transaction), so replay after a crash is idempotent. Payloads are cleared once done.
        CREATE TABLE inbox (
            id          INTEGER PRIMARY KEY,
            platform    TEXT NOT NULL,
            kind        TEXT NOT NULL,
            payload     TEXT,
            received_at REAL NOT NULL,
            state       TEXT NOT NULL DEFAULT 'new' CHECK (state IN ('new', 'done'))
        );
        CREATE INDEX inbox_new ON inbox (state, id);

        -- Ids already seen (Telegram update_id, (chat, message), Slack event_id...), kept 7 days.
        CREATE TABLE dedupe (
            key        TEXT PRIMARY KEY,
            expires_at REAL NOT NULL
        ) WITHOUT ROWID;
        CREATE INDEX dedupe_expiry ON dedupe (expires_at);

        -- Writes waiting for Omi. See bot/delivery.py for the states.
        CREATE TABLE outbox (
            id              INTEGER PRIMARY KEY,
            account         TEXT NOT NULL,
            uid             TEXT NOT NULL,
            kind            TEXT NOT NULL,
            state           TEXT NOT NULL,
            payload         TEXT NOT NULL,
            address         TEXT NOT NULL,
            summary         TEXT NOT NULL DEFAULT '',
            attempts        INTEGER NOT NULL DEFAULT 0,
            created_at      REAL NOT NULL,
            next_attempt_at REAL NOT NULL,
            unknown_since   REAL,
            looks_done      INTEGER NOT NULL DEFAULT 0,
            last_error      TEXT,
            finished_at     REAL
        );
        CREATE INDEX outbox_ready ON outbox (state, uid, id);
        CREATE INDEX outbox_account ON outbox (account, state);
        """,
    ),
    Migration(
        2,
        "guarded outbox: attempt numbers, first attempt time, typed payloads",
        """
        ALTER TABLE outbox ADD COLUMN attempt INTEGER NOT NULL DEFAULT 0;
        ALTER TABLE outbox ADD COLUMN first_attempt_at REAL;
        UPDATE outbox SET payload = '' WHERE state = 'done';
        """,
        rewrite=_typed_payloads,
    ),
    Migration(
        3,
        "the key/value table is named for what it holds: values kept between starts",
        """
        ALTER TABLE settings RENAME TO stored_values;
        """,
    ),
)
