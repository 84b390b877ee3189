"""The core's checks for `omi-bridge doctor` (Omi, the database, PUBLIC_URL) and the `Finding` every check returns;
the platforms' checks live with their adapters, the runner with the command line."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from bot.omi.client import OmiClient
from bot.omi.errors import ForbiddenReason, OmiError, OmiForbidden, OmiUnauthorized
from bot.settings import Settings

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
    path = settings.database_path
    if path == ":memory:":
        return Finding("WARN", "database", "in memory: the queue is lost at exit", "set DATABASE_URL to a file")
    try:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        connection = sqlite3.connect(path, timeout=5)
        try:
            connection.execute("CREATE TABLE IF NOT EXISTS doctor_probe (x INTEGER)")
            connection.execute("DROP TABLE doctor_probe")
            connection.commit()
        finally:
            connection.close()
    except (OSError, sqlite3.Error) as exc:
        return Finding("FAIL", "database", f"{path} is not writable ({exc})", "fix DATABASE_URL or the permissions")
    return Finding("OK", "database", f"{path} is writable")


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
