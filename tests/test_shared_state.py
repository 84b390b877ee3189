"""What one instance used to keep in memory lives in the shared database (SPEC §13): "More" buttons' queries,
verification codes on their way to the Omi app, Telegram's send pacing. Each test runs on SQLite and PostgreSQL
with two stores on one database — two instances behind a load balancer."""

from __future__ import annotations

import asyncio
import itertools
import logging
import threading
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime

import psycopg
import pytest

from bot.clock import ManualClock
from bot.events import Address, Platform, Reply
from bot.linking import CODE_CLAIM_SECONDS, CODE_TTL_SECONDS, FAST_RETRY_SECONDS, Linking, code_message, hash_secret
from bot.omi.errors import ForbiddenReason, OmiForbidden
from bot.omi.models import NewConversation
from bot.outbound import Outbound
from bot.store import Store, purge_shared
from bot.store.claims import Claims
from bot.store.pacing import TELEGRAM_BOT_GAP, TELEGRAM_CHAT_GAP, Pacing, telegram_limits
from bot.store.search_queries import QUERY_TTL_SECONDS
from tests.harness import ChatAdapter, ChatUser, start_bridge

#: Every test here runs on SQLite and on PostgreSQL (tests/conftest.py).
BOTH_ENGINES = True

ACCOUNT, UID, CODE = "telegram:5150", "uid-grace", "314159"
ADDRESS = Address(Platform.TELEGRAM, "5150", "5150")
EPSILON = 1e-6


@pytest.fixture
async def stores(database) -> AsyncIterator[tuple[ManualClock, Store, Store]]:
    """Two instances' stores on one database, on one manual clock."""
    clock = ManualClock()
    a = await Store.open(database, clock)
    b = await Store.open(database, clock)
    try:
        yield clock, a, b
    finally:
        await a.close()
        await b.close()


# --- "More" buttons ------------------------------------------------------------------------------------------------


async def test_a_query_kept_by_one_instance_is_found_by_another_for_a_week(stores):
    clock, a, b = stores
    token = await a.search_queries.remember("tomatoes in the garden")
    assert 1 <= len(f"search #{token} p99") <= 64  # fits Telegram's callback data
    assert await b.search_queries.get(token) == "tomatoes in the garden"
    assert await b.search_queries.get("unknown") is None
    other = await b.search_queries.remember("tomatoes in the garden")
    assert other != token and await a.search_queries.get(other) == "tomatoes in the garden"

    clock.advance(QUERY_TTL_SECONDS + 1)
    assert await b.search_queries.get(token) is None  # a week old: expired, even before housekeeping
    fresh = await a.search_queries.remember("cucumbers")
    await b.db.write(lambda conn: purge_shared(conn, clock.now(), b.db.now_sql))
    rows = await a.db.fetchall("SELECT token FROM search_queries")
    assert [row["token"] for row in rows] == [fresh]


async def test_more_pressed_on_another_instance_pages_the_same_search(env):
    for n in range(7):
        conversation = NewConversation(
            text=f"garden plan number {n} with tomatoes", started_at=datetime(2026, 3, n + 1, tzinfo=UTC)
        )
        await env.omi.create_conversation(env.uid, conversation)
    other_store = await Store.open(env.database, env.clock)
    other_adapter = ChatAdapter()
    other = await start_bridge(other_store, env.omi, env.clock, other_adapter, window=env.window)
    try:
        user = await env.linked_user(user_id="4242")
        await user.command("search", "tomatoes")
        first = await user.reply()
        assert "Page 1 of 2" in first.text
        [more] = first.buttons

        # The button's command reaches the other instance (from a second chat of the same Omi account: a session
        # of its own, which that instance processes itself).
        await other_store.links.link_verified("telegram:4343", env.uid)
        elsewhere = ChatUser(other, other_adapter, user_id="4343")
        await elsewhere.command(*more.data.split(" ", 1))
        second = await elsewhere.reply()
        assert "Page 2 of 2" in second.text and "tomatoes" in second.text
        await elsewhere.command("search", "#unknown p2")
        assert "That search has expired" in await elsewhere.reply_text()
    finally:
        await other.stop(grace=1.0)
        await other_store.close()


# --- verification codes on their way ---------------------------------------------------------------------------------


