"""The outbox as a guarded state machine (SPEC §7): stale attempts record nothing, a stopped bridge writes nothing,
payloads are typed Omi writes, and an upgrade rewrites what the previous version queued."""

from __future__ import annotations

import asyncio
import json
import threading
from collections import Counter

import httpx
import pytest

from bot.clock import ManualClock
from bot.delivery import FIRST_LOOK_SECONDS, MAX_ATTEMPTS
from bot.delivery.worker import LEASE_SECONDS
from bot.events import Address, Platform
from bot.omi.client import OmiClient
from bot.omi.models import ExplicitMemory, NewConversation, NewMemories
from bot.store import ItemKind, ItemState, NewItem, Outbox, Store, open_database
from bot.store.leases import Leases
from bot.store.migrations import MIGRATIONS
from tests.harness import Env, start_bridge
from tests.transports import Exploding, HeldResponses

#: Every test that uses `env` runs against both Omi flavors and on both database engines (tests/conftest.py).
BOTH_FLAVORS = True
BOTH_ENGINES = True

TEXT = "the plan for the garden is to plant tomatoes in april"


def held_client(env: Env, transport: httpx.AsyncBaseTransport) -> OmiClient:
    key = env.sandbox.mint_key(env.app_id)
    return OmiClient(env.omi.base_url, env.app_id, key, create_timeout=3.0, read_timeout=3.0, transport=transport)


def delivered(env: Env) -> Counter[str]:
    return Counter(env.texts())


def deliveries_running() -> list[str]:
    return [t.get_name() for t in asyncio.all_tasks() if t.get_name().startswith("deliver:") and not t.done()]


async def test_an_attempt_that_ends_after_a_restart_records_nothing(env):
    """The CI flake of issue 11, made deterministic: an attempt of the previous bridge hears "500" only after the
    new bridge found the conversation and marked it done. Before the guard, its "retry later" write put the done
    item (payload cleared) back in the queue, where it failed forever."""
    await env.bridge.stop()
    held = HeldResponses()
    old_omi = held_client(env, held)
    old = await start_bridge(env.store, old_omi, env.clock, env.adapter, window=env.window)
    env.bridge = old
    user = await env.linked_user()
    env.sandbox.add_fault("create_conversation", status=500, after_write=True)  # Omi wrote it, then said 500
    await user.say(TEXT)
    await env.close_bursts()
    await asyncio.wait_for(held.arrived.wait(), 5)

    # The restart, with the old attempt still out: the new bridge recovers the item and looks before re-sending.
    new = await start_bridge(env.store, env.omi, env.clock, env.adapter, window=env.window)
    env.bridge = new
    user.bridge = new
    if env.store.db.engine == "postgresql":
        # Several instances may share PostgreSQL: the item is recovered only once the old one's lease has
        # expired on the database's clock (on SQLite, one worker per file, the new one clears it at start).
        env.store.db.clock_skew = LEASE_SECONDS + 1
        await new.worker.recover_orphans()
    await env.run_clock(FIRST_LOOK_SECONDS + 1)
    assert (await user.reply()).reaction == "👍"
    [row] = await env.store.db.fetchall("SELECT state, payload FROM outbox")
    assert (row["state"], row["payload"]) == ("done", "")

    held.release()  # the old attempt ends now, with its 500
    await old.stop(grace=5)
    await env.run_clock(3600)
    [row] = await env.store.db.fetchall("SELECT state, attempts, last_error FROM outbox")
    assert row["state"] == "done" and row["attempts"] == 0
    assert await env.store.outbox.depth() == 0
    assert delivered(env) == Counter({TEXT: 1})
    assert user.no_reply_pending()  # the old attempt told nobody "Omi is unavailable"
    await old_omi.aclose()


async def test_stop_without_grace_ends_every_attempt_and_nothing_writes_afterwards(env):
    await env.bridge.stop()
    held = HeldResponses()
    old_omi = held_client(env, held)
    bridge = await start_bridge(env.store, old_omi, env.clock, env.adapter, window=env.window)
    env.bridge = bridge
    user = await env.linked_user()
    await user.say(TEXT)
    await env.close_bursts()
    await asyncio.wait_for(held.arrived.wait(), 5)
    assert deliveries_running()

    await bridge.stop(grace=0)
    assert deliveries_running() == []  # stop returned after every attempt ended
    before = [tuple(row) for row in await env.store.db.fetchall("SELECT * FROM outbox")]
    held.release()
    await env.store.db.barrier()
    after = [tuple(row) for row in await env.store.db.fetchall("SELECT * FROM outbox")]
    assert after == before
    assert [row[4] for row in after] == ["sending"]  # left for the next start to recover (look first)
    await old_omi.aclose()


