"""Versioned schema migrations (mautrix's upgrade table): each runs once, in order, at start."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Migration:
    version: int
    description: str
    sql: str


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
)
