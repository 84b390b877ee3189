"""The core's checks for `omi-bridge doctor` (Omi, the database, PUBLIC_URL, transcription, the Omi webhook) and the
`Finding` every check returns; the platforms' checks live with their adapters, the runner with the command line."""

from __future__ import annotations

import ipaddress
import re
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

import httpx
import psycopg

from bot.omi.client import OmiClient
from bot.omi.errors import ForbiddenReason, OmiError, OmiForbidden, OmiUnauthorized
from bot.settings import Settings
from bot.store.migrations import MIGRATIONS
from bot.store.postgres import safe_url
from bot.transcribe import Transcriber, TranscriptionError
from bot.transcribe.client import MODELS_TIMEOUT
from bot.transcribe.errors import BAD_KEY, OUT_OF_QUOTA, UNREADABLE

Level = Literal["OK", "WARN", "FAIL"]

#: The probe uid: no real user has it, so a working key gets "App is not enabled for this user".
PROBE_UID = "omi-bridge-doctor"


@dataclass(frozen=True)
class Finding:
    level: Level
    part: str
    finding: str
    fix: str = ""

    def line(self) -> str:
        text = f"{self.level} {self.part}: {self.finding}"
        return f"{text} → {self.fix}" if self.fix else text


async def check_omi(settings: Settings) -> Finding:
    """Probe the key with a GET (a POST would count toward the user's rate limits)."""
    if settings.OMI_API_KEY is None or settings.OMI_APP_ID is None:
        return Finding(
            "WARN",
            "omi",
            "OMI_APP_ID/OMI_API_KEY not set: run and console use the embedded sandbox",
            "set both in .env to use the real Omi (serve refuses to start without them)",
        )
    client = OmiClient(settings.OMI_API_BASE_URL, settings.OMI_APP_ID, settings.OMI_API_KEY, read_timeout=15)
    try:
        await client.read_memories(PROBE_UID, limit=1)
    except OmiForbidden as exc:
        if exc.reason is ForbiddenReason.NOT_ENABLED:
            return Finding("OK", "omi", f"key accepted for app {settings.OMI_APP_ID} at {settings.OMI_API_BASE_URL}")
        if exc.reason is ForbiddenReason.BAD_KEY:
            return Finding(
                "FAIL",
                "omi",
                f"Omi refused the key for app {settings.OMI_APP_ID} ({exc})",
                "create a key on the app's page in the Omi app and set OMI_API_KEY; check OMI_APP_ID",
            )
        return Finding("FAIL", "omi", f"Omi answered 403: {exc}", "check the app's capabilities in the Omi app")
    except OmiUnauthorized as exc:
        return Finding("FAIL", "omi", f"Omi refused the Authorization header ({exc})", "check OMI_API_KEY")
    except OmiError as exc:
        return Finding(
            "FAIL",
            "omi",
            f"{settings.OMI_API_BASE_URL} answered {exc.status or ''} {exc}".replace("  ", " "),
            "check OMI_API_BASE_URL and the network",
        )
    finally:
        await client.aclose()
    return Finding("OK", "omi", f"key accepted for app {settings.OMI_APP_ID} (probe uid is enabled)")


def check_database(settings: Settings) -> Finding:
    if settings.database_engine == "postgresql":
        return check_postgres(settings.DATABASE_URL)
    path = settings.database_path
    if path == ":memory:":
        return Finding("WARN", "database", "in memory: the queue is lost at exit", "set DATABASE_URL to a file")
    try:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        connection = sqlite3.connect(path, timeout=5, isolation_level=None)
        try:
            # One transaction under the write lock: two doctors at once (or a doctor beside another command)
            # each create and drop the probe whole, instead of one dropping the table the other just made.
            connection.execute("BEGIN IMMEDIATE")
            connection.execute("CREATE TABLE IF NOT EXISTS doctor_probe (x INTEGER)")
            connection.execute("DROP TABLE doctor_probe")
            connection.execute("COMMIT")
        finally:
            connection.close()
    except (OSError, sqlite3.Error) as exc:
        return Finding("FAIL", "database", f"{path} is not writable ({exc})", "fix DATABASE_URL or the permissions")
    return Finding("OK", "database", f"{path} is writable")