async def test_a_write_cancelled_before_it_began_is_not_made(database):
    db = open_database(database)
    await db.open()
    busy, release = threading.Event(), threading.Event()

    def slow(conn):
        busy.set()
        release.wait(5)
        conn.execute("INSERT INTO stored_values (key, value) VALUES ('first', '1')")

    try:
        await _cancelled_before_it_began(db, busy, release, slow)
    finally:
        release.set()
        await db.close()


async def _cancelled_before_it_began(db, busy, release, slow):
    first = asyncio.create_task(db.write(slow))
    await asyncio.to_thread(busy.wait, 5)  # the writer is inside the first commit
    second = asyncio.create_task(
        db.write(lambda conn: conn.execute("INSERT INTO stored_values (key, value) VALUES ('second', '2')"))
    )
    await asyncio.sleep(0)  # let `second` queue its write
    second.cancel()
    release.set()
    await first
    await db.barrier()
    rows = await db.fetchall("SELECT key FROM stored_values ORDER BY key")
    assert [row["key"] for row in rows] == ["first"]
    assert second.cancelled()


@pytest.fixture
async def store(database):
    opened = await Store.open(database, ManualClock())
    try:
        yield opened
    finally:
        await opened.close()


def conversation_item(account: str = "telegram:1", uid: str = "uid-ada") -> NewItem:
    return NewItem(
        account=account,
        uid=uid,
        kind=ItemKind.CONVERSATION,
        write=NewConversation(text=TEXT, text_source_spec="telegram"),
        address=Address(Platform.TELEGRAM, "1", "1"),
    )


async def test_transitions_name_the_state_and_attempt_they_expect(store):
    [item_id] = await store.db.write(lambda conn: Outbox.add(conn, [conversation_item()], 100.0))
    [claimed] = await store.db.write(lambda conn: Outbox.claim(conn, [item_id], 100.0))
    assert claimed.state is ItemState.SENDING and claimed.attempt == 1
    # Claimed again while in flight: not due, nothing taken (the stale read of a dispatch).
    assert await store.db.write(lambda conn: Outbox.claim(conn, [item_id], 100.0)) == []
    done = await store.db.write(
        lambda conn: Outbox.transition(conn, [claimed.claim], expect=ItemState.SENDING, to=ItemState.DONE)
    )
    assert done == [item_id]
    # Every later outcome of that attempt, or of an older one, changes nothing: done is final.
    for claim in (claimed.claim, (item_id, 0)):
        for to in (ItemState.PENDING, ItemState.FAILED, ItemState.UNKNOWN):
            changed = await store.db.write(
                lambda conn, claim=claim, to=to: Outbox.transition(conn, [claim], expect=ItemState.SENDING, to=to)
            )
            assert changed == []
    assert await store.db.write(lambda conn: Outbox.claim(conn, [item_id], 10_000.0)) == []
    row = await store.db.fetchone("SELECT state, payload FROM outbox WHERE id = ?", (item_id,))
    assert (row["state"], row["payload"]) == ("done", "")


