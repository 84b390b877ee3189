"""Omi → chat (SPEC §4, §12) in process: the webhook route (secret, limits, dedupe on Idempotency-Key or on uid +
conversation id, stored before 200 {}), the body never trusted (forged uids and ids send nothing; Omi's own copy
read back by id), only verified links that turned /notify on, discarded and the bridge's own conversations never
echoed, /notify on|off|digest, and the digest on a manual clock across a restart, at most once."""

from __future__ import annotations

import asyncio
import itertools
from datetime import UTC, datetime

import httpx
import pytest

from bot.metrics import Metrics
from bot.omi.client import OmiClient
from bot.omi.models import NewConversation
from bot.pushes.render import digest_text, parse_zone, push_text
from bot.pushes.wiring import add_omi_webhook
from bot.pushes.worker import PushWorker, digest_due
from bot.settings import Settings
from bot.store.pushes import NotifySetting
from bot.web.server import WebServer

BOTH_ENGINES = True
BOTH_FLAVORS = True

SECRET = "omi-webhook-secret-for-tests-0123456789"
OLD_SECRET = "the-old-secret-being-rotated-out-42"
_ids = itertools.count(1)


@pytest.fixture
async def hook(env):
    """The bridge's web server with the Omi webhook route, and a client posting to it."""
    server = WebServer(env.bridge, Metrics())
    settings = Settings(_env_file=None, OMI_WEBHOOK_SECRET=f"{SECRET},{OLD_SECRET}")
    await add_omi_webhook(settings, env.bridge, server)
    url = await server.start("127.0.0.1", 0)
    async with httpx.AsyncClient(base_url=url) as client:
        yield client
    await server.stop()


@pytest.fixture
async def recorder(env):
    """Another integration on the same Omi (the "wearable" side for these tests): it creates conversations."""
    app = env.sandbox.create_app(name="recorder")
    env.sandbox.enable(app.app_id, env.uid)
    client = OmiClient(env.omi.base_url, app.app_id, app.api_key)
    yield client
    await client.aclose()


async def recorded(env, recorder: OmiClient, text: str) -> str:
    """A conversation Omi holds for the env's uid (newest first): its id."""
    started = datetime(2026, 3, 12, 9, next(_ids) % 60, tzinfo=UTC)
    conversation = NewConversation(text=text, text_source="audio_transcript", started_at=started, finished_at=started)
    await recorder.create_conversation(env.uid, conversation)
    [newest, *_] = await env.omi.read_conversations(env.uid, limit=1)
    return newest.id


async def post(hook, conversation_id: str, uid: str, *, secret: str = SECRET, key: str | None = None, **body):
    headers = {"Idempotency-Key": key} if key else {}
    return await hook.post(f"/omi/webhook/{secret}", params={"uid": uid}, json={"id": conversation_id, **body},
                           headers=headers)  # fmt: skip


async def notified_user(env, mode: str = "on", **fields):
    user = await env.linked_user(**fields)
    await user.command("notify", mode)
    assert "Omi → chat is" in await user.reply_text()
    return user


LONG_TALK = (
    "We planned the garden for spring. I need to buy tomato seeds tomorrow and call the plumber about the tap."
    " Then we talked about the trip to Lisbon in May and who books the flights."
)


async def test_a_pushed_conversation_reaches_the_verified_user_once(env, hook, recorder):
    user = await notified_user(env)
    conversation_id = await recorded(env, recorder, LONG_TALK)
    answer = await post(hook, conversation_id, env.uid, key="delivery-1", structured={"title": "forged"})
    assert answer.status_code == 200 and answer.json() == {}
    again = await post(hook, conversation_id, env.uid, key="delivery-2")  # Omi retried: same conversation
    assert again.status_code == 200 and again.json() == {}
    await env.bridge.pushes.run_once()
    text = await user.reply_text()
    assert text.startswith("New in Omi:\n")
    assert "forged" not in text  # Omi's own copy, read back by id: the body is never trusted
    [own] = await env.omi.read_conversations(env.uid, limit=1)
    assert f"**{own.structured.title}**" in text
    await env.bridge.pushes.run_once()
    assert user.no_reply_pending()
    assert (await env.store.db.fetchone("SELECT COUNT(*) AS n FROM pushes"))["n"] == 0  # deleted once sent


async def test_the_wrong_secret_is_404_and_stores_nothing(env, hook):
    answer = await post(hook, "c-1", env.uid, secret="not-the-secret-at-all-0000")
    assert answer.status_code == 404
    assert (await env.store.db.fetchone("SELECT COUNT(*) AS n FROM omi_events"))["n"] == 0


async def test_the_old_secret_works_while_rotating(env, hook):
    assert (await post(hook, "c-rotating", env.uid, secret=OLD_SECRET)).status_code == 200


