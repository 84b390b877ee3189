"""End to end: `omi-bridge serve` as a real process with Slack over HTTP, the fake Slack and the Omi sandbox in the
test process. Setup page → `/omi link` → Omi enables the app → code → `/omi verify` → `/omi remember` →
"Save thread to Omi" on a two-page thread → one conversation with five attributed blocks."""

from __future__ import annotations

import asyncio
import re

import httpx

from bot.sandbox import ALL_CAPABILITIES, Sandbox
from tests.processes import BackgroundProcess, clean_env, free_port
from tests.slack.fake_slack import BOT_TOKEN, FakeSlack
from tests.slack.workspace import ADA, ALAN, GENERAL, GRACE, SIGNING_SECRET, SlackWorkspace

UID = "uid-ada-e2e"
THREAD = [
    (GRACE.id, "1773306000.000100", "Launch plan: we ship on Thursday"),
    (ADA.id, "1773306060.000200", "I will write the release notes"),
    (ALAN.id, "1773306120.000300", "Staging is green"),
    (GRACE.id, "1773306180.000400", "<@U0ALAN001> please freeze main on Wednesday"),
    (ALAN.id, "1773306240.000500", "Done"),
]


async def test_link_verify_remember_and_save_a_thread_through_the_serve_process(tmp_path):
    sandbox = Sandbox()
    omi_url = await sandbox.start("127.0.0.1", 0)
    app = sandbox.create_app(capabilities=ALL_CAPABILITIES)
    fake = FakeSlack()
    await fake.start()
    fake.page_size = 3  # five messages: two pages
    env = clean_env(
        OMI_API_BASE_URL=omi_url,
        OMI_APP_ID=app.app_id,
        OMI_API_KEY=app.api_key,
        SLACK_BOT_TOKEN=BOT_TOKEN,
        SLACK_SIGNING_SECRET=SIGNING_SECRET,
        SLACK_API_URL=fake.api_url,
        HOST="127.0.0.1",
        PORT=str(free_port()),
        DATABASE_URL=f"sqlite:///{tmp_path / 'bridge.db'}",
        BATCH_WINDOW_SECONDS="0.3",
    )
    serve = BackgroundProcess("serve", cwd=tmp_path, env=env)
    try:
        url = (await asyncio.to_thread(serve.wait_for, r"serving on (http://\S+)")).group(1)
        slack = SlackWorkspace(fake, events_url=f"{url}/slack/events")

        async with httpx.AsyncClient(base_url=url) as web:
            page = await web.get("/omi/setup", params={"uid": UID})
        [token] = re.findall(r"/omi link ([A-Za-z0-9_-]+)", page.text)

        assert (await slack.command(ADA, f"link {token}")).status == 200
        await fake.said("Almost linked")
        sandbox.set_setup_completed_url(app.app_id, f"{url}/omi/setup-completed")
        assert await sandbox.enable_checked(app.app_id, UID)  # Omi asks our setup-completed page first

        await slack.command(ADA, "verify")  # alone: a new code now, instead of waiting for the next retry
        await fake.said("I sent a 6-digit code", method="chat.postMessage")
        code = re.search(r"\b(\d{6})\b", sandbox.notifications(UID)[-1]["message"]).group(1)
        await slack.command(ADA, f"verify {code}")
        await fake.said("Verified")

        await slack.command(ADA, "remember #tea I like green tea")
        await fake.said("Saved 1 memory.", method="chat.postMessage")
        assert [(m["content"], m["tags"]) for m in sandbox.memories(UID)] == [("I like green tea", ["tea"])]

        thread_ts = fake.add_thread(GENERAL, THREAD)
        assert (await slack.save_thread(ADA, thread_ts)).status == 200
        await fake.said("Saved 5 messages", method="chat.postMessage")
        assert len(fake.calls_to("conversations.replies")) == 2
        [conversation] = sandbox.conversations(UID)
        assert conversation["external_data"]["text"].split("\n\n") == [
            "Grace Hopper: Launch plan: we ship on Thursday",
            "Ada Lovelace: I will write the release notes",
            "Alan Turing: Staging is green",
            "Grace Hopper: @Alan Turing please freeze main on Wednesday",
            "Alan Turing: Done",
        ]
        assert await asyncio.to_thread(serve.stop) == 0
    finally:
        serve.kill()
        await fake.stop()
        await sandbox.stop()
        sandbox.close()
    output = "\n".join(serve.rest())
    for secret in (BOT_TOKEN, SIGNING_SECRET, app.api_key, token, code):
        assert secret not in output
    assert "Traceback" not in output
