"""Nothing lost, nothing duplicated: users forward bursts and `/remember` facts through `omi-bridge serve`
(Telegram webhook) while the sandbox injects 429s with Retry-After, 500s, 503s, slow answers, dropped connections
and 504-after-write, and the bridge is killed with SIGKILL and restarted several times. Updates the bridge did not
acknowledge are sent again, as Telegram does. At the end every message must be in exactly one Omi conversation and
every fact in Omi's memories. (tests/test_chaos.py is the small in-process version.)

    python bench/chaos.py [--users 40] [--rounds 12] [--kills 4] [--seed 1]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import re
import signal
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
import httpx
from common import (  # type: ignore[import-not-found]
    TELEGRAM_SECRET,
    Proc,
    free_port,
    link_users,
    serve_env,
    start_fakes,
    start_serve,
    table,
)

WINDOW = 0.3
FAULTS = [
    {"status": 429, "retry_after": 2},
    {"status": 500},
    {"status": 503},
    {"delay": 3.0},
    {"drop": True},
    {"after_write": True},
    {"drop": True, "after_write": True},
]


def message_update(update_id: int, user: int, text: str, *, forward: bool) -> dict:
    message = {
        "message_id": update_id,
        "date": 1764300000 + update_id,
        "chat": {"id": 1000 + user, "type": "private"},
        "from": {"id": 1000 + user, "is_bot": False, "first_name": "User", "last_name": str(user)},
        "text": text,
    }
    if text.startswith("/"):
        message["entities"] = [{"type": "bot_command", "offset": 0, "length": len(text.split()[0])}]
    if forward:
        message["forward_origin"] = {
            "type": "user",
            "date": 1764200000 + update_id,
            "sender_user": {"id": 77, "is_bot": False, "first_name": "Grace", "last_name": "Hopper"},
        }
    return {"update_id": update_id, "message": message}


class Bridge:
    """`omi-bridge serve`, killed and started again on the same database."""

    def __init__(self, env: dict[str, str], work: Path) -> None:
        self.env, self.work = env, work
        self.proc: Proc | None = None
        self.url = ""

    def start(self) -> None:
        self.proc, self.url = start_serve(self.env, cwd=self.work)

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.stop(signal.SIGKILL)


async def send_all(bridge: Bridge, updates: list[dict]) -> list[dict]:
    """POST updates (one user's in order); returns those not acknowledged (to send again, as Telegram would)."""
    headers = {"X-Telegram-Bot-Api-Secret-Token": TELEGRAM_SECRET}
    unacked: list[dict] = []
    by_user: dict[int, list[dict]] = {}
    for item in updates:
        by_user.setdefault(item["message"]["from"]["id"], []).append(item)
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:

        async def user_updates(items: list[dict]) -> None:
            for position, item in enumerate(items):
                try:
                    async with session.post(f"{bridge.url}/telegram/webhook", json=item, headers=headers) as answer:
                        ok = answer.status == 200
                except aiohttp.ClientError:
                    ok = False
                if not ok:
                    unacked.extend(items[position:])  # Telegram keeps the order: stop here, resend from here
                    return

        await asyncio.gather(*(user_updates(items) for items in by_user.values()))
    return unacked


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, default=40)
    parser.add_argument("--rounds", type=int, default=12)
    parser.add_argument("--kills", type=int, default=4)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--max-drain", type=float, default=600.0)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    work = Path(tempfile.mkdtemp(prefix="omi-bridge-chaos-"))
    fakes_proc, fakes = start_fakes()
    admin = httpx.Client(base_url=fakes["omi_url"], timeout=30)
    uids = [f"bench-uid-{user}" for user in range(args.users)]
    for uid in uids:
        admin.post(f"/_sandbox/apps/{fakes['app_id']}/enable", json={"uid": uid})
    db = work / "bridge.db"
    link_users(db, [(f"telegram:{1000 + user}", uids[user]) for user in range(args.users)])
    bridge = Bridge(serve_env(fakes, db, free_port(), BATCH_WINDOW_SECONDS=str(WINDOW)), work)
    bridge.start()
    kill_after = set(rng.sample(range(1, args.rounds), min(args.kills, args.rounds - 1)))
    messages: dict[str, int] = {}  # text token → user
    facts: dict[str, set[str]] = {uid: set() for uid in uids}
    update_id = 0
    resend: list[dict] = []
    injected = kills = resent = 0
    started = time.perf_counter()
    try:
        for round_number in range(args.rounds):
            for route in ("create_conversation", "create_memories"):
                for fault in rng.sample(FAULTS, 3):
                    admin.post("/_sandbox/faults", json={"route": route, "times": rng.randint(1, 4), **fault})
                    injected += 1
            admin.post("/_sandbox/faults", json={"route": "read_conversations", "status": 503, "times": 1})
            updates = list(resend)
            resent += len(resend)
            for user in range(args.users):
                forward = rng.random() < 0.5
                for _ in range(rng.randint(1, 3)):
                    update_id += 1
                    token = f"m{update_id}"
                    messages[token] = user
                    text = f"{token} from user {user}: the garden plan needs more tomatoes this year"
                    updates.append(message_update(update_id, user, text, forward=forward))
                if round_number % 2 == 0:
                    update_id += 1
                    fact = f"fact {update_id} of user {user} is worth keeping"
                    facts[uids[user]].add(fact)
                    updates.append(message_update(update_id, user, f"/remember {fact}", forward=False))
            if round_number in kill_after:
                # Kill while this round's updates are arriving and earlier ones are being delivered.
                sending = asyncio.run(_send_and_kill(bridge, updates, rng))
                kills += 1
                bridge.start()
                resend = sending
            else:
                resend = asyncio.run(send_all(bridge, updates))
            time.sleep(WINDOW * 2)  # pacing the load: the users' bursts close between rounds
        while resend:
            resent += len(resend)
            resend = asyncio.run(send_all(bridge, resend))
        sent_all = time.perf_counter()
        lost, duplicated, missing_facts = _compare(admin, uids, messages, facts)
        while (lost or missing_facts) and time.perf_counter() - sent_all < args.max_drain:
            time.sleep(1.0)  # the bridge drains at its own pace (backoff, looks before re-sending)
            lost, duplicated, missing_facts = _compare(admin, uids, messages, facts)
        drained = time.perf_counter() - sent_all
    finally:
        if bridge.proc is not None:
            bridge.proc.stop()
        admin.close()
        fakes_proc.stop()

    print(f"\nchaos: {args.users} users, {args.rounds} rounds, seed {args.seed}, {time.perf_counter() - started:.0f} s")
    print(
        table(
            [
                "messages",
                "facts",
                "faults injected",
                "SIGKILLs",
                "updates re-sent",
                "lost",
                "duplicated",
                "facts lost",
                "drain s",
            ],
            [
                [
                    len(messages),
                    sum(map(len, facts.values())),
                    injected,
                    kills,
                    resent,
                    lost,
                    duplicated,
                    missing_facts,
                    f"{drained:.0f}",
                ]
            ],
        )
    )
    return 0


