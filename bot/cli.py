"""The `omi-bridge` command line (SPEC §2); `python -m bot` is the same."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Callable, Coroutine, Sequence
from typing import TypeVar

from bot.checks import Finding
from bot.settings import Settings, SettingsError, load_settings

EXIT_OK, EXIT_FAIL, EXIT_USAGE = 0, 1, 2
T = TypeVar("T")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line and exit 2, as for settings
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


def _settings() -> Settings:
    try:
        return load_settings()
    except SettingsError as exc:
        print(f"omi-bridge: {exc}", file=sys.stderr)
        raise SystemExit(EXIT_USAGE) from None


# --- commands -------------------------------------------------------------------------------------


def cmd_sandbox(args: argparse.Namespace) -> int:
    from bot.runtime import wait_for_stop_signal
    from bot.sandbox import Sandbox

    async def main() -> None:
        sandbox = Sandbox(
            db_path=args.db or ":memory:",
            conversations_per_hour=args.conversations_per_hour,
            memories_per_hour=args.memories_per_hour,
            notifications_per_hour=args.notifications_per_hour,
            flavor=args.flavor,
        )
        try:
            base_url = await sandbox.start(args.host, args.port)
        except OSError as exc:
            print(f"omi-bridge sandbox: cannot listen on {args.host}:{args.port} ({exc.strerror})", file=sys.stderr)
            raise SystemExit(EXIT_FAIL) from None
        app_id, api_key, uid = sandbox.ensure_default()
        print(f"# Omi sandbox ({sandbox.flavor}): nothing leaves this machine. Paste these lines into .env:")
        print(f"OMI_API_BASE_URL={base_url}")
        print(f"OMI_APP_ID={app_id}")
        print(f"OMI_API_KEY={api_key}")
        print(f"OMI_TEST_UID={uid}", flush=True)
        try:
            await wait_for_stop_signal()
        finally:
            await sandbox.stop()
            sandbox.close()

    run_loop(main())
    return EXIT_OK


def _limit(value: str) -> int:
    """A sandbox limit: a whole number, 0 (off) or more."""
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {value!r}") from None
    if number < 0:
        raise argparse.ArgumentTypeError("must be 0 (off) or more")
    return number


async def run_checks(settings: Settings) -> list[Finding]:
    """Every check of `omi-bridge doctor`: the core's, then each configured platform's (from its adapter)."""
    from bot.checks import check_database, check_omi, check_omi_webhook, check_public_url, check_transcription

    findings = [await check_omi(settings)]
    if settings.telegram_enabled:
        from adapters.telegram.doctor import check_telegram

        findings += await check_telegram(settings)
    else:
        findings.append(Finding("OK", "telegram", "not configured (TELEGRAM_BOT_TOKEN unset)"))
    if settings.slack_enabled:
        from adapters.slack.doctor import check_slack

        findings += await check_slack(settings)
    else:
        findings.append(Finding("OK", "slack", "not configured (SLACK_BOT_TOKEN unset)"))
    findings += [check_database(settings), check_public_url(settings), await check_transcription(settings)]
    findings.append(check_omi_webhook(settings))
    return findings


def exit_code(findings: list[Finding]) -> int:
    return 1 if any(f.level == "FAIL" for f in findings) else 0


def cmd_doctor(args: argparse.Namespace) -> int:

    settings = _settings()
    findings = asyncio.run(run_checks(settings))
    for finding in findings:
        print(finding.line())
    return exit_code(findings)


def _configure_logging(settings: Settings, *, quiet: bool = False) -> None:
    from bot.logs import configure_logging

    level = settings.LOG_LEVEL
    if quiet and "LOG_LEVEL" not in settings.model_fields_set:
        level = "WARNING"  # the terminal is the chat: keep routine logs out of it unless asked for
    configure_logging(level, settings.LOG_FORMAT, settings.secret_values())


def run_loop(main: Coroutine[object, object, T]) -> T:
    """Run on uvloop where it is installed (it roughly halves the event loop's overhead per request)."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(main)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(main)


def _run_bridge(main: Coroutine[object, object, int]) -> int:
    from bot.worker_lock import WorkerLockBusy

    try:
        return run_loop(main)
    except SettingsError as exc:
        print(f"omi-bridge: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except WorkerLockBusy as exc:
        print(f"omi-bridge: {exc}", file=sys.stderr)
        return EXIT_FAIL


def cmd_console(args: argparse.Namespace) -> int:
    from bot.runtime import run_console

    settings = _settings()
    _configure_logging(settings, quiet=True)
    return _run_bridge(run_console(settings))


def cmd_run(args: argparse.Namespace) -> int:
    settings = _settings()
    if settings.telegram_enabled or settings.slack_enabled:
        return _serve(settings, allow_sandbox=True)  # `run` may use the sandbox; `serve` never does
    return cmd_console(args)


def cmd_link(args: argparse.Namespace) -> int:
    from bot.runtime import operator_link, parse_account

    try:
        account = parse_account(args.account)
    except ValueError as exc:
        print(f"omi-bridge link: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if not args.uid.strip():
        print("omi-bridge link: UID must not be empty", file=sys.stderr)
        return EXIT_USAGE
    settings = _settings()
    return _with_store(lambda: operator_link(settings, account, args.uid.strip()), lambda line: (line, EXIT_OK))


def cmd_unlink(args: argparse.Namespace) -> int:
    from bot.runtime import operator_unlink, parse_account

    try:
        account = parse_account(args.account)
    except ValueError as exc:
        print(f"omi-bridge unlink: {exc}", file=sys.stderr)
        return EXIT_USAGE
    settings = _settings()
    return _with_store(
        lambda: operator_unlink(settings, account), lambda result: (result[1], EXIT_OK if result[0] else EXIT_FAIL)
    )


def _with_store(command: Callable[[], Coroutine[object, object, T]], outcome: Callable[[T], tuple[str, int]]) -> int:
    """An operator command on the store: its line and exit code, or (a DATABASE_URL that refuses) one line, 2."""
    try:
        line, code = outcome(asyncio.run(command()))
    except SettingsError as exc:
        print(f"omi-bridge: {exc}", file=sys.stderr)
        return EXIT_USAGE
    print(line)
    return code


def cmd_serve(args: argparse.Namespace) -> int:
    return _serve(_settings(), allow_sandbox=False)


def _serve(settings: Settings, *, allow_sandbox: bool) -> int:
    from bot.runtime import run_serve

    _configure_logging(settings)
    return _run_bridge(run_serve(settings, allow_sandbox=allow_sandbox))


def cmd_slack_manifest(args: argparse.Namespace) -> int:
    from adapters.slack.manifest import PLACEHOLDER, render_manifest

    settings = _settings()
    if settings.PUBLIC_URL is None:
        print(
            f"omi-bridge slack-manifest: PUBLIC_URL is not set; replace {PLACEHOLDER} below with the https address"
            " Slack reaches this bridge at (or use --socket-mode)",
            file=sys.stderr,
        )
    print(render_manifest(settings.PUBLIC_URL, socket_mode=args.socket_mode), end="")
    return EXIT_OK


def cmd_omi_webhook_url(args: argparse.Namespace) -> int:
    """The one line to paste as the Omi app's webhook: the same secret `serve` accepts (generated and stored once)."""
    settings = _settings()
    code = _with_store(lambda: _omi_webhook_url(settings), lambda url: (url, EXIT_OK))
    if code == EXIT_OK and not (settings.PUBLIC_URL or "").startswith("https://"):
        print(
            "omi-bridge omi-webhook-url: Omi only calls public https URLs; set PUBLIC_URL to the https address"
            " Omi reaches this bridge at",
            file=sys.stderr,
        )
    return code


async def _omi_webhook_url(settings: Settings) -> str:
    from bot.clock import SystemClock
    from bot.pushes.secret import webhook_secrets, webhook_url
    from bot.runtime import open_store

    store = await open_store(settings, SystemClock())
    try:
        accepted = await webhook_secrets(settings.OMI_WEBHOOK_SECRET, store.values)
    finally:
        await store.close()
    return webhook_url(settings.public_url, accepted[0])  # the new one of "new,old"


def cmd_migrate_db(args: argparse.Namespace) -> int:
    from bot.migrate import MigrateDbError, migrate_db

    settings = _settings()
    try:
        lines = asyncio.run(migrate_db(settings.DATABASE_URL, args.to))
    except MigrateDbError as exc:
        print(f"omi-bridge migrate-db: {exc.line}", file=sys.stderr)
        return exc.code
    for line in lines:
        print(line)
    return EXIT_OK


# --- parser -----------------------------------------------------------------------------------------


def cmd_import(args: argparse.Namespace) -> int:
    from bot.import_cli import import_status, refuse, run_import
    from bot.importing.model import EXIT_INTERRUPTED, ImportRefused

    settings = _settings()
    _configure_logging(settings, quiet=True)
    try:
        if args.source == "status":
            return run_loop(import_status(settings))
        return run_loop(run_import(args, settings))
    except ImportRefused as exc:
        return refuse(exc)
    except KeyboardInterrupt:
        print("stopped: what was queued stays queued", file=sys.stderr)
        return EXIT_INTERRUPTED


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="omi-bridge",
        description="Save Telegram and Slack chats into Omi as conversations and memories.",
        epilog="Settings come from the environment and ./.env (see .env.example). With no command: `run`.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    def add(name: str, help_text: str, handler: Callable[[argparse.Namespace], int]) -> argparse.ArgumentParser:
        command = sub.add_parser(name, help=help_text, description=help_text)
        command.set_defaults(handler=handler)
        return command

    add("run", "serve when a chat platform is configured, else chat in the terminal", cmd_run)
    add("serve", "the web server, the configured platforms and the delivery worker", cmd_serve)
    add("console", "chat with the bot in the terminal", cmd_console)

    sandbox = add("sandbox", "run the Omi sandbox alone and print its settings", cmd_sandbox)
    sandbox.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    sandbox.add_argument("--port", type=int, default=8765, help="port to listen on (default 8765)")
    sandbox.add_argument("--db", metavar="FILE", help="SQLite file to keep state in (default: in memory)")
    sandbox.add_argument(
        "--conversations-per-hour", type=_limit, default=10, metavar="N", help="per app and uid, 0 = off (default 10)"
    )
    sandbox.add_argument(
        "--memories-per-hour", type=_limit, default=60, metavar="N", help="per app and uid, 0 = off (default 60)"
    )
    sandbox.add_argument(
        "--notifications-per-hour",
        type=_limit,
        default=None,
        metavar="N",
        help="notifications that pass per app, uid and clock hour, 0 = off (default 9, Omi's off-by-one; 10 with"
        " --flavor api-core)",
    )
    sandbox.add_argument(
        "--flavor",
        choices=("fastapi", "api-core"),
        default="fastapi",
        help="which Omi to imitate: its FastAPI server (default) or the staged API core implementation",
    )

    link = add("link", "link a chat account to an Omi uid (verified)", cmd_link)
    link.add_argument("account", metavar="PLATFORM:USER_ID")
    link.add_argument("uid", metavar="UID")
    unlink = add("unlink", "remove a chat account's link and everything held for it", cmd_unlink)
    unlink.add_argument("account", metavar="PLATFORM:USER_ID")

    add("doctor", "check the settings, Omi, the platforms and the database", cmd_doctor)
    manifest = add("slack-manifest", "print slack-manifest.yml with PUBLIC_URL filled in", cmd_slack_manifest)
    manifest.add_argument(
        "--socket-mode", action="store_true", help="with Socket Mode turned on (then SLACK_APP_TOKEN is needed)"
    )
    add(
        "omi-webhook-url",
        "print PUBLIC_URL/omi/webhook/<secret>, to paste as the Omi app's webhook (Memory creation)",
        cmd_omi_webhook_url,
    )
    from bot.import_cli import add_import_parser

    add_import_parser(sub, cmd_import)
    migrate = add(
        "migrate-db",
        "copy this SQLite deployment into an empty PostgreSQL database (serve must be stopped)",
        cmd_migrate_db,
    )
    migrate.add_argument(
        "--to",
        required=True,
        metavar="postgresql://…",
        help="the empty PostgreSQL database to move to; the source is the SQLite file DATABASE_URL names",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "handler", None) is None:
        args = parser.parse_args(["run", *(argv or [])])
    try:
        return args.handler(args)
    except KeyboardInterrupt:
        return EXIT_OK


if __name__ == "__main__":
    raise SystemExit(main())
