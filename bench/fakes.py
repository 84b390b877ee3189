"""The outside world for the benchmarks, in a process of its own: the Omi sandbox (rate limits off, optional
latency per create), the fake Telegram Bot API and the fake Slack Web API from the test-suite.

python bench/fakes.py [--omi-latency SECONDS] [--omi-db FILE]  → prints one JSON line with the addresses."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bot.sandbox import ALL_CAPABILITIES, Sandbox
from tests.slack.fake_slack import FakeSlack
from tests.telegram.fake_bot_api import FakeBotApi


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--omi-latency", type=float, default=0.0)
    parser.add_argument("--omi-db", default=":memory:")
    args = parser.parse_args()
    sandbox = Sandbox(db_path=args.omi_db, conversations_per_hour=0, memories_per_hour=0)
    omi_url = await sandbox.start("127.0.0.1", 0)
    app = sandbox.create_app(name="omi-bridge bench", capabilities=ALL_CAPABILITIES)
    if args.omi_latency:
        for route in ("create_conversation", "create_memories"):
            sandbox.add_fault(route, delay=args.omi_latency, times=None)
    telegram = await FakeBotApi().start()
    slack = FakeSlack()
    await slack.start()
    print(
        json.dumps(
            {
                "omi_url": omi_url,
                "app_id": app.app_id,
                "api_key": app.api_key,
                "telegram_token": telegram.token,
                "telegram_url": telegram.base_url,
                "slack_url": slack.api_url,
            }
        ),
        flush=True,
    )
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        asyncio.get_running_loop().add_signal_handler(sig, stop.set)
    await stop.wait()
    await slack.stop()
    await telegram.stop()
    await sandbox.stop()
    sandbox.close()


if __name__ == "__main__":
    asyncio.run(main())
