"""Running the bridge: the Omi client from settings (or the embedded sandbox), the console, operator links."""

from __future__ import annotations

import logging
import sys
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from adapters.console import ACCOUNT as CONSOLE_ACCOUNT
from adapters.console import ConsoleAdapter
from bot.bridge import Bridge
from bot.clock import Clock, SystemClock
from bot.omi.client import OmiClient
from bot.settings import Settings, SettingsError
from bot.store import Store

log = logging.getLogger(__name__)

SANDBOX_BANNER = "SANDBOX: nothing leaves this machine (no OMI_API_KEY set; Omi is simulated in-process)"
PLATFORMS = ("telegram", "slack", "console")


@dataclass
class OmiConnection:
    client: OmiClient
    test_uid: str | None
    sandbox: object | None  # bot.sandbox.Sandbox when embedded


def sandbox_db_path(settings: Settings) -> str:
    """The embedded sandbox keeps its state beside the bridge's database, so its app and uid stay the same."""
    path = settings.database_path
    if path == ":memory:":
        return path
    db = Path(path)
    return str(db.with_name(f"{db.stem}-sandbox{db.suffix or '.db'}"))


async def connect_omi(settings: Settings, stack: AsyncExitStack, *, allow_sandbox: bool) -> OmiConnection:
    """The configured Omi, or (when no key is set and it is allowed) the embedded sandbox."""
    if settings.OMI_API_KEY is not None and settings.OMI_APP_ID is not None:
        client = OmiClient(
            settings.OMI_API_BASE_URL,
            settings.OMI_APP_ID,
            settings.OMI_API_KEY,
            max_connections=settings.DELIVERY_CONCURRENCY + 8,
        )
        stack.push_async_callback(client.aclose)
        return OmiConnection(client, settings.OMI_TEST_UID, None)
    if not allow_sandbox:
        raise SettingsError("invalid setting OMI_API_KEY: required (with OMI_APP_ID) by `omi-bridge serve`")
    from bot.sandbox import Sandbox

    sandbox = Sandbox(db_path=sandbox_db_path(settings))
    base_url = await sandbox.start("127.0.0.1", 0)
    stack.callback(sandbox.close)
    stack.push_async_callback(sandbox.stop)
    app_id, api_key, uid = sandbox.ensure_default(settings.OMI_TEST_UID)
    client = OmiClient(base_url, app_id, api_key)
    stack.push_async_callback(client.aclose)
    return OmiConnection(client, uid, sandbox)


async def run_console(
    settings: Settings,
    *,
    stdin: TextIO | None = None,
    stdout: TextIO | None = None,
    clock: Clock | None = None,
    drain_seconds: float = 10.0,
) -> int:
    out = stdout or sys.stdout
    clock = clock or SystemClock()
    async with AsyncExitStack() as stack:
        omi = await connect_omi(settings, stack, allow_sandbox=True)
        if omi.test_uid is None:
            raise SettingsError("invalid setting OMI_TEST_UID: the console needs the uid to act as with a real Omi")
        store = await Store.open(settings.database_path, clock)
        stack.push_async_callback(store.close)
        bridge = Bridge(
            store,
            omi.client,
            clock,
            batch_window=settings.BATCH_WINDOW_SECONDS,
            concurrency=settings.DELIVERY_CONCURRENCY,
            sandbox_uid=omi.test_uid if omi.sandbox is not None else None,
        )
        console = ConsoleAdapter(bridge.accept, stdin=stdin, stdout=out)
        bridge.register_adapter(console, console.parse)
        if omi.sandbox is not None:
            console.print("omi", SANDBOX_BANNER)
            omi.sandbox.on_notification = lambda note: console.print(  # type: ignore[attr-defined]
                "omi", f"notification in the Omi app: {note['message']}"
            )
        verified = await store.links.verified(CONSOLE_ACCOUNT)
        if verified is None or verified.uid != omi.test_uid:
            await store.links.link_verified(CONSOLE_ACCOUNT, omi.test_uid)
        await bridge.start()
        stack.push_async_callback(bridge.stop)
        console.print(
            "bot",
            f"Linked to Omi uid {omi.test_uid}. Type or paste messages (a burst becomes one conversation),"
            " /remember TEXT, /recent, /memories, /search QUERY, /help. End with Ctrl-D.",
        )
        await console.read_lines()
        if not await bridge.flush(drain_seconds):
            waiting = await store.outbox.depth()
            console.print("bot", f"{waiting} item(s) still wait for Omi; they are kept and sent on the next start.")
    return 0


def parse_account(text: str) -> str:
    platform, sep, user_id = text.partition(":")
    if not sep or platform not in PLATFORMS or not user_id.strip():
        raise ValueError(f"{text!r} is not PLATFORM:USER_ID with PLATFORM one of {', '.join(PLATFORMS)}")
    return f"{platform}:{user_id.strip()}"


async def operator_link(settings: Settings, account: str, uid: str) -> str:
    clock = SystemClock()
    store = await Store.open(settings.database_path, clock)
    try:
        async with store.db.write() as conn:
            await store.links.set_verified(conn, account, uid)
            released = await store.outbox.release_held(conn, account, uid, clock.now())
    finally:
        await store.close()
    extra = f"; {released} held item(s) released for delivery" if released else ""
    return f"linked {account} to Omi uid {uid} (verified){extra}"


async def operator_unlink(settings: Settings, account: str) -> tuple[bool, str]:
    store = await Store.open(settings.database_path, SystemClock())
    try:
        async with store.db.write() as conn:
            removed = await store.links.delete_account(conn, account)
    finally:
        await store.close()
    if not removed:
        return False, f"no link for {account}"
    return True, f"unlinked {account}; removed its link and everything held for it (what is in Omi stays there)"
