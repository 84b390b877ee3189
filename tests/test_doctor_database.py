"""`omi-bridge doctor`'s database check on PostgreSQL (SPEC §2, §13): the connection, the migration level and the
server settings the bridge relies on, against a fresh schema of the local server — and the password never shown."""

from __future__ import annotations

import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote, urlsplit

import psycopg
import pytest

from bot.checks import check_database
from bot.clock import ManualClock
from bot.settings import Settings
from bot.store import Store, open_database
from bot.store.migrations import MIGRATIONS
from tests.databases import POSTGRES, Schema, require_postgres
from tests.test_cli import DEADLINE, FINDING, clean_env

LATEST = MIGRATIONS[-1].version
#: Trust auth ignores it; the output must never show it (a URL that has a password of its own keeps that one).
PASSWORD = urlsplit(POSTGRES).password or "doctor-s3cret-pw"
#: The server settings the doctor looks at, pinned per session so the tests do not depend on the server's own.
GOOD_SETTINGS = {
    "idle_in_transaction_session_timeout": "60s",
    "idle_session_timeout": "0",
    "synchronous_commit": "on",
}


def with_password(url: str, *, database: str | None = None) -> str:
    parts = urlsplit(url)
    netloc = parts.netloc
    if parts.password is None:
        user, _, host = netloc.rpartition("@")
        netloc = f"{user or 'postgres'}:{PASSWORD}@{host}"
    path = f"/{database}" if database is not None else parts.path
    return parts._replace(netloc=netloc, path=path).geturl()


def url_for(schema: Schema, **overrides: str) -> str:
    """The schema's DATABASE_URL with a password and the session settings (GOOD_SETTINGS, then `overrides`)."""
    settings = {"search_path": schema.name, **GOOD_SETTINGS, **overrides}
    options = " ".join(f"-c{name}={value}" for name, value in settings.items())
    base = with_password(POSTGRES)
    return f"{base}{'&' if '?' in base else '?'}options={quote(options)}"


def doctor_line(url: str) -> tuple[str, str]:
    finding = check_database(Settings(_env_file=None, DATABASE_URL=url))  # type: ignore[call-arg]
    line = finding.line()
    assert PASSWORD not in line
    assert FINDING.match(line), line
    return finding.level, line


def server_version() -> str:
    with psycopg.connect(POSTGRES) as conn:
        version = conn.info.server_version  # 150004 → "15.4"
    return f"{version // 10000}.{version % 10000}"