async def test_an_item_left_sending_is_recovered_only_once_its_lease_has_expired(store):
    """SPEC §13: an item found `sending` under an expired lease is an unknown outcome (looked for), never re-sent
    directly — and never taken from an instance whose lease is still live."""
    db, now_sql = store.db, store.db.now_sql
    [item_id] = await db.write(lambda conn: Outbox.add(conn, [conversation_item()], 100.0))
    lease = await db.write(lambda conn: Leases.take(conn, now_sql, "uid:uid-ada", "instance-a", 300.0))
    [claimed] = await db.write(lambda conn: Outbox.claim(conn, [item_id], 100.0, lease))

    def recover(conn):
        return Outbox.recover_orphans(conn, db.now_sql, 200.0, "unconfirmed")

    assert await db.write(recover) == (0, 0, [])  # instance A is alive: its item is left alone
    assert await db.write(lambda conn: Leases.take(conn, now_sql, "uid:uid-ada", "instance-b", 300.0)) is None
    db.clock_skew = 301.0  # A died: its lease runs out on the database's clock
    assert (await db.write(recover))[0] == 1
    item = await store.outbox.get(item_id)
    assert item.state is ItemState.UNKNOWN and item.attempt == 2 and item.next_attempt_at == 320.0
    # A's late outcome is refused twice over: the attempt moved on, and the lease is not A's any more.
    taken = await db.write(lambda conn: Leases.take(conn, db.now_sql, "uid:uid-ada", "instance-b", 300.0))
    assert taken is not None and taken.epoch == lease.epoch + 1
    late = await db.write(
        lambda conn: Outbox.transition(
            conn, [claimed.claim], expect=ItemState.SENDING, to=ItemState.PENDING, lease=lease
        )
    )
    assert late == []


async def test_a_lease_is_one_instance_at_a_time_and_renewed_only_by_its_holder(store):
    db = store.db
    a = await db.write(lambda conn: Leases.take(conn, db.now_sql, "job:housekeeping", "a", 10.0))
    assert a is not None and a.epoch == 1
    assert await db.write(lambda conn: Leases.take(conn, db.now_sql, "job:housekeeping", "b", 10.0)) is None
    again = await db.write(lambda conn: Leases.take(conn, db.now_sql, "job:housekeeping", "a", 10.0))
    assert again == a  # our own lease, extended: same epoch
    db.clock_skew = 11.0
    b = await db.write(lambda conn: Leases.take(conn, db.now_sql, "job:housekeeping", "b", 10.0))
    assert b is not None and b.epoch == 2
    assert not await db.write(lambda conn: Leases.renew(conn, db.now_sql, a, 10.0))  # A lost it
    assert await db.write(lambda conn: Leases.renew(conn, db.now_sql, b, 10.0))
    await db.write(lambda conn: Leases.release(conn, a))  # a former holder cannot give it away
    assert await store.leases.holder("job:housekeeping") == b
    await db.write(lambda conn: Leases.release(conn, b))
    assert await store.leases.holder("job:housekeeping") is None


async def test_payloads_are_typed_omi_writes_read_back_by_kind(store):
    address = Address(Platform.SLACK, "D1", "U1")
    items = [
        conversation_item(),
        NewItem("slack:U1", "uid-ada", ItemKind.MEMORIES, NewMemories(memories=[ExplicitMemory(content="a")]), address),
        NewItem(
            "slack:U1", "uid-ada", ItemKind.EXTRACT, NewMemories(text="I like tea", text_source_spec="slack"), address
        ),
    ]
    ids = await store.db.write(lambda conn: Outbox.add(conn, items, 100.0))
    read = [await store.outbox.get(item_id) for item_id in ids]
    assert [type(item.write) for item in read] == [NewConversation, NewMemories, NewMemories]
    assert read[0].conversation.text == TEXT
    assert read[1].memories.memories == [ExplicitMemory(content="a")]
    assert read[2].memories.text == "I like tea" and read[2].memories.memories == []
    raw = await store.db.fetchone("SELECT payload FROM outbox WHERE id = ?", (ids[0],))
    assert json.loads(raw["payload"]) == {"text": TEXT, "text_source": "message", "text_source_spec": "telegram"}