class FakeOmi:
    """An Omi that takes notifications (`installed`) or answers 403 "not installed"."""

    def __init__(self, *, installed: bool) -> None:
        self.installed = installed
        self.attempts = 0
        self.sent: list[tuple[str, str]] = []
        self._tried = asyncio.Condition()

    async def send_notification(self, uid: str, message: str) -> None:
        async with self._tried:
            self.attempts += 1
            self._tried.notify_all()
        if not self.installed:
            raise OmiForbidden("not installed", reason=ForbiddenReason.NOT_INSTALLED, status=403)
        self.sent.append((uid, message))

    async def wait_attempts(self, count: int) -> None:
        async with asyncio.timeout(5), self._tried:
            await self._tried.wait_for(lambda: self.attempts >= count)


@dataclass
class Said:
    """The chat adapter of an instance: what it told users."""

    platform: Platform = Platform.TELEGRAM
    replies: asyncio.Queue[Reply] = field(default_factory=asyncio.Queue)

    async def send(self, reply: Reply) -> None:
        await self.replies.put(reply)

    async def next(self) -> str:
        return (await asyncio.wait_for(self.replies.get(), 5)).text


@dataclass
class Instance:
    linking: Linking
    omi: FakeOmi
    said: Said


def instance(store: Store, clock: ManualClock, name: str, *, installed: bool) -> Instance:
    omi, said, outbound = FakeOmi(installed=installed), Said(), Outbound()
    outbound.register(said)
    return Instance(Linking(store, omi, clock, outbound, instance=name), omi, said)  # type: ignore[arg-type]


async def owner_of(store: Store, account: str) -> str | None:
    row = await store.db.fetchone("SELECT owner FROM code_sends WHERE account = ?", (account,))
    return row["owner"] if row is not None else None


async def first_attempt_failed(a: Instance, clock: ManualClock) -> asyncio.Task[None]:
    """A sends the code; Omi says the app is not installed; A waits (on the clock) to try again. A's task."""
    a.linking.deliver_code(ACCOUNT, UID, CODE, ADDRESS)
    task = a.linking._senders[ACCOUNT]
    await a.omi.wait_attempts(1)
    await clock.next_sleeper(before=clock.now() + FAST_RETRY_SECONDS + 1)
    return task


async def test_a_code_send_claimed_by_one_instance_is_not_sent_by_another(stores):
    clock, store_a, store_b = stores
    a = instance(store_a, clock, "instance-a", installed=False)
    b = instance(store_b, clock, "instance-b", installed=True)
    try:
        await first_attempt_failed(a, clock)
        assert await owner_of(store_b, ACCOUNT) == "instance-a"
        assert await b.linking.recover() == 0  # A's claim holds: B leaves the send alone
        clock.advance(FAST_RETRY_SECONDS)
        await a.omi.wait_attempts(2)  # A goes on retrying
        assert await b.linking.recover() == 0
        assert b.omi.attempts == 0 and b.said.replies.empty()
    finally:
        await a.linking.stop()
        await b.linking.stop()


async def test_a_code_send_left_by_a_dead_instance_is_sent_by_another_exactly_once(stores, caplog):
    caplog.set_level(logging.DEBUG)
    clock, store_a, store_b = stores
    a = instance(store_a, clock, "instance-a", installed=False)
    b = instance(store_b, clock, "instance-b", installed=True)
    try:
        a_task = await first_attempt_failed(a, clock)
        # A stops answering (it died, or hangs): its claim is never extended again and runs out on the database's
        # clock, which B sees later on.
        store_b.db.clock_skew = FAST_RETRY_SECONDS + CODE_CLAIM_SECONDS + 1
        assert await b.linking.recover() == 1
        assert await owner_of(store_b, ACCOUNT) == "instance-b"

        clock.advance(FAST_RETRY_SECONDS)  # the retry is due: B sends it; A, should it wake, finds it is not its own
        assert "I sent a 6-digit code" in await b.said.next()
        assert b.omi.sent == [(UID, code_message(CODE, Platform.TELEGRAM))]
        await asyncio.wait_for(a_task, 5)
        assert a.omi.attempts == 1 and a.said.replies.empty()
        assert await store_a.code_sends.get(ACCOUNT) is None  # sent: the code has left the database
    finally:
        await a.linking.stop()
        await b.linking.stop()
    logged = "\n".join(f"{record.getMessage()} {record.args!r}" for record in caplog.records)
    assert "code send(s) left by a stopped instance" in logged
    assert CODE not in logged