def doctor(url: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """`omi-bridge doctor` in a clean environment (no Omi key: that check only WARNs)."""
    return subprocess.run(
        [sys.executable, "-m", "bot", "doctor"],
        cwd=cwd,
        env=clean_env(DATABASE_URL=url),
        capture_output=True,
        text=True,
        timeout=DEADLINE,
    )


async def migrate(url: str, migrations: tuple = MIGRATIONS) -> None:
    db = open_database(url)
    await db.open(migrations)
    await db.close()


@pytest.fixture
def schema() -> Iterator[Schema]:
    require_postgres()
    created = Schema().create()
    try:
        yield created
    finally:
        created.drop()


async def test_ok_at_the_code_s_migration_level(schema: Schema) -> None:
    url = url_for(schema)
    store = await Store.open(url, ManualClock())  # what serve does at start: migrate
    await store.close()

    level, line = doctor_line(url)

    assert level == "OK", line
    assert line.startswith(f"OK database: PostgreSQL {server_version()} at postgresql://"), line
    assert f":***@{urlsplit(POSTGRES).hostname}" in line, line
    assert line.endswith(f"migration level {LATEST} of {LATEST}"), line
    assert f"schema {schema.name}" in line, line
    assert "→" not in line


async def test_warns_below_the_code_s_level(schema: Schema) -> None:
    url = url_for(schema)

    fresh_level, fresh = doctor_line(url)
    await migrate(url, MIGRATIONS[:-1])
    older_level, older = doctor_line(url)

    assert fresh_level == "WARN", fresh
    assert f"migration level 0 of {LATEST}" in fresh and "run serve once to migrate" in fresh, fresh
    assert older_level == "WARN", older
    assert f"migration level {MIGRATIONS[-2].version} of {LATEST}" in older, older
    assert "run serve once to migrate" in older.split("→", 1)[1], older


async def test_warns_about_a_database_a_newer_version_migrated(schema: Schema) -> None:
    url = url_for(schema)
    await migrate(url)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("INSERT INTO schema_version VALUES (%s, 'from a newer omi-bridge', '')", (LATEST + 1,))

    level, line = doctor_line(url)

    assert level == "WARN", line
    assert f"migration level {LATEST + 1} of {LATEST}; migrated by a newer omi-bridge" in line, line
    assert "upgrade this install" in line.split("→", 1)[1], line


async def test_warns_when_idle_in_transaction_session_timeout_is_off(schema: Schema) -> None:
    url = url_for(schema, idle_in_transaction_session_timeout="0")
    await migrate(url)

    level, line = doctor_line(url)

    assert level == "WARN", line
    finding, fix = line.split(" → ", 1)
    assert f"migration level {LATEST} of {LATEST}" in finding
    assert "idle_in_transaction_session_timeout is 0" in finding
    assert "idle_in_transaction_session_timeout = '60s'" in fix and "locks" in fix, fix


async def test_warns_about_settings_that_break_the_guarantees(schema: Schema) -> None:
    url = url_for(schema, synchronous_commit="off", idle_session_timeout="5min")
    await migrate(url)

    level, line = doctor_line(url)

    assert level == "WARN", line
    finding, fix = line.split(" → ", 1)
    assert "synchronous_commit is off" in finding and "idle_session_timeout is 5min" in finding
    assert "acknowledges a message only after its commit" in fix, fix
    assert "idle_session_timeout = 0" in fix, fix


def test_fails_without_a_schema_to_create_tables_in() -> None:
    require_postgres()
    missing = Schema()  # never created

    level, line = doctor_line(url_for(missing))

    assert level == "FAIL", line
    assert f"no schema on the search_path ({missing.name}) exists" in line, line


async def test_fails_on_a_read_only_database(schema: Schema) -> None:
    url = url_for(schema, default_transaction_read_only="on")

    level, line = doctor_line(url)

    assert level == "FAIL", line
    assert "read-only" in line and "primary" in line.split("→", 1)[1], line


def test_fails_when_the_user_may_not_create_the_tables(schema: Schema) -> None:
    """A user without CREATE on the schema (PostgreSQL 15's public schema for anyone but its owner) could not
    migrate; one without USAGE on it does not see the schema at all."""
    role = f"omi_bridge_doctor_{uuid.uuid4().hex[:12]}"
    parts = urlsplit(url_for(schema))
    url = parts._replace(netloc=f"{role}:{PASSWORD}@{parts.netloc.rpartition('@')[2]}").geturl()
    with psycopg.connect(POSTGRES, autocommit=True) as conn:
        conn.execute(f"CREATE ROLE {role} LOGIN")
    try:
        unusable_level, unusable = doctor_line(url)
        with psycopg.connect(POSTGRES, autocommit=True) as conn:
            conn.execute(f"GRANT USAGE ON SCHEMA {schema.name} TO {role}")
        level, line = doctor_line(url)
    finally:
        with psycopg.connect(POSTGRES, autocommit=True) as conn:
            conn.execute(f"DROP OWNED BY {role}")
            conn.execute(f"DROP ROLE {role}")

    assert unusable_level == "FAIL", unusable
    assert f"no schema on the search_path ({schema.name}) exists or is usable by user {role}" in unusable, unusable
    assert level == "FAIL", line
    assert f"migration level 0 of {LATEST}" in line and f"user {role} may not create tables" in line, line
    assert f"GRANT CREATE ON SCHEMA {schema.name} TO {role}" in line.split("→", 1)[1], line


def test_fails_for_a_refused_connection() -> None:
    # A port bound but not listening refuses connections, and nothing else can take it while the test holds it.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
        level, line = doctor_line(f"postgresql://postgres:{PASSWORD}@127.0.0.1:{port}/test")

    assert level == "FAIL", line
    assert line.startswith(f"FAIL database: postgresql://postgres:***@127.0.0.1:{port}/test cannot be reached"), line
    assert "Connection refused" in line, line
    assert "that the server runs" in line.split("→", 1)[1], line


def test_fails_for_a_missing_database() -> None:
    require_postgres()
    name = f"omi_bridge_missing_{uuid.uuid4().hex[:12]}"

    level, line = doctor_line(with_password(POSTGRES, database=name))

    assert level == "FAIL", line
    assert f'database "{name}" does not exist' in line, line
    assert f"createdb -O {urlsplit(POSTGRES).username or 'postgres'} {name}" in line.split("→", 1)[1], line


def test_fails_for_a_login_the_server_refuses() -> None:
    require_postgres()
    parts = urlsplit(POSTGRES)
    role = f"omi_bridge_nobody_{uuid.uuid4().hex[:12]}"
    url = parts._replace(netloc=f"{role}:{PASSWORD}@{parts.netloc.rpartition('@')[2]}").geturl()

    level, line = doctor_line(url)

    assert level == "FAIL", line
    assert "refused the login" in line and f'role "{role}" does not exist' in line, line
    assert "the password in DATABASE_URL" in line.split("→", 1)[1], line


async def test_doctor_command_on_postgresql(schema: Schema, tmp_path: Path) -> None:
    """The whole command: exit 0 with the OK line on a migrated database, 1 with the FAIL line on a refused one;
    the password in neither output."""
    url = url_for(schema)
    await migrate(url)
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as closed:
        closed.bind(("127.0.0.1", 0))
        refused_url = f"postgresql://postgres:{PASSWORD}@127.0.0.1:{closed.getsockname()[1]}/test"
        good, refused = doctor(url, tmp_path), doctor(refused_url, tmp_path)

    for result in (good, refused):
        assert PASSWORD not in result.stdout + result.stderr
        assert "Traceback" not in result.stderr, result.stderr
        assert all(FINDING.match(line) for line in result.stdout.splitlines()), result.stdout
    assert good.returncode == 0, good
    assert f"migration level {LATEST} of {LATEST}" in good.stdout, good.stdout
    assert any(line.startswith("OK database: PostgreSQL ") for line in good.stdout.splitlines()), good.stdout
    assert refused.returncode == 1, refused
    assert any(line.startswith("FAIL database: ") for line in refused.stdout.splitlines()), refused.stdout