async def _v1_database(path: str) -> None:
    """A database as the version before typed payloads left it, holding queued items of every kind."""
    db = open_database(path)
    await db.open(MIGRATIONS[:1])
    address = json.dumps({"platform": "telegram", "chat_id": "1001", "user_id": "1001"})
    legacy = [
        (
            "conversation",
            "pending",
            {
                "text": TEXT,
                "text_source": "message",
                "text_source_spec": "telegram",
                "started_at": "2026-03-12T09:00:00+00:00",
                "finished_at": "2026-03-12T09:00:00+00:00",
                "language": "en",
            },
        ),
        ("conversation", "unknown", {"text": "an unknown outcome from before the upgrade", "text_source": "message"}),
        (
            "memories",
            "pending",
            {"memories": [{"content": "I am vegetarian", "tags": ["food"]}], "text_source_spec": "telegram"},
        ),
        ("extract", "blocked", {"text": "my sister lives in Porto", "text_source_spec": "telegram"}),
        ("memories", "held", {"memories": [{"content": "held until verified"}], "text_source_spec": "telegram"}),
        ("conversation", "done", {}),
        ("conversation", "pending", {"txt": "a payload no version could read"}),
    ]

    def insert(conn):
        for n, (kind, state, payload) in enumerate(legacy):
            conn.execute(
                "INSERT INTO outbox (account, uid, kind, state, payload, address, summary, created_at, next_attempt_at,"
                " unknown_since) VALUES ('telegram:1001', 'uid-ada', ?, ?, ?, ?, 'your messages', ?, ?, ?)",
                (
                    kind,
                    state,
                    json.dumps(payload),
                    address,
                    1_780_000_000.0 + n,
                    1_780_000_000.0,
                    1_780_000_000.0 if state == "unknown" else None,
                ),
            )

    await db.write(insert)
    await db.close()


async def test_an_upgrade_rewrites_queued_payloads_and_delivers_them(env, spare_database):
    path = spare_database
    await _v1_database(path)
    await env.bridge.stop()
    await env.store.close()
    store = env.store = await Store.open(path, env.clock)  # the env closes it
    assert await store.db.schema_version() == MIGRATIONS[-1].version
    items = {item.id: item for item in await store.outbox.open_for_account("telegram:1001")}
    assert [item.kind for item in items.values()] == [
        ItemKind.CONVERSATION,
        ItemKind.CONVERSATION,
        ItemKind.MEMORIES,
        ItemKind.EXTRACT,
        ItemKind.MEMORIES,
        ItemKind.CONVERSATION,
    ]
    assert items[1].conversation.language == "en" and items[1].conversation.started_at is not None
    assert items[3].memories.memories[0].tags == ["food"]
    assert items[4].memories.text == "my sister lives in Porto"
    assert items[7].write is None and "text" in (items[7].payload_problem or "")
    assert "a payload no version could read" not in (items[7].payload_problem or "")  # where, never the content
    rewritten = await store.db.fetchone("SELECT payload FROM outbox WHERE id = 3")
    assert json.loads(rewritten["payload"]) == {
        "text_source": "other",
        "text_source_spec": "telegram",
        "memories": [{"content": "I am vegetarian", "tags": ["food"]}],
    }

    # The upgraded queue is delivered; the unreadable item fails for good with a plain reason, once.
    env.bridge = await start_bridge(store, env.omi, env.clock, env.adapter, window=env.window)
    await env.bridge.worker.unblock("telegram:1001")
    await env.run_clock(FIRST_LOOK_SECONDS * 6)
    states = {row["id"]: row["state"] for row in await store.db.fetchall("SELECT id, state FROM outbox")}
    assert states == {1: "done", 2: "done", 3: "done", 4: "done", 5: "held", 6: "done", 7: "failed"}
    failed = await store.db.fetchone("SELECT last_error FROM outbox WHERE id = 7")
    assert failed["last_error"] == "the bridge could not read its stored copy"
    assert Counter(env.texts()) == Counter({TEXT: 1, "an unknown outcome from before the upgrade": 1})
    assert [m["content"] for m in env.sandbox.memories(env.uid) if m["content"] == "I am vegetarian"] == [
        "I am vegetarian"
    ]
    replies = [reply.text for reply in env.adapter.sent]
    assert sum("could not read its stored copy" in text for text in replies) == 1


async def test_unexpected_errors_count_as_attempts_and_end_in_failure(env):
    await env.bridge.stop()
    broken = held_client(env, Exploding())
    env.bridge = await start_bridge(env.store, broken, env.clock, env.adapter, window=env.window)
    user = await env.linked_user()
    user.bridge = env.bridge
    await user.say(TEXT)
    await env.close_bursts()
    await env.run_clock(7 * 24 * 3600)
    [row] = await env.store.db.fetchall("SELECT state, attempts FROM outbox")
    assert row["state"] == "failed" and row["attempts"] == MAX_ATTEMPTS
    texts = [reply.text for reply in env.adapter.sent]
    assert texts[-1].startswith("Could not save") and "a bug" not in texts[-1]  # never exception text
    await broken.aclose()
