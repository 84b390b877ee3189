"""`omi-bridge import …` (SPEC §2, §10): read a source, show or queue its conversations, then follow delivery with a
progress bar — delivering the import's items itself while no `serve` works on the database (handing over within
seconds when one starts), watching `serve` deliver otherwise. The composition root for imports: it may import the
adapters' readers."""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import Callable, Iterable
from contextlib import AsyncExitStack
from dataclasses import dataclass
from datetime import date
from typing import TextIO

from bot.clock import Clock, SystemClock
from bot.events import Address, Platform
from bot.importing.grouping import DEFAULT_GAP_MINUTES, conversations
from bot.importing.model import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE, ImportedMessage, ImportRefused
from bot.importing.queueing import ImportTarget, Queued, queue_import
from bot.settings import Settings
from bot.store import Store, windows
from bot.store.imports import Progress

#: How often the command looks at progress, and whether a `serve` wants the database (SPEC §10: hand over ≤ 5 s).
LOOK_SECONDS = 1.0


@dataclass(frozen=True)
class Loaded:
    """A source ready to read: which chat, and its messages in time order (read again on each call)."""

    source: str  # "telegram" | "slack"
    chat: str
    chat_name: str
    messages: Callable[[], Iterable[ImportedMessage]]


# --- arguments ------------------------------------------------------------------------------------------------