async def test_malformed_bodies_are_400_and_a_huge_one_413(env, hook):
    bad = await hook.post(f"/omi/webhook/{SECRET}", params={"uid": env.uid}, content=b"not json{")
    assert bad.status_code == 400
    no_id = await hook.post(f"/omi/webhook/{SECRET}", params={"uid": env.uid}, json={"title": "x"})
    assert no_id.status_code == 400
    no_uid = await hook.post(f"/omi/webhook/{SECRET}", json={"id": "c-2"})
    assert no_uid.status_code == 400
    huge = await hook.post(f"/omi/webhook/{SECRET}", params={"uid": env.uid}, content=b"[" + b" " * (8 * 1024**2))
    assert huge.status_code == 413
    big_but_fine = await hook.post(
        f"/omi/webhook/{SECRET}", params={"uid": env.uid}, json={"id": "c-3", "transcript": "x" * 2_000_000}
    )
    assert big_but_fine.status_code == 200  # over the app's 1 MB, under the route's 8 MB


async def test_a_forged_uid_or_an_unknown_conversation_sends_nothing(env, hook, recorder):
    user = await notified_user(env)
    conversation_id = await recorded(env, recorder, LONG_TALK)
    assert (await post(hook, conversation_id, "uid-of-someone-else")).status_code == 200
    assert (await post(hook, "no-such-conversation", env.uid)).status_code == 200
    await env.bridge.pushes.run_once()
    assert user.no_reply_pending()
    assert (await env.store.db.fetchone("SELECT COUNT(*) AS n FROM omi_events"))["n"] == 0


async def test_unverified_and_not_asking_users_get_nothing(env, hook, recorder):
    quiet = await env.linked_user()  # verified, /notify never said
    claimed = env.user(user_id="2002")  # claimed the uid (a forger can), not verified; a setting left over
    await env.store.db.write(
        lambda conn: conn.execute(
            "INSERT INTO links (account, state, uid, platform, user_id, handle_hint, created_at)"
            " VALUES (?, 'claimed', ?, 'telegram', '2002', '02', 0)",
            (claimed.account, env.uid),
        )
    )
    await env.store.pushes.set_mode(claimed.account, NotifySetting(claimed.account, "on"), env.clock.now())
    conversation_id = await recorded(env, recorder, LONG_TALK)
    await post(hook, conversation_id, env.uid)
    await env.bridge.pushes.run_once()
    assert quiet.no_reply_pending() and claimed.no_reply_pending()


async def test_the_bridges_own_conversations_are_never_echoed(env, hook):
    user = await notified_user(env)
    await user.say(LONG_TALK)
    await env.close_bursts()
    await env.run_clock(5)
    assert (await user.reply()).reaction  # saved
    [own] = await env.omi.read_conversations(env.uid, limit=1)
    await post(hook, own.id, env.uid)
    await env.bridge.pushes.run_once()
    assert user.no_reply_pending()


async def test_notify_off_stops_pushes(env, hook, recorder):
    user = await notified_user(env)
    await user.command("notify", "off")
    assert "off" in await user.reply_text()
    await post(hook, await recorded(env, recorder, LONG_TALK), env.uid)
    await env.bridge.pushes.run_once()
    assert user.no_reply_pending()


async def test_notify_shows_the_setting_and_refuses_nonsense(env):
    user = await env.linked_user()
    await user.command("notify")
    assert (await user.reply_text()).startswith("Omi → chat is off")
    await user.command("notify", "digest 25:00")
    assert "Usage: /notify" in await user.reply_text()
    await user.command("notify", "digest 08:30 +02:00")
    assert await user.reply_text() == (
        "Omi → chat is a daily digest at 08:30 UTC+02:00: the day's conversations and their action items."
    )
    await user.command("notify")
    assert "a daily digest at 08:30 UTC+02:00" in await user.reply_text()


async def test_an_unverified_user_cannot_turn_pushes_on(env):
    user = env.user(user_id="3003")
    await user.command("notify", "on")
    assert "link" in (await user.reply_text()).lower()
    assert await env.store.pushes.setting(user.account) is None


