"""The peers of bench/ack_latency.py: what a user would run instead of the bridge, each as its own process.

  ptb   a plain python-telegram-bot bot in webhook mode: `Application.run_webhook` (PTB's own tornado server,
        the `[webhooks]` extra) on `/telegram/webhook` with a secret token; its one handler does nothing.
  bolt  a plain slack-bolt `AsyncApp` on Bolt's own aiohttp server (`AsyncApp.web_app`) on `/slack/events`; its
        `/omi` listener only `await ack()`s.

Neither reaches the network. PTB calls `getMe` (initialize) and `setWebhook` (run_webhook always sets the webhook)
before it listens, and Bolt calls `auth.test` on the first signed request: both go to the fake given by
`--bot-api` / `--slack-api` (bench/fakes.py's), or, without one, to the test-suite's fake started in a thread of
this process. Prints "ready" once the server listens on 127.0.0.1:PORT, and "handled N" when it stops.

python bench/peers.py ptb --port P [--bot-api URL --token T] [--secret S]
python bench/peers.py bolt --port P [--slack-api URL] [--token T] [--signing-secret S]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import threading
from collections.abc import Awaitable, Callable

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
#: The bench's secrets and tokens (as bench/common.py and the test-suite's fakes have them), repeated here so the
#: peers import nothing of the bridge: their memory is the library's alone.
TELEGRAM_SECRET = "bench-webhook-secret"  # noqa: S105 - a fake's, for benchmarks
TELEGRAM_TOKEN = "123456:TEST-token-never-logged"  # noqa: S105
SLACK_SIGNING_SECRET = "fake-signing-secret-8f14e45fceea167a"  # noqa: S105
SLACK_BOT_TOKEN = "xoxb-fake-bot-token"  # noqa: S105


def fake_in_thread(start: Callable[[], Awaitable[str]]) -> str:
    """Runs a fake server on an event loop of its own in a daemon thread; returns what `start` returned."""
    started: list[str] = []
    up = threading.Event()

    def run() -> None:
        loop = asyncio.new_event_loop()
        started.append(loop.run_until_complete(start()))
        up.set()
        loop.run_forever()

    threading.Thread(target=run, daemon=True).start()
    if not up.wait(30):
        raise RuntimeError("the fake did not start")
    return started[0]


def run_ptb(port: int, bot_api: str | None, token: str, secret: str) -> int:
    from telegram import Update
    from telegram.ext import Application, ApplicationBuilder, ContextTypes, MessageHandler, filters

    class ReadyApplication(Application):  # type: ignore[type-arg]
        """Says "ready" when started: run_webhook starts the application once the server listens (after
        `updater.start_webhook`; `post_init` comes before, too early)."""

        async def start(self) -> None:
            await super().start()
            print("ready", flush=True)

    if bot_api is None:
        sys.path.insert(0, ROOT)
        from tests.telegram.fake_bot_api import FakeBotApi

        async def start() -> str:
            return (await FakeBotApi(token).start()).base_url

        bot_api = fake_in_thread(start)
    handled = 0

    async def noop(_update: Update, _context: ContextTypes.DEFAULT_TYPE) -> None:
        nonlocal handled
        handled += 1  # nothing stored, nothing sent: context.bot is never called

    file_api = bot_api.removesuffix("/bot") + "/file/bot"  # never used: no file is downloaded
    builder = ApplicationBuilder().application_class(ReadyApplication).token(token)
    application = builder.base_url(bot_api).base_file_url(file_api).build()
    application.add_handler(MessageHandler(filters.ALL, noop))
    url = f"http://127.0.0.1:{port}/telegram/webhook"
    application.run_webhook(
        listen="127.0.0.1", port=port, url_path="/telegram/webhook", webhook_url=url, secret_token=secret
    )
    print(f"handled {handled}", flush=True)
    return 0


def run_bolt(port: int, slack_api: str | None, token: str, signing_secret: str) -> int:
    from aiohttp import web
    from slack_bolt.async_app import AsyncAck, AsyncApp
    from slack_sdk.web.async_client import AsyncWebClient

    if slack_api is None:
        sys.path.insert(0, ROOT)
        from tests.slack.fake_slack import FakeSlack

        slack_api = fake_in_thread(FakeSlack().start)
    handled = 0
    # The token through `client=` only; Bolt's single-workspace authorize calls auth.test there, once.
    app = AsyncApp(signing_secret=signing_secret, client=AsyncWebClient(token=token, base_url=slack_api))

    @app.command("/omi")
    async def omi(ack: AsyncAck) -> None:
        nonlocal handled
        handled += 1
        await ack()

    # What `AsyncApp.start(port, path)` runs, bound to loopback, with the "ready" line and no access log (as the
    # floors of bench/floors.py have it).
    web.run_app(
        app.web_app(path="/slack/events", port=port),
        host="127.0.0.1",
        port=port,
        access_log=None,
        print=lambda *_: print("ready", flush=True),
    )
    print(f"handled {handled}", flush=True)
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("kind", choices=("ptb", "bolt"))
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--bot-api", metavar="URL", help="ptb: the fake Bot API's base URL (…/bot)")
    parser.add_argument("--slack-api", metavar="URL", help="bolt: the fake Slack Web API's base URL (…/api/)")
    parser.add_argument("--token", help="the bot token (default: the fakes')")
    parser.add_argument("--secret", default=TELEGRAM_SECRET, help="ptb: the webhook secret token")
    parser.add_argument("--signing-secret", default=SLACK_SIGNING_SECRET, help="bolt: the Slack signing secret")
    args = parser.parse_args()
    if args.kind == "ptb":
        return run_ptb(args.port, args.bot_api, args.token or TELEGRAM_TOKEN, args.secret)
    return run_bolt(args.port, args.slack_api, args.token or SLACK_BOT_TOKEN, args.signing_secret)


if __name__ == "__main__":
    sys.exit(main())