def _date(value: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date (YYYY-MM-DD): {value!r}") from None


def _gap(value: str) -> float:
    try:
        minutes = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of minutes: {value!r}") from None
    if not 0 < minutes <= 7 * 24 * 60:
        raise argparse.ArgumentTypeError("must be more than 0 and at most a week (10080 minutes)")
    return minutes


def add_import_parser(sub: argparse._SubParsersAction, handler: Callable[[argparse.Namespace], int]) -> None:  # type: ignore[type-arg]
    """`import telegram|slack|slack-export|status` under the main parser."""
    command = sub.add_parser("import", help="import chat history into Omi (SPEC §10)", description=__doc__)
    kinds = command.add_subparsers(dest="source", metavar="SOURCE", required=True, parser_class=type(command))
    telegram = kinds.add_parser("telegram", help="a Telegram Desktop export (result.json, Machine-readable JSON)")
    telegram.add_argument("file", metavar="FILE")
    telegram.add_argument("--chat", metavar="NAME_OR_ID", help="which chat of a full export")
    _common(telegram, "telegram:ID")
    slack = kinds.add_parser("slack", help="a Slack channel's history, through the Web API")
    slack.add_argument("--channel", required=True, metavar="C…")
    _common(slack, "slack:U…")
    export = kinds.add_parser("slack-export", help="a channel of a Slack workspace export (zip)")
    export.add_argument("file", metavar="FILE.zip")
    export.add_argument("--channel", required=True, metavar="NAME")
    _common(export, "slack:U…")
    kinds.add_parser("status", help="one line per import: source, account, delivered / total, state")
    command.set_defaults(handler=handler)


def _common(parser: argparse.ArgumentParser, account_example: str) -> None:
    parser.add_argument("--as", dest="account", metavar=account_example, help="the verified link to import for")
    parser.add_argument(
        "--gap", type=_gap, default=DEFAULT_GAP_MINUTES, metavar="MIN", help="quiet that starts a new conversation"
    )
    parser.add_argument("--since", type=_date, metavar="DATE", help="only messages from this day on (UTC)")
    parser.add_argument("--until", type=_date, metavar="DATE", help="only messages up to the end of this day (UTC)")
    parser.add_argument("--dry-run", action="store_true", help="show the conversations, write nothing")
    parser.add_argument("--no-wait", action="store_true", help="return once queued (serve delivers)")


# --- sources --------------------------------------------------------------------------------------------------


def load_telegram(args: argparse.Namespace) -> Loaded:
    from adapters.telegram.export import TelegramExport

    export = TelegramExport.open(args.file)
    chat = export.choose(args.chat)
    return Loaded("telegram", chat.id, chat.name, lambda: export.messages(chat))


def load_slack_export(args: argparse.Namespace) -> Loaded:
    from adapters.slack import export

    chats = export.list_channels(args.file)
    chosen = next((c for c in chats if args.channel in (c.name, c.name.lstrip("#"), c.id)), None)
    if chosen is None:
        names = ", ".join(f"#{c.name}" for c in chats[:30]) or "none"
        raise ImportRefused(f"No channel {args.channel!r} in {args.file}. Its channels: {names}")
    return Loaded("slack", chosen.id, f"#{chosen.name}", lambda: export.read_export(args.file, chosen.name))


async def load_slack(args: argparse.Namespace, settings: Settings) -> Loaded:
    """The channel's history through the Web API: read whole before anything is queued (the reader spools it to
    a temporary file, so a refusal — not in the channel, a missing scope — comes first), then kept as text."""
    from adapters.slack import history

    if settings.SLACK_BOT_TOKEN is None:
        raise ImportRefused("SLACK_BOT_TOKEN is not set: importing a channel reads it through the Slack Web API")
    client = history.import_client(settings.SLACK_BOT_TOKEN.get_secret_value(), settings.SLACK_API_URL)
    info = await history.channel_info(client, args.channel)
    messages = [m async for m in history.read_channel(client, args.channel, oldest=None, latest=None)]
    return Loaded("slack", info.id, f"#{info.name}", lambda: messages)


# --- the command ----------------------------------------------------------------------------------------------


def dry_run(loaded: Loaded, args: argparse.Namespace, out: TextIO = sys.stdout) -> int:
    """One line per conversation and a total; nothing written (SPEC §10)."""
    count = messages = 0
    for conversation in conversations(loaded.messages(), gap_minutes=args.gap, since=args.since, until=args.until):
        print(conversation.dry_run_line(), file=out)
        count += 1
        messages += conversation.count
    if not count:
        print("nothing to import", file=out)
        return EXIT_OK
    print(
        f"{count:,} conversation(s) from {messages:,} message(s) of {loaded.chat_name}; dry run, nothing written",
        file=out,
    )
    return EXIT_OK


async def run_import(args: argparse.Namespace, settings: Settings, out: TextIO = sys.stdout) -> int:
    clock = SystemClock()
    if args.source == "slack":
        loaded = await load_slack(args, settings)
    else:
        loaded = (load_telegram if args.source == "telegram" else load_slack_export)(args)
    if args.dry_run:
        return dry_run(loaded, args, out)
    if not args.account:
        raise ImportRefused(f"--as is needed: the verified link to import for ({loaded.source}:…)")
    store = await Store.open(settings.DATABASE_URL, clock)
    try:
        target = await _target(store, args.account, loaded.source)
        print(f"reading {loaded.chat_name}…", file=out, flush=True)
        queued = await queue_import(
            store.imports,
            clock,
            target,
            source=loaded.source,
            chat=loaded.chat,
            chat_name=loaded.chat_name,
            messages=loaded.messages(),
            gap_minutes=args.gap,
            since=args.since,
            until=args.until,
        )
        print(_queued_line(loaded, queued), file=out, flush=True)
        if queued.import_id is None or args.no_wait:
            return EXIT_OK
        return await follow(store, settings, clock, queued, out)
    finally:
        await store.close()


def _queued_line(loaded: Loaded, queued: Queued) -> str:
    already = f"; {queued.already:,} already imported before, left out" if queued.already else ""
    if queued.import_id is None:
        return f"nothing to import from {loaded.chat_name}{already}"
    return (
        f"queued {queued.conversations:,} conversation(s) from {queued.messages:,} message(s) of"
        f" {loaded.chat_name}{already}"
    )


async def _target(store: Store, account: str, source: str) -> ImportTarget:
    platform, _, user_id = account.partition(":")
    if platform != source or not user_id:
        raise ImportRefused(f"--as must be a {source} account ({source}:…), got {account!r}")
    verified, claim = await store.links.get(account)
    if verified is None:
        why = "its link is not verified yet" if claim is not None else "it is not linked"
        raise ImportRefused(f"{account}: {why}: link it in the chat (/start) or with `omi-bridge link`", EXIT_FAILED)
    return ImportTarget(account, verified.uid, Address(Platform(source), user_id, user_id))


async def follow(store: Store, settings: Settings, clock: Clock, queued: Queued, out: TextIO) -> int:
    """Until every item of the import is settled: a progress bar, and delivery by this process while no `serve`
    does it. Ctrl-C leaves the rest queued (exit 130)."""
    from rich.progress import BarColumn, MofNCompleteColumn, TextColumn
    from rich.progress import Progress as Bar

    assert queued.import_id is not None
    record = await store.imports.get(queued.import_id)
    assert record is not None
    delivering = Delivering(store, settings, clock)
    eta = Eta()
    bar = Bar(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[eta]}"))
    try:
        with bar:
            task = bar.add_task("delivering to Omi", total=queued.conversations, eta="")
            while True:
                progress = await store.imports.progress(queued.import_id)
                settled = progress.delivered + progress.failed
                share = await windows.import_share(store.db, record.uid)
                left = eta.left(settled, progress.total, share)
                bar.update(task, completed=settled, description=delivering.describe(), eta=left)
                if progress.finished:
                    break
                await delivering.step()
                await asyncio.sleep(LOOK_SECONDS)
    except (KeyboardInterrupt, asyncio.CancelledError):
        print("stopped: the rest stays queued for serve (or the next `omi-bridge import`)", file=out)
        return EXIT_INTERRUPTED
    finally:
        await delivering.stop()
    return _finished(progress, await store.imports.failures(queued.import_id), out)


class Eta:
    """An honest estimate: the rate observed over the last 10 minutes, never above what Omi's limit leaves an
    import once a 429 has shown it (L − 3 an hour per user, SPEC §10)."""

    WINDOW = 600.0

    def __init__(self) -> None:
        self._samples: list[tuple[float, int]] = []

    def left(self, settled: int, total: int, share: int | None, now: float | None = None) -> str:
        now = time.monotonic() if now is None else now
        self._samples = [(t, n) for t, n in self._samples if now - t <= self.WINDOW] + [(now, settled)]
        remaining = total - settled
        if remaining <= 0:
            return ""
        first_t, first_n = self._samples[0]
        rate = (settled - first_n) / (now - first_t) if now > first_t and settled > first_n else None
        cap = share / 3600.0 if share is not None else None
        if rate is None and cap is None:
            return "estimating…"
        per_second = min(r for r in (rate, cap) if r is not None)
        return f"about {_duration(remaining / per_second)} left"


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    if seconds < 2 * 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"


def _finished(progress: Progress, failures: list[tuple[str, str]], out: TextIO) -> int:
    print(f"imported {progress.delivered:,}/{progress.total:,}", file=out)
    for summary, reason in failures:
        print(f"  failed: {summary}: {reason}", file=out)
    return EXIT_FAILED if failures else EXIT_OK


class Delivering:
    """Delivers the import's items while no `serve` works on the database, and gives way when one starts."""

    def __init__(self, store: Store, settings: Settings, clock: Clock) -> None:
        self._store, self._settings, self._clock = store, settings, clock
        self._stack: AsyncExitStack | None = None
        self._lock: object | None = None
        self.mode = "starting"

    def describe(self) -> str:
        return {"self": "delivering to Omi", "serve": "serve delivers to Omi"}.get(self.mode, "delivering to Omi")

    async def step(self) -> None:
        if self.mode == "self" and await self._serve_wants_it():
            await self.stop()
            self.mode = "serve"
        elif self.mode == "starting":
            self.mode = "self" if await self._start() else "serve"

    async def _start(self) -> bool:
        from bot.delivery import DeliveryWorker
        from bot.runtime import connect_omi
        from bot.worker_lock import PostgresWorkerLock, WorkerLock

        if self._settings.database_engine == "postgresql":
            lock: WorkerLock | PostgresWorkerLock = PostgresWorkerLock(self._settings.DATABASE_URL, "db", shared=True)
            if not await asyncio.to_thread(lock.try_acquire) or await asyncio.to_thread(lock.others):
                lock.release()
                return False
        else:
            lock = WorkerLock(self._settings.database_path)
            if not lock.try_acquire():
                return False
        self._lock = lock
        self._stack = AsyncExitStack()
        self._stack.callback(lock.release)
        omi = await connect_omi(self._settings, self._stack, allow_sandbox=True)
        worker = DeliveryWorker(self._store, omi.client, self._clock, _Quiet(), imports_only=True)
        await worker.start()
        self._stack.push_async_callback(worker.stop, 10.0)
        return True

    async def _serve_wants_it(self) -> bool:
        from bot.worker_lock import PostgresWorkerLock, WorkerLock

        if isinstance(self._lock, WorkerLock):
            return self._lock.wanted()
        if isinstance(self._lock, PostgresWorkerLock):
            return await asyncio.to_thread(self._lock.others) > 0
        return False

    async def stop(self) -> None:
        if self._stack is not None:
            stack, self._stack = self._stack, None
            await stack.aclose()


class _Quiet:
    """Import items are told as one progress, never one by one: nothing to say per item."""

    async def delivered(self, items: object, *, discarded: bool = False) -> None:
        return None

    async def waiting(self, item: object, reason: str, retry_at: float) -> None:
        return None

    async def failed(self, item: object, reason: str) -> None:
        return None


async def import_status(settings: Settings, out: TextIO = sys.stdout) -> int:
    store = await Store.open(settings.DATABASE_URL, SystemClock())
    try:
        records = await store.imports.listed()
        if not records:
            print("no imports", file=out)
        for record in records:
            progress = await store.imports.progress(record.id)
            when = time.strftime("%Y-%m-%d %H:%M", time.gmtime(record.created_at))
            print(
                f"{record.id}\t{when} UTC\t{record.source} {record.chat_name}\t{record.account}"
                f"\t{progress.delivered}/{progress.total} delivered\t{record.state.value}",
                file=out,
            )
    finally:
        await store.close()
    return EXIT_OK


def refuse(exc: ImportRefused) -> int:
    print(f"omi-bridge import: {exc.message}", file=sys.stderr)
    return exc.code


__all__ = ["EXIT_USAGE", "add_import_parser", "import_status", "refuse", "run_import"]