#: Doctor waits this long for the server (libpq's connect_timeout) and for each of its queries.
POSTGRES_TIMEOUT_SECONDS = 5

_FACTS = """
SELECT current_setting('server_version') AS version,
       current_user AS role,
       current_database() AS database,
       current_schema() AS schema,
       current_setting('search_path') AS search_path,
       COALESCE(has_schema_privilege(current_schema(), 'CREATE'), false) AS can_create,
       pg_is_in_recovery() AS standby,
       current_setting('transaction_read_only') AS read_only,
       current_setting('idle_in_transaction_session_timeout') AS idle_in_transaction,
       current_setting('idle_session_timeout', true) AS idle_session,
       current_setting('synchronous_commit') AS synchronous_commit,
       to_regclass('schema_version') IS NOT NULL AS versioned
"""


def check_postgres(url: str) -> Finding:
    """Connect as the bridge would (the same URL, so the same role, database, schema and session settings), then
    read the server's version, the migration level and the settings the bridge's guarantees depend on."""
    shown = safe_url(url)
    password = urlsplit(url).password
    try:
        with psycopg.connect(
            url, autocommit=True, connect_timeout=POSTGRES_TIMEOUT_SECONDS, application_name="omi-bridge doctor"
        ) as conn:
            conn.execute(f"SET statement_timeout = '{POSTGRES_TIMEOUT_SECONDS}s'")
            cursor = conn.execute(_FACTS)
            names = [column.name for column in cursor.description or ()]
            facts: dict[str, Any] = dict(zip(names, cursor.fetchone() or (), strict=True))
            level = 0
            if facts["versioned"]:
                version_row = conn.execute("SELECT COALESCE(MAX(version), 0) FROM schema_version").fetchone()
                level = int(version_row[0]) if version_row else 0
    except psycopg.Error as exc:
        return _postgres_failed(url, shown, _reason(exc, password))
    return _postgres_finding(shown, facts, level)


def _postgres_finding(shown: str, facts: dict[str, Any], level: int) -> Finding:
    latest = MIGRATIONS[-1].version
    version = str(facts["version"]).split()[0]  # "15.4 (Debian 15.4-1.pgdg120+1)" → "15.4"
    schema = facts["schema"]
    where = f"PostgreSQL {version} at {shown}" + (f" (schema {schema})" if schema not in (None, "public") else "")
    if facts["standby"] or facts["read_only"] == "on":
        what = "a read-only standby" if facts["standby"] else "read-only (default_transaction_read_only is on)"
        return Finding("FAIL", "database", f"{where} is {what}", "point DATABASE_URL at the primary, writable database")
    if schema is None:  # none of the search_path's schemas exists, or the user may not use it
        return Finding(
            "FAIL",
            "database",
            f"{where}: no schema on the search_path ({facts['search_path']}) exists or is usable by user "
            f"{facts['role']}, so the bridge has nowhere to keep its tables",
            f"create the schema (CREATE SCHEMA name AUTHORIZATION {facts['role']}), grant {facts['role']} USAGE "
            "and CREATE on it, or fix search_path in DATABASE_URL",
        )
    if level < latest and not facts["can_create"]:
        return Finding(
            "FAIL",
            "database",
            f"{where}, migration level {level} of {latest}: user {facts['role']} may not create tables in schema "
            f"{schema}, so serve cannot migrate",
            f"GRANT CREATE ON SCHEMA {schema} TO {facts['role']} (since PostgreSQL 15 the public schema is not "
            f"open to every user), or make {facts['role']} the database's owner",
        )
    finding = f"{where}, migration level {level} of {latest}"
    notes: list[str] = []
    fixes: list[str] = []
    if level < latest:
        notes.append("not migrated yet" if level == 0 else "older than this version's schema")
        fixes.append("run serve once to migrate (it migrates at start, before taking any message)")
    elif level > latest:
        notes.append("migrated by a newer omi-bridge")
        fixes.append("upgrade this install to the version that migrated the database")
    if facts["idle_in_transaction"] == "0":
        notes.append("idle_in_transaction_session_timeout is 0 (off)")
        fixes.append(
            f"ALTER DATABASE {facts['database']} SET idle_in_transaction_session_timeout = '60s': the bridge never "
            "waits inside a transaction, so this only ends a session stuck in one (a hung process, a forgotten "
            "psql) before the locks it holds block the bridge's writes and keep VACUUM from cleaning up"
        )
    if facts["idle_session"] not in (None, "0"):
        notes.append(f"idle_session_timeout is {facts['idle_session']}")
        fixes.append(
            f"ALTER ROLE {facts['role']} SET idle_session_timeout = 0: it closes the bridge's idle connections, and "
            "the worker's lock is held on a connection that is idle by design"
        )
    if facts["synchronous_commit"] == "off":
        notes.append("synchronous_commit is off")
        fixes.append(
            "set synchronous_commit = on: the bridge acknowledges a message only after its commit, and with it off "
            "a commit returns before it is on disk, so a server crash loses messages already acknowledged"
        )
    if not notes:
        return Finding("OK", "database", finding)
    return Finding("WARN", "database", f"{finding}; {'; '.join(notes)}", "; ".join(fixes))