async def test_a_stopping_instance_hands_its_code_sends_over_at_once(stores):
    clock, store_a, store_b = stores
    a = instance(store_a, clock, "instance-a", installed=False)
    b = instance(store_b, clock, "instance-b", installed=True)
    try:
        await first_attempt_failed(a, clock)
        await a.linking.stop()  # a deploy: A goes, its claims with it
        assert await b.linking.recover() == 1  # no need to wait for the claim to run out
        clock.advance(FAST_RETRY_SECONDS)
        assert "I sent a 6-digit code" in await b.said.next()
        assert a.omi.attempts == 1 and len(b.omi.sent) == 1
    finally:
        await b.linking.stop()


async def test_verifying_on_another_instance_ends_the_code_send(stores):
    clock, store_a, store_b = stores
    a = instance(store_a, clock, "instance-a", installed=False)
    b = instance(store_b, clock, "instance-b", installed=True)
    now = clock.now()
    await store_a.db.write(lambda conn: Claims.put(conn, ACCOUNT, UID, "grace", now))
    await store_a.claims.set_code(ACCOUNT, hash_secret(CODE), now + CODE_TTL_SECONDS, UID, now)
    try:
        a_task = await first_attempt_failed(a, clock)
        # Omi showed the code after all (a retry the bridge did not see through); the user types it on B.
        assert (await b.linking.verify(ACCOUNT, CODE)).outcome == "verified"
        assert await store_a.code_sends.get(ACCOUNT) is None
        clock.advance(FAST_RETRY_SECONDS)
        await asyncio.wait_for(a_task, 5)
        assert a.omi.attempts == 1  # no further attempt, and nothing said about a code
        assert a.said.replies.empty() and b.said.replies.empty()
    finally:
        await a.linking.stop()
        await b.linking.stop()


async def test_an_expired_code_is_never_taken_up_and_leaves_the_database(stores):
    clock, store_a, store_b = stores
    b = instance(store_b, clock, "instance-b", installed=True)
    now = clock.now()
    # Two sends a dead instance left (claims that ran out): one whose code expired meanwhile, one still good.
    await store_a.code_sends.put(ACCOUNT, UID, CODE, ADDRESS, now, now + 60, "instance-dead", 0.0)
    await store_a.code_sends.put("telegram:7", "uid-x", "271828", ADDRESS, now, now + 600, "instance-dead", 0.0)
    clock.advance(61)
    store_b.db.clock_skew = 1.0
    try:
        assert await b.linking.recover() == 1
        assert "I sent a 6-digit code" in await b.said.next()
        assert b.omi.sent == [("uid-x", code_message("271828", Platform.TELEGRAM))]
        assert await store_a.db.fetchall("SELECT account FROM code_sends") == []
    finally:
        await b.linking.stop()


async def test_housekeeping_drops_code_sends_whose_code_expired(stores):
    clock, a, b = stores
    now = clock.now()
    await a.code_sends.put(ACCOUNT, UID, CODE, ADDRESS, now, now + CODE_TTL_SECONDS, "instance-a", CODE_CLAIM_SECONDS)
    await b.db.write(lambda conn: purge_shared(conn, clock.now(), b.db.now_sql))
    assert (await b.code_sends.get(ACCOUNT)).code == CODE  # still good: kept
    clock.advance(CODE_TTL_SECONDS)
    await b.db.write(lambda conn: purge_shared(conn, clock.now(), b.db.now_sql))
    assert await a.db.fetchall("SELECT account FROM code_sends") == []


# --- Telegram's send pacing ------------------------------------------------------------------------------------------


def gaps(slots: list[float]) -> list[float]:
    ordered = sorted(slots)
    return [later - earlier for earlier, later in itertools.pairwise(ordered)]


async def test_two_instances_never_send_to_one_chat_more_than_once_a_second(stores):
    _, a, b = stores
    reservations = [store.pacing.reserve(telegram_limits("1001")) for _ in range(6) for store in (a, b)]
    slots = await asyncio.gather(*reservations)
    assert min(gaps([slot.at for slot in slots])) >= TELEGRAM_CHAT_GAP - EPSILON
    # The first message goes at once; the others wait their turn.
    assert sorted(slot.wait for slot in slots)[:2] == [0.0, pytest.approx(TELEGRAM_CHAT_GAP, abs=0.5)]