async def test_the_digest_is_sent_once_at_its_time_and_survives_a_restart(env, hook, recorder):
    user = await notified_user(env, "digest 09:00 +02:00")
    env.clock.set(datetime(2026, 6, 1, 6, 0, tzinfo=UTC).timestamp())  # 08:00 local: not yet
    first = await recorded(env, recorder, LONG_TALK)
    second = await recorded(env, recorder, "Remind me to send the invoice to Bob on Friday and book the dentist.")
    await post(hook, first, env.uid)
    await post(hook, second, env.uid)
    await env.bridge.pushes.run_once()
    assert user.no_reply_pending()  # held for the digest
    await env.restart_with(env.omi)  # state in the database
    env.clock.set(datetime(2026, 6, 1, 7, 1, tzinfo=UTC).timestamp())  # 09:01 local
    await env.bridge.pushes.run_once()
    text = await user.reply_text()
    assert text.startswith("Your Omi digest: 2 new conversations")
    assert text.count("**") == 4
    await env.bridge.pushes.run_once()  # the same day again: nothing
    assert user.no_reply_pending()
    env.clock.set(datetime(2026, 6, 2, 7, 1, tzinfo=UTC).timestamp())  # the next day, nothing new: no message
    await env.bridge.pushes.run_once()
    assert user.no_reply_pending()


async def test_a_digest_missed_by_more_than_six_hours_is_not_sent_late(env, hook, recorder):
    user = await notified_user(env, "digest 09:00")
    env.clock.set(datetime(2026, 6, 1, 8, 0, tzinfo=UTC).timestamp())
    await post(hook, await recorded(env, recorder, LONG_TALK), env.uid)
    await env.bridge.pushes.run_once()
    env.clock.set(datetime(2026, 6, 1, 15, 30, tzinfo=UTC).timestamp())  # 6.5 h after 09:00: down all that time
    await env.bridge.pushes.run_once()
    assert user.no_reply_pending()
    env.clock.set(datetime(2026, 6, 2, 9, 0, tzinfo=UTC).timestamp())  # kept for the next one
    await env.bridge.pushes.run_once()
    assert (await user.reply_text()).startswith("Your Omi digest: 1 new conversation")


def test_the_digest_is_due_at_the_local_time():
    setting = NotifySetting("telegram:1", "digest", digest_minute=9 * 60, zone="+02:00")
    now = datetime(2026, 6, 1, 7, 30, tzinfo=UTC).timestamp()
    assert digest_due(setting, now) == datetime(2026, 6, 1, 7, 0, tzinfo=UTC).timestamp()
    early = datetime(2026, 6, 1, 6, 30, tzinfo=UTC).timestamp()
    assert digest_due(setting, early) == datetime(2026, 5, 31, 7, 0, tzinfo=UTC).timestamp()
    slack = NotifySetting("slack:U1", "digest", digest_minute=8 * 60, zone="America/New_York")
    assert digest_due(slack, datetime(2026, 1, 15, 14, 0, tzinfo=UTC).timestamp()) == (
        datetime(2026, 1, 15, 13, 0, tzinfo=UTC).timestamp()
    )


def test_how_a_push_reads():
    content = {
        "title": "Garden and plumbing",
        "overview": "Planned the spring garden.\nTomato seeds are needed.\nThe tap leaks.\nA fourth line.",
        "emoji": "🌱",
        "action_items": ["Buy tomato seeds", "Call the plumber"],
        "started_at": "2026-03-12T09:05:00+00:00",
    }
    assert push_text(content, parse_zone("+01:00")) == (
        "New in Omi:\n🌱 **Garden and plumbing**\nPlanned the spring garden.\nTomato seeds are needed.\nThe tap leaks."
        "\nAction items:\n• Buy tomato seeds\n• Call the plumber\n_10:05 UTC+01:00, 12 Mar_"
    )
    assert digest_text([content], parse_zone(None)).startswith("Your Omi digest: 1 new conversation\n\n🌱")


async def test_two_instances_handle_one_event_and_send_one_message(env, hook, recorder):
    user = await notified_user(env)
    await env.bridge.pushes.stop()  # only the two below work on it
    sent: list[str] = []

    async def send(reply) -> None:
        sent.append(reply.text)

    workers = [
        PushWorker(env.store.pushes, env.store.links, env.omi, env.clock, send, f"instance-{n}", app_id=env.app_id)
        for n in range(2)
    ]
    for n in range(3):
        await post(hook, await recorded(env, recorder, f"{LONG_TALK} Round {n}."), env.uid)
    await asyncio.gather(*(worker.run_once() for worker in workers))
    await asyncio.gather(*(worker.run_once() for worker in workers))
    assert len(sent) == 3 and len(set(sent)) == 3
    assert user.no_reply_pending()


async def test_a_discarded_conversation_is_not_pushed(env, hook):
    user = await notified_user(env)
    trivial = await env.sandbox.device_conversation(env.app_id, env.uid, "ok")  # recorded, nothing to say
    assert trivial["discarded"] is True
    await post(hook, trivial["id"], env.uid)
    await env.bridge.pushes.run_once()
    assert user.no_reply_pending()
    assert (await env.store.db.fetchone("SELECT COUNT(*) AS n FROM pushes"))["n"] == 0