_LOGIN = re.compile(
    r"password authentication failed|no password supplied|authentication failed|no pg_hba\.conf entry|"
    r'role "[^"]*" does not exist|not permitted to log in',
    re.IGNORECASE,
)
_MISSING_DATABASE = re.compile(r'database "[^"]*" does not exist', re.IGNORECASE)
_UNREACHABLE = re.compile(
    r"connection refused|could not connect|timeout expired|timed out|could not translate host name|"
    r"no route to host|network is unreachable|the database system is (starting up|shutting down)",
    re.IGNORECASE,
)


def _postgres_failed(url: str, shown: str, reason: str) -> Finding:
    parts = urlsplit(url)
    user = parts.username or "the user"
    database = parts.path.strip("/") or "the database"
    if _MISSING_DATABASE.search(reason):
        return Finding(
            "FAIL",
            "database",
            f"{shown}: {reason}",
            f"create it (createdb -O {user} {database}) or fix the database name in DATABASE_URL",
        )
    if _LOGIN.search(reason):
        return Finding(
            "FAIL",
            "database",
            f"{shown} refused the login: {reason}",
            f"check the user ({user}) and the password in DATABASE_URL, and that pg_hba.conf lets this host in",
        )
    if _UNREACHABLE.search(reason):
        return Finding(
            "FAIL",
            "database",
            f"{shown} cannot be reached: {reason}",
            "check DATABASE_URL's host and port, that the server runs and listens there (listen_addresses), "
            "and the firewall between (serve waits for such a server, but takes no message until it answers)",
        )
    return Finding(
        "FAIL",
        "database",
        f"{shown}: {reason}",
        "check DATABASE_URL, that the server runs, the user's password and that the database exists",
    )