async def test_two_instances_keep_the_bots_limit_across_chats(stores):
    _, a, b = stores
    slots = await asyncio.gather(
        *(store.pacing.reserve(telegram_limits(f"{n}")) for n in range(30) for store in (a, b))
    )
    assert min(gaps([slot.at for slot in slots])) >= TELEGRAM_BOT_GAP - EPSILON  # at most 25 a second in all


async def test_a_chat_waits_for_both_its_own_and_the_bots_limit(stores):
    _, a, b = stores
    busy = await asyncio.gather(*(a.pacing.reserve(telegram_limits(f"busy-{n}")) for n in range(40)))
    first = await b.pacing.reserve(telegram_limits("1001"))
    second = await a.pacing.reserve(telegram_limits("1001"))
    assert first.at >= max(slot.at for slot in busy) + TELEGRAM_BOT_GAP - EPSILON  # behind the bot's other messages
    assert second.at - first.at >= TELEGRAM_CHAT_GAP - EPSILON  # the chat's second slot counts from its first


@pytest.mark.postgresql_only  # SQLite runs one write transaction at a time: no reservation is ever in flight
async def test_a_reservation_waits_for_one_still_open_on_another_instance(stores, engine, database):
    _, a, b = stores
    await a.pacing.reserve(telegram_limits("1001"))  # the chat's and the bot's rows exist: the usual case
    inside, commit = threading.Event(), threading.Event()

    def held_open(conn):  # A's reservation, its transaction kept open until the test lets it commit
        slot = Pacing.take(conn, a.db.now_sql, telegram_limits("1001"))
        inside.set()
        assert commit.wait(5)
        return slot

    first = asyncio.create_task(a.db.write(held_open))
    assert await asyncio.to_thread(inside.wait, 5)
    second = asyncio.create_task(b.pacing.reserve(telegram_limits("1001")))
    await asyncio.to_thread(until_a_lock_is_waited_for, database)  # B's reservation queues behind A's open one...
    commit.set()
    first_slot, second_slot = await asyncio.gather(first, second)
    assert second_slot.at - first_slot.at >= TELEGRAM_CHAT_GAP - EPSILON  # ...and reads what A reserved


def until_a_lock_is_waited_for(database: str) -> None:
    """Until some transaction waits for a lock another holds (looked for on a connection of its own)."""
    deadline = time.monotonic() + 5
    with psycopg.connect(database, autocommit=True) as conn:
        while not conn.execute("SELECT COUNT(*) FROM pg_locks WHERE NOT granted").fetchone()[0]:
            assert time.monotonic() < deadline, "the second reservation never waited for the first"
            time.sleep(0.01)


async def test_pacing_rows_long_past_are_purged(stores):
    clock, a, b = stores
    await a.pacing.reserve(telegram_limits("1001"))
    b.db.clock_skew = 120.0
    await b.db.write(lambda conn: purge_shared(conn, clock.now(), b.db.now_sql))
    assert await a.db.fetchall("SELECT key FROM send_pacing") == []


async def test_the_omi_request_cap_holds_over_every_instance(stores):
    """OMI_MAX_REQUESTS_PER_MINUTE caps the app key, not a process (SPEC §7, §13): two instances' pacers share
    the key's slots in the database, so together they stay under the cap."""
    from bot.omi.pacing import RequestPacer

    _, a, b = stores
    pacers = [RequestPacer(120, ManualClock()) for _ in (a, b)]  # 2 a second: a slot every 0.5 s
    slots: list[float] = []
    for pacer, store in zip(pacers, (a, b), strict=True):

        async def reserve(interval: float, store: Store = store) -> float:
            slot = await store.pacing.reserve((("omi:key", interval),))
            slots.append(slot.at)
            return 0.0  # measured on the slots, not by waiting for them

        pacer.share(reserve)
    for n in range(6):
        await pacers[n % 2].wait()
    assert len(slots) == 6
    gaps = [later - earlier for earlier, later in itertools.pairwise(sorted(slots))]
    assert min(gaps) >= 0.5 - 1e-6
