"""Link previews in saved bursts (SPEC §11): `↳ Title — description` under the message that had the link, every page
of a burst fetched side by side, a failed or slow fetch adds nothing and holds the burst at most the deadline, and
nothing is fetched for someone who is not linked or with previews off."""

from __future__ import annotations

import functools
import time

from bot.bridge import Bridge
from bot.previews import preview
from bot.previews.burst import with_previews
from tests.fake_web import FakeWeb, og_page
from tests.test_link_previews import only_public

BOTH_ENGINES = True


async def bridge_with_previews(env, web: FakeWeb) -> Bridge:
    await env.bridge.stop()
    fetch = functools.partial(preview, allow=only_public, timeout=1.0)
    bridge = Bridge(env.store, env.omi, env.clock, batch_window=env.window, link_previews=fetch)
    bridge.register_adapter(env.adapter, env.adapter.parse, session_hint=env.adapter.session_hint)
    await bridge.start()
    env.bridge = bridge
    return bridge


async def test_a_saved_message_gets_its_links_preview_line_under_it(env):
    web = await FakeWeb().start()
    try:
        web.html("/garden", og_page("Tomato guide", "When to plant, how to water"))
        web.html("/plain", "<html><head><title>Basil &amp; friends</title></head></html>")
        web.status("/gone", 404)
        await bridge_with_previews(env, web)
        user = await env.linked_user()
        await user.say(f"read this {web.url('/garden')}")
        await user.say(f"and {web.url('/plain')} but not {web.url('/gone')}")
        await env.close_bursts()
        await env.run_clock(5)
        [text] = env.texts()
        assert text == (
            f"read this {web.url('/garden')}\n↳ Tomato guide — When to plant, how to water\n\n"
            f"and {web.url('/plain')} but not {web.url('/gone')}\n↳ Basil & friends"
        )
    finally:
        await web.stop()


async def test_nothing_is_fetched_for_an_unlinked_user(env):
    web = await FakeWeb().start()
    try:
        web.html("/garden", og_page("Tomato guide", "When to plant"))
        await bridge_with_previews(env, web)
        user = env.user(user_id="4444")
        await user.say(f"read this {web.url('/garden')}")
        await env.close_bursts()
        assert "link" in (await user.reply_text()).lower()  # told to link first
        assert web.requests == []
    finally:
        await web.stop()


async def test_a_hanging_page_holds_the_burst_at_most_the_deadline_and_adds_nothing():
    from datetime import UTC, datetime

    from bot.events import InboundMessage, Platform

    web = await FakeWeb().start()
    try:
        web.hang("/slow")
        web.html("/fast", og_page("Fast page", "answers at once"))
        messages = [
            InboundMessage(Platform.TELEGRAM, "1", "1", "Ada", str(n), n, datetime.now(UTC), text=text)
            for n, text in enumerate([f"slow {web.url('/slow')}", f"fast {web.url('/fast')}"])
        ]
        fetch = functools.partial(preview, allow=only_public, timeout=30.0)  # the fetcher alone would wait
        started = time.monotonic()
        out = await with_previews(messages, fetch, deadline=0.5)
        assert time.monotonic() - started < 2.0
        assert out[0].text == messages[0].text  # nothing added for the page that did not answer
        assert out[1].text.endswith("\n↳ Fast page — answers at once")
    finally:
        await web.stop()