async def _send_and_kill(bridge: Bridge, updates: list[dict], rng: random.Random) -> list[dict]:
    """Send a round and SIGKILL the bridge part-way through; returns what was not acknowledged."""
    sending = asyncio.create_task(send_all(bridge, updates))
    await asyncio.sleep(rng.uniform(0.005, 0.03))
    bridge.kill()
    return await sending


def _compare(
    admin: httpx.Client, uids: list[str], messages: dict[str, int], facts: dict[str, set[str]]
) -> tuple[int, int, int]:
    """(messages in no conversation, messages in more than one, facts not in Omi's memories)."""
    seen: dict[str, int] = {}
    missing_facts = 0
    for uid in uids:
        for conversation in admin.get("/_sandbox/conversations", params={"uid": uid}).json()["conversations"]:
            text = (conversation.get("external_data") or {}).get("text", "")
            for token in set(re.findall(r"\bm\d+\b", text)):
                seen[token] = seen.get(token, 0) + text.count(f"{token} from")
        stored = {m["content"] for m in admin.get("/_sandbox/memories", params={"uid": uid}).json()["memories"]}
        missing_facts += len(facts[uid] - stored)
    lost = sum(1 for token in messages if seen.get(token, 0) == 0)
    duplicated = sum(1 for token in messages if seen.get(token, 0) > 1)
    return lost, duplicated, missing_facts


if __name__ == "__main__":
    sys.exit(main())