def _reason(exc: BaseException, password: str | None) -> str:
    """psycopg's message on one line: the first line that is not a hint, without libpq's prefixes, connection
    strings or the password."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip() and not line.startswith("\t")]
    text = lines[0] if lines else type(exc).__name__
    text = re.sub(r"^connection failed:\s*", "", text)
    text = re.sub(r"\bFATAL:\s+", "", text)
    text = re.sub(r"postgres(ql)?://\S+", "postgresql://…", text)
    return text.replace(password, "***") if password else text


def check_public_url(settings: Settings) -> Finding:
    if settings.PUBLIC_URL is None:
        return Finding(
            "WARN",
            "public_url",
            f"PUBLIC_URL not set, pages use {settings.public_url}",
            "set PUBLIC_URL to the https address Omi and the chat platforms reach",
        )
    if settings.PUBLIC_URL.startswith("http://"):
        return Finding("WARN", "public_url", f"{settings.PUBLIC_URL} is plain http", "serve it over https")
    return Finding("OK", "public_url", settings.PUBLIC_URL)


def check_omi_webhook(settings: Settings) -> Finding:
    """The Omi app's "memory creation" webhook (SPEC §12): Omi posts only to public https URLs. The secret path
    segment is never shown here (`omi-bridge omi-webhook-url` prints the URL for the operator to paste)."""
    if settings.PUBLIC_URL is None or not settings.PUBLIC_URL.startswith("https://"):
        problem = "PUBLIC_URL not set" if settings.PUBLIC_URL is None else "PUBLIC_URL is plain http"
        return Finding(
            "WARN",
            "omi-webhook",
            f"{problem}: Omi calls only public https URLs, so no new conversation reaches the chat",
            "set PUBLIC_URL to the https address people reach",
        )
    return Finding(
        "OK",
        "omi-webhook",
        "set",
        "run omi-bridge omi-webhook-url and paste it as the Omi app's webhook (Memory creation)",
    )


async def check_transcription(
    settings: Settings, *, timeout: float = MODELS_TIMEOUT, transport: httpx.AsyncBaseTransport | None = None
) -> Finding:
    """`GET {TRANSCRIBE_URL}/models` lists TRANSCRIBE_MODEL (SPEC §11). Only the URL's scheme, host and port are
    shown (never a path, a query or a password in it); the key stays in the Authorization header."""
    if settings.TRANSCRIBE_URL is None:
        return Finding(
            "OK",
            "transcription",
            "off — voice messages are answered that transcription is not set up",
            "set TRANSCRIBE_URL to save them",
        )
    where, host, local = _transcription_server(settings.TRANSCRIBE_URL)
    model = settings.TRANSCRIBE_MODEL
    key = settings.TRANSCRIBE_API_KEY.get_secret_value() if settings.TRANSCRIBE_API_KEY else None
    try:
        async with Transcriber(
            settings.TRANSCRIBE_URL, api_key=key, model=model, models_timeout=timeout, transport=transport
        ) as transcriber:
            listed = await transcriber.models()
    except TranscriptionError as exc:
        return _transcription_failed(where, exc, has_key=key is not None)
    if model not in listed:
        names = [" ".join(name.split())[:80] for name in listed[:5]]  # the server's words: kept on one line
        shown = ", ".join(names) + (f" (and {len(listed) - 5} more)" if len(listed) > 5 else "")
        return Finding(
            "WARN",
            "transcription",
            f"{where} does not list {model}" + (f"; it lists {shown}" if listed else "; it lists no models"),
            "set TRANSCRIBE_MODEL to one it lists",
        )
    leaves = "" if local else f"; audio leaves this machine for {host}"
    return Finding("OK", "transcription", f"{where} serves {model}{leaves}")


def _transcription_server(url: str) -> tuple[str, str, bool]:
    """(`scheme://host[:port]`, the host, whether it is this machine) of TRANSCRIBE_URL."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        local = host == "localhost" or host.endswith(".localhost")
    else:
        mapped = address.ipv4_mapped if isinstance(address, ipaddress.IPv6Address) else None
        local = (mapped or address).is_loopback
    shown = f"[{host}]" if ":" in host else host
    port = f":{parts.port}" if parts.port is not None else ""
    return f"{parts.scheme}://{shown}{port}", host, local


def _transcription_failed(where: str, exc: TranscriptionError, *, has_key: bool) -> Finding:
    reason = exc.reason  # a fixed phrase: never the key, the URL or the server's own message
    if exc.reason.startswith(BAD_KEY):
        fix = "check TRANSCRIBE_API_KEY" if has_key else "the server wants a key: set TRANSCRIBE_API_KEY"
        return Finding("FAIL", "transcription", f"{where}: the key was refused ({exc.status})", fix)
    if exc.reason.startswith(OUT_OF_QUOTA):
        return Finding("FAIL", "transcription", f"{where}: {reason}", "add credit to the account or use another key")
    if exc.status in (404, 405):
        return Finding(
            "WARN",
            "transcription",
            f"{where}: the server does not list models (whisper.cpp's server has no /models)",
            "send a voice message to check",
        )
    if exc.status == 429:
        return Finding("WARN", "transcription", f"{where}: {reason}", "run doctor again in a minute")
    if exc.reason.startswith(UNREADABLE) and exc.status is not None and exc.status < 300:
        return Finding(
            "WARN",
            "transcription",
            f"{where}: GET /models gave no model list",
            "check that TRANSCRIBE_URL is the API's base (it usually ends in /v1); send a voice message to check",
        )
    return Finding(
        "FAIL",
        "transcription",
        f"{where}: {reason}",
        "check TRANSCRIBE_URL (it usually ends in /v1), that the server runs, and the network",
    )
