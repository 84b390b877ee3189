"""Running the bridge: the Omi client from settings (or the embedded sandbox), the console, operator links."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gc
import logging
import signal
import sys
import time
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from adapters.console import ACCOUNT as CONSOLE_ACCOUNT
from adapters.console import ConsoleAdapter
from bot.backoff import Backoff
from bot.bridge import Bridge
from bot.clock import Clock, ScaledClock, SystemClock
from bot.metrics import Metrics
from bot.omi.client import OmiClient
from bot.omi.pacing import RequestPacer
from bot.platforms import Platform, PlatformStartup, start_backoff
from bot.previews import allow_any, is_public, preview
from bot.previews.burst import Fetch
from bot.pushes.wiring import add_omi_webhook, device_in_console
from bot.settings import Settings, SettingsError
from bot.store import DatabaseRefused, Outbox, Store
from bot.store.database import Conn
from bot.store.imports import Imports
from bot.store.links import Links
from bot.store.postgres import safe_url
from bot.transcribe import Transcriber
from bot.web.server import WebServer
from bot.worker_lock import LOCK_WAIT_SECONDS, PostgresWorkerLock, WorkerLock

log = logging.getLogger(__name__)

DELIVERY_GRACE_SECONDS = 10


async def wait_for_stop_signal() -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    await stop.wait()


SANDBOX_BANNER = "SANDBOX: nothing leaves this machine (no OMI_API_KEY set; Omi is simulated in-process)"
PLATFORMS = ("telegram", "slack", "console")


@dataclass
class OmiConnection:
    client: OmiClient
    test_uid: str | None
    sandbox: object | None  # bot.sandbox.Sandbox when embedded


def sandbox_db_path(settings: Settings) -> str:
    """The embedded sandbox keeps its state beside the bridge's database (on PostgreSQL: in the working
    directory), so its app and uid stay the same."""
    path = settings.database_path or "omi-bridge.db"
    if path == ":memory:":
        return path
    db = Path(path)
    return str(db.with_name(f"{db.stem}-sandbox{db.suffix or '.db'}"))


async def open_store(settings: Settings, clock: Clock) -> Store:
    """The store DATABASE_URL names; a database that refuses us for good is an invalid setting (exit 2)."""
    try:
        return await Store.open(settings.DATABASE_URL, clock)
    except DatabaseRefused as exc:
        raise SettingsError(f"invalid setting DATABASE_URL: {exc}") from None


def previews_for(settings: Settings, *, sandbox: bool = False) -> Fetch | None:
    """`LINK_PREVIEWS=on`: pages of links in saved messages, fetched under the address rule (SPEC §11). With the
    embedded sandbox they stay off unless asked for: its banner promises that nothing leaves the machine."""
    if settings.LINK_PREVIEWS != "on" or (sandbox and "LINK_PREVIEWS" not in settings.model_fields_set):
        return None
    allow = allow_any if settings.LINK_PREVIEWS_ALLOW_PRIVATE else is_public
    return functools.partial(preview, allow=allow)


def transcriber_for(settings: Settings, stack: AsyncExitStack) -> Transcriber | None:
    """`TRANSCRIBE_URL` set: voice messages are transcribed by that OpenAI-compatible service (SPEC §11)."""
    if settings.TRANSCRIBE_URL is None:
        return None
    key = settings.TRANSCRIBE_API_KEY.get_secret_value() if settings.TRANSCRIBE_API_KEY is not None else None
    transcriber = Transcriber(settings.TRANSCRIBE_URL, api_key=key, model=settings.TRANSCRIBE_MODEL)
    stack.push_async_callback(transcriber.aclose)
    return transcriber


def pacer_for(settings: Settings) -> RequestPacer | None:
    """`OMI_MAX_REQUESTS_PER_MINUTE`, when set, spaces every request made with the one app key."""
    limit = settings.OMI_MAX_REQUESTS_PER_MINUTE
    return RequestPacer(limit, SystemClock()) if limit is not None else None


async def connect_omi(
    settings: Settings, stack: AsyncExitStack, *, allow_sandbox: bool, metrics: Metrics | None = None
) -> OmiConnection:
    """The configured Omi, or (when no key is set and it is allowed) the embedded sandbox."""
    if settings.OMI_API_KEY is not None and settings.OMI_APP_ID is not None:
        client = OmiClient(
            settings.OMI_API_BASE_URL,
            settings.OMI_APP_ID,
            settings.OMI_API_KEY,
            max_connections=settings.DELIVERY_CONCURRENCY + 8,
            observer=metrics.omi_request if metrics is not None else None,
            pacer=pacer_for(settings),
        )
        stack.push_async_callback(client.aclose)
        return OmiConnection(client, settings.OMI_TEST_UID, None)
    if not allow_sandbox:
        missing = "OMI_APP_ID" if settings.OMI_APP_ID is None else "OMI_API_KEY"
        raise SettingsError(f"invalid setting {missing}: required by `omi-bridge serve` (no silent sandbox)")
    from bot.sandbox import Sandbox

    sandbox = Sandbox(db_path=sandbox_db_path(settings))
    base_url = await sandbox.start("127.0.0.1", 0)
    stack.callback(sandbox.close)
    stack.push_async_callback(sandbox.stop)
    app_id, api_key, uid = sandbox.ensure_default(settings.OMI_TEST_UID)
    client = OmiClient(base_url, app_id, api_key)
    stack.push_async_callback(client.aclose)
    return OmiConnection(client, uid, sandbox)


async def open_bridge(
    settings: Settings,
    omi: OmiConnection,
    clock: Clock,
    stack: AsyncExitStack,
    *,
    sandbox_uid: str | None = None,
    metrics: Metrics | None = None,
) -> Bridge:
    """The worker lock, the store and the bridge over them, closed by `stack` in reverse order. SQLite's lock
    comes first (two processes must not migrate one file); PostgreSQL's after the store, which waits for a server
    that is not up yet (its migrations have a lock of their own)."""
    if settings.database_engine == "sqlite":
        await _hold_worker_lock(settings, stack)
    store = await open_store(settings, clock)
    stack.push_async_callback(store.close)
    if settings.database_engine == "postgresql":
        await _hold_worker_lock(settings, stack)
    if omi.client.pacer is not None:
        omi.client.pacer.share(store.pacing.omi)  # the cap holds over every instance on the database
    if settings.LINK_PREVIEWS_ALLOW_PRIVATE:
        log.warning("LINK_PREVIEWS_ALLOW_PRIVATE=true: link previews may fetch private addresses (tests only)")
    return Bridge(
        store,
        omi.client,
        clock,
        batch_window=settings.BATCH_WINDOW_SECONDS,
        concurrency=settings.DELIVERY_CONCURRENCY,
        sandbox_uid=sandbox_uid,
        metrics=metrics,
        link_previews=previews_for(settings, sandbox=omi.sandbox is not None),
        transcriber=transcriber_for(settings, stack),
    )


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
        bridge = await open_bridge(
            settings, omi, clock, stack, sandbox_uid=omi.test_uid if omi.sandbox is not None else None
        )
        store = bridge.store
        console = ConsoleAdapter(bridge.accept, stdin=stdin, stdout=out)
        bridge.register_adapter(console, console.parse)
        if omi.sandbox is not None:
            console.print("omi", SANDBOX_BANNER)
            omi.sandbox.on_notification = lambda note: console.print(  # type: ignore[attr-defined]
                "omi", f"notification in the Omi app: {note['message']}"
            )
        if omi.sandbox is not None:
            console.device = await device_in_console(
                settings, bridge, omi.sandbox, omi.client.app_id, omi.test_uid, console.print, stack
            )
        verified = await store.links.verified(CONSOLE_ACCOUNT)
        if verified is None or verified.uid != omi.test_uid:
            await store.links.link_verified(CONSOLE_ACCOUNT, omi.test_uid)
        await bridge.start()
        stack.push_async_callback(bridge.stop)
        console.print(
            "bot",
            f"Linked to Omi uid {omi.test_uid}. Type or paste messages (a burst becomes one conversation),"
            " /remember TEXT, /recent, /memories, /search QUERY, /notify on, /help"
            + (", and /device TEXT (as if your wearable recorded it)" if omi.sandbox is not None else "")
            + ". End with Ctrl-D.",
        )
        await console.read_lines()
        if not await bridge.flush(drain_seconds):
            waiting = await store.outbox.depth()
            console.print("bot", f"{waiting} item(s) still wait for Omi; they are kept and sent on the next start.")
    return 0


def clock_for(settings: Settings) -> Clock:
    """The real clock; on the test-only time scale (settings refuse it unless Omi is on loopback) a faster one."""
    if settings.OMI_BRIDGE_TIME_SCALE == 1:
        return SystemClock()
    origin = settings.OMI_BRIDGE_TIME_ORIGIN if settings.OMI_BRIDGE_TIME_ORIGIN is not None else time.time()
    log.warning("test-only: the clock runs %g× real time (OMI_BRIDGE_TIME_SCALE)", settings.OMI_BRIDGE_TIME_SCALE)
    return ScaledClock(settings.OMI_BRIDGE_TIME_SCALE, origin)


async def run_serve(
    settings: Settings,
    *,
    allow_sandbox: bool = False,
    stop: asyncio.Event | None = None,
    ready: Callable[[str], None] | None = None,
    backoff: Callable[[], Backoff] = start_backoff,
) -> int:
    """The deployable process: web server, configured platforms, delivery worker. The web server comes up
    first; a platform that cannot be reached keeps trying in the background (`backoff`, one per platform) and
    shows as down in /healthz. Ends on SIGTERM/SIGINT (or `stop`): intake stops first, deliveries in flight get
    a bounded time, the rest stays queued. A token a platform refuses raises `SettingsError` (exit 2)."""
    clock = clock_for(settings)
    metrics = Metrics()
    async with AsyncExitStack() as stack:
        stopping = asyncio.ensure_future(stop.wait() if stop is not None else wait_for_stop_signal())
        stack.callback(stopping.cancel)
        omi = await connect_omi(settings, stack, allow_sandbox=allow_sandbox, metrics=metrics)
        sandbox_uid = None
        if omi.sandbox is not None:
            sandbox_uid = omi.test_uid
            log.warning("%s; /start without a token links a chat to the sandbox uid %s", SANDBOX_BANNER, sandbox_uid)
        # A database that is not up yet is waited for (bot/store/postgres.py); a stop signal ends the wait.
        opening = asyncio.ensure_future(
            open_bridge(settings, omi, clock, stack, metrics=metrics, sandbox_uid=sandbox_uid)
        )
        await asyncio.wait({opening, stopping}, return_when=asyncio.FIRST_COMPLETED)
        if not opening.done():
            opening.cancel()
            await asyncio.gather(opening, return_exceptions=True)
            log.info("stopping: asked to stop while waiting for the database")
            return 0
        bridge = opening.result()
        web = WebServer(bridge, metrics)
        await add_omi_webhook(settings, bridge, web)
        platforms = [factory(settings, bridge, web) for factory in platform_factories(settings)]
        for platform in platforms:
            stack.push_async_callback(platform.close)
        await bridge.start()
        stack.push_async_callback(bridge.stop, DELIVERY_GRACE_SECONDS)
        url = await web.start(settings.HOST, settings.PORT)
        stack.push_async_callback(web.stop)
        startup = PlatformStartup(platforms, backoff)
        stack.push_async_callback(startup.stop)  # before web.stop: the platforms' routes answer 503 meanwhile
        startup.start()
        if not await _unless_stopped(startup.first_tries(), stopping):
            # What is alive now (the libraries, the bridge's long-lived objects) lives as long as the process: out of
            # the cyclic collector's sight, its full collections only look at what requests create (BENCHMARKS §4).
            gc.collect()
            gc.freeze()
            log.info(
                "serving on %s (public %s); platforms: %s",
                url,
                settings.public_url,
                ", ".join(p.name for p in platforms) or "none",
            )
            if ready is not None:
                ready(url)
            await _unless_stopped(startup.failure(), stopping)
        log.info("stopping: no new requests; deliveries in flight get %d s", DELIVERY_GRACE_SECONDS)
    return 0


async def _unless_stopped(work: Awaitable[None], stopping: asyncio.Future[None]) -> bool:
    """Await `work` unless `stopping` comes first (then `work` is cancelled and True returned)."""
    task = asyncio.ensure_future(work)
    try:
        await asyncio.wait({task, stopping}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        if not task.done():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
    if task.done() and not task.cancelled():
        task.result()  # a platform's SettingsError
        return False
    return True


async def _hold_worker_lock(settings: Settings, stack: AsyncExitStack) -> None:
    """One delivery worker per SQLite file (a lock file beside it); on PostgreSQL every instance holds the advisory
    lock shared, so instances coexist and only a `migrate-db` onto this database makes one wait."""
    lock: WorkerLock | PostgresWorkerLock
    if settings.database_engine == "postgresql":
        lock = PostgresWorkerLock(settings.DATABASE_URL, safe_url(settings.DATABASE_URL), shared=True)
    else:
        lock = WorkerLock(settings.database_path)
    if not lock.try_acquire():
        other = "a migrate-db onto this database" if settings.database_engine == "postgresql" else "another omi-bridge"
        log.warning("waiting up to %d s for %s to finish", LOCK_WAIT_SECONDS, other)
        if isinstance(lock, WorkerLock):
            lock.want()  # an `omi-bridge import` delivering meanwhile hands over within seconds
        try:
            await lock.acquire()
        finally:
            if isinstance(lock, WorkerLock):
                lock.unwant()
    stack.callback(lock.release)


def platform_factories(settings: Settings) -> list[Callable[[Settings, Bridge, WebServer], Platform]]:
    """The chat platforms `serve` runs, by settings (each module is imported only when configured).

    A factory registers the adapter with the bridge (`bridge.register_adapter`), adds its routes to
    `web.app` and its health check to `web.components[name]`, and fills `web.options` for the setup page;
    `start()` then runs its transport, `stop()` ends it (intake first)."""
    factories: list[Callable[[Settings, Bridge, WebServer], Platform]] = []
    if settings.telegram_enabled:
        from adapters.telegram.platform import TelegramPlatform

        factories.append(TelegramPlatform)
    if settings.slack_enabled:
        from adapters.slack.platform import SlackPlatform

        factories.append(SlackPlatform)
    return factories


def parse_account(text: str) -> str:
    platform, sep, user_id = text.partition(":")
    if not sep or platform not in PLATFORMS or not user_id.strip():
        raise ValueError(f"{text!r} is not PLATFORM:USER_ID with PLATFORM one of {', '.join(PLATFORMS)}")
    return f"{platform}:{user_id.strip()}"


async def operator_link(settings: Settings, account: str, uid: str) -> str:
    clock = SystemClock()
    store = await open_store(settings, clock)
    try:
        now = clock.now()

        def link(conn: Conn) -> int:
            store.links.set_verified(conn, account, uid)
            return Outbox.release_held(conn, account, uid, now)

        released = await store.db.write(link)
    finally:
        await store.close()
    extra = f"; {released} held item(s) released for delivery" if released else ""
    return f"linked {account} to Omi uid {uid} (verified){extra}"


async def operator_unlink(settings: Settings, account: str) -> tuple[bool, str]:
    clock = SystemClock()
    store = await open_store(settings, clock)

    def unlink(conn: Conn) -> tuple[int, int]:
        # Its imports end with the link (as `/unlink` does): their waiting items go in the same transaction.
        cancelled = Imports.cancel_for_account(conn, account, clock.now())
        return Links.delete_account(conn, account), cancelled

    try:
        removed, cancelled = await store.db.write(unlink)
    finally:
        await store.close()
    if not removed and not cancelled:
        return False, f"no link for {account}"
    imports = f"; cancelled its imports ({cancelled} conversation(s) not sent)" if cancelled else ""
    return (
        True,
        f"unlinked {account}; removed its link and everything held for it{imports} (what is in Omi stays there)",
    )
