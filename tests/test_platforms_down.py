"""`serve` with a chat platform (or Omi) down at start: the web server answers at once, /healthz shows the platform
down, each failed try is one WARN line, the platform comes up by itself once reachable, messages flow; only a token
the platform refuses ends serve (exit 2, one line naming the setting). Backoffs here are milliseconds long."""

from __future__ import annotations

import asyncio
import json
import logging
import random
import re
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from adapters.slack.platform import SlackPlatform, bolt_logger
from adapters.telegram.platform import TelegramPlatform
from bot.backoff import Backoff
from bot.metrics import Metrics
from bot.platforms import PlatformStartup, PlatformUnavailable, keep_starting
from bot.runtime import run_serve
from bot.sandbox import ALL_CAPABILITIES, Sandbox
from bot.settings import Settings, SettingsError
from bot.web.server import WebServer
from tests.processes import BackgroundProcess, free_port, serve_env
from tests.slack.conftest import slack_settings
from tests.slack.fake_slack import APP_TOKEN, BOT_TOKEN, FakeSlack
from tests.slack.workspace import ADA, SIGNING_SECRET, SlackWorkspace
from tests.telegram.conftest import ADA as TELEGRAM_ADA
from tests.telegram.conftest import command, telegram_settings
from tests.telegram.fake_bot_api import FakeBotApi

WAIT = 10.0


def short_backoff() -> Backoff:
    return Backoff(base=0.01, cap=0.05, rng=random.Random(5))


class LogWatch(logging.Handler):
    """Every log record of the bridge under test, kept and waited on (never polled with sleeps)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []
        self._loop = asyncio.get_running_loop()
        self._changed = asyncio.Event()

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)
        self._loop.call_soon_threadsafe(self._changed.set)

    def matching(self, pattern: str) -> list[logging.LogRecord]:
        regex = re.compile(pattern)
        return [record for record in self.records if regex.search(record.getMessage())]

    async def wait_for(self, pattern: str, *, count: int = 1, timeout: float = WAIT) -> list[logging.LogRecord]:
        try:
            async with asyncio.timeout(timeout):
                while len(found := self.matching(pattern)) < count:
                    self._changed.clear()
                    await self._changed.wait()
        except TimeoutError:
            seen = [record.getMessage()[:160] for record in self.records[-15:]]
            raise AssertionError(f"no {count} log line(s) matching {pattern!r}; last: {seen}") from None
        return found

    def text(self) -> str:
        return "\n".join(f"{record.levelname} {record.name}: {record.getMessage()}" for record in self.records)


@pytest.fixture
async def watch(caplog: pytest.LogCaptureFixture) -> AsyncIterator[LogWatch]:
    caplog.set_level(logging.INFO)
    for noisy in ("httpx", "httpcore"):  # serve keeps these at WARNING (at INFO they log the token in URLs)
        caplog.set_level(logging.WARNING, logger=noisy)
    handler = LogWatch()
    logging.getLogger().addHandler(handler)
    try:
        yield handler
    finally:
        logging.getLogger().removeHandler(handler)


@pytest.fixture
async def fake_slack() -> AsyncIterator[FakeSlack]:
    fake = FakeSlack()
    await fake.start()
    yield fake
    await fake.stop()


@dataclass
class Omi:
    sandbox: Sandbox
    url: str
    app_id: str
    api_key: str


@pytest.fixture
async def omi() -> AsyncIterator[Omi]:
    sandbox = Sandbox()
    url = await sandbox.start("127.0.0.1", 0)
    app = sandbox.create_app(capabilities=ALL_CAPABILITIES)
    yield Omi(sandbox, url, app.app_id, app.api_key)
    await sandbox.stop()
    sandbox.close()


def bridge_settings(tmp_path: Path, omi_url: str, app_id: str, api_key: str, **platform: Any) -> Settings:
    values = {
        "OMI_API_BASE_URL": omi_url,
        "OMI_APP_ID": app_id,
        "OMI_API_KEY": api_key,
        "HOST": "127.0.0.1",
        "PORT": free_port(),
        "DATABASE_URL": f"sqlite:///{tmp_path / 'bridge.db'}",
        "BATCH_WINDOW_SECONDS": 0.3,
        "TELEGRAM_BOT_TOKEN": None,
        "SLACK_BOT_TOKEN": None,
        "SLACK_APP_TOKEN": None,
        **platform,
    }
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


@dataclass
class Serving:
    """`run_serve` in this event loop (so the fakes can come and go while it runs)."""

    url: str
    task: asyncio.Task[int]
    stop: asyncio.Event

    async def health(self) -> dict[str, Any]:
        async with httpx.AsyncClient(base_url=self.url) as client:
            answer = await client.get("/healthz")
        assert answer.status_code == 200, answer.text
        return answer.json()


@asynccontextmanager
async def serving(settings: Settings, backoff: Callable[[], Backoff] = short_backoff) -> AsyncIterator[Serving]:
    stop = asyncio.Event()
    task = asyncio.create_task(run_serve(settings, stop=stop, backoff=backoff))
    serve = Serving(f"http://127.0.0.1:{settings.PORT}", task, stop)
    try:
        yield serve
    finally:
        stop.set()
        assert await asyncio.wait_for(task, WAIT) == 0


def assert_no_traceback_and_no_secret(watch: LogWatch, *secrets: str) -> None:
    for record in watch.records:
        if record.name.startswith(("bot.runtime", "bot.platforms", "adapters.", "aiohttp.server")):
            assert record.exc_info is None and not record.exc_text, watch.text()
            assert record.levelno < logging.ERROR, record.getMessage()
    text = watch.text()
    assert "Traceback" not in text
    for secret in secrets:
        assert secret not in text


# --- Telegram ----------------------------------------------------------------------------------------------------


async def test_telegram_refused_then_failing_then_up_while_the_web_server_answers_throughout(tmp_path, watch, omi):
    port = free_port()
    api = FakeBotApi()  # not started yet: the bridge's connections to `port` are refused
    settings = bridge_settings(
        tmp_path,
        omi.url,
        omi.app_id,
        omi.api_key,
        TELEGRAM_BOT_TOKEN=api.token,
        TELEGRAM_API_BASE_URL=f"http://127.0.0.1:{port}/bot",
    )
    try:
        async with serving(settings) as serve:
            await watch.wait_for(r"^telegram: not started \(cannot reach the Bot API", count=2)  # it keeps trying
            health = await serve.health()
            assert health["status"] == "ok"
            assert health["components"]["telegram"].startswith("down: cannot reach the Bot API (NetworkError")
            assert api.token not in json.dumps(health)

            # The Bot API comes back, but answers 5xx to each start-up call once.
            api.fail("getMe", 500, "Internal Server Error")
            api.fail("setMyCommands", 500, "Internal Server Error")
            api.fail("deleteWebhook", 502, "Bad Gateway")
            await api.start(port)
            await watch.wait_for(r"^telegram: started as @omibridge_bot \(polling\)$")
            assert (await serve.health())["components"]["telegram"] == "ok: polling as @omibridge_bot"

            await api.push_update(command("help"))
            [reply] = await api.wait_for("sendMessage", timeout=WAIT)
            assert reply["text"].startswith("I save what you send me")
            # Each try goes on from where the last one failed: getMe is not asked again once it answered.
            counts = [len(api.calls_to(method)) for method in ("getMe", "setMyCommands", "deleteWebhook")]
            assert counts == [2, 3, 2]
    finally:
        await api.stop()
    failed = watch.matching(r"^telegram: not started")
    assert all(record.levelno == logging.WARNING for record in failed)
    assert len(watch.matching(r"^telegram: not started .*Internal Server Error")) == 2  # one line per failed try
    assert len(watch.matching(r"^telegram: not started .*Bad Gateway")) == 1
    assert watch.matching(r"^serving on http://127\.0\.0\.1:")
    assert_no_traceback_and_no_secret(watch, api.token, omi.api_key)


async def test_while_the_bot_api_hangs_the_web_server_answers_and_webhook_updates_are_taken_in(tmp_path, watch, omi):
    api = await FakeBotApi().start()
    release = api.hold("getMe")  # connects, then no answer
    secret = "webhook-secret-for-the-hanging-test"
    settings = bridge_settings(
        tmp_path,
        omi.url,
        omi.app_id,
        omi.api_key,
        TELEGRAM_BOT_TOKEN=api.token,
        TELEGRAM_API_BASE_URL=api.base_url,
        TELEGRAM_WEBHOOK_URL="https://bridge.example.com/telegram/webhook",
        TELEGRAM_WEBHOOK_SECRET=secret,
    )
    try:
        async with serving(settings) as serve:
            await api.wait_for("getMe", timeout=WAIT)  # the first try is under way (the web server came first)
            assert (await serve.health())["components"]["telegram"] == "starting"
            async with httpx.AsyncClient(base_url=serve.url) as client:
                taken = await client.post(
                    "/telegram/webhook",
                    json={**command("help"), "update_id": 4242},
                    headers={"X-Telegram-Bot-Api-Secret-Token": secret},
                )
            assert taken.status_code == 200  # accepted now, answered once the Bot API is back

            release.set()
            [reply] = await api.wait_for("sendMessage", timeout=WAIT)
            assert reply["text"].startswith("I save what you send me") and reply["chat_id"] == TELEGRAM_ADA
            assert (await serve.health())["components"]["telegram"] == "ok: webhook as @omibridge_bot"
            [webhook] = api.calls_to("setWebhook")
            assert webhook["secret_token"] == secret
    finally:
        await api.stop()
    assert_no_traceback_and_no_secret(watch, api.token, secret)


async def test_a_stop_while_the_platform_is_still_retrying_ends_serve_cleanly(tmp_path, watch, omi):
    settings = bridge_settings(
        tmp_path,
        omi.url,
        omi.app_id,
        omi.api_key,
        TELEGRAM_BOT_TOKEN="123456:never-reached",
        TELEGRAM_API_BASE_URL=f"http://127.0.0.1:{free_port()}/bot",
    )
    async with serving(settings):
        await watch.wait_for(r"^telegram: not started")
    # `serving` asserted run_serve returned 0
    assert watch.matching(r"^stopping: no new requests")
    assert_no_traceback_and_no_secret(watch, "123456:never-reached")


async def test_a_token_the_bot_api_refuses_ends_serve_with_a_settings_error(tmp_path, watch, omi):
    api = await FakeBotApi().start()
    settings = bridge_settings(
        tmp_path,
        omi.url,
        omi.app_id,
        omi.api_key,
        TELEGRAM_BOT_TOKEN="999:not-the-fake-token",
        TELEGRAM_API_BASE_URL=api.base_url,
    )
    try:
        with pytest.raises(SettingsError, match=r"^invalid setting TELEGRAM_BOT_TOKEN: Telegram rejected it$"):
            await asyncio.wait_for(run_serve(settings, stop=asyncio.Event(), backoff=short_backoff), WAIT)
    finally:
        await api.stop()
    assert not watch.matching(r"^serving on")
    assert_no_traceback_and_no_secret(watch, "999:not-the-fake-token")


async def test_omi_unreachable_at_start_does_not_stop_serve(tmp_path, watch):
    api = await FakeBotApi().start()
    nowhere = f"http://127.0.0.1:{free_port()}"  # no Omi listens there
    settings = bridge_settings(
        tmp_path,
        nowhere,
        "app-nowhere",
        "omi-key-nowhere",
        TELEGRAM_BOT_TOKEN=api.token,
        TELEGRAM_API_BASE_URL=api.base_url,
    )
    try:
        async with serving(settings) as serve:
            await watch.wait_for(r"^serving on ")
            health = await serve.health()
            assert health["status"] == "ok" and health["components"]["telegram"] == "ok: polling as @omibridge_bot"
            await api.push_update(command("help"))
            [reply] = await api.wait_for("sendMessage", timeout=WAIT)
            assert reply["text"].startswith("I save what you send me")
    finally:
        await api.stop()
    assert_no_traceback_and_no_secret(watch, api.token, "omi-key-nowhere")


async def test_flood_control_at_start_waits_as_long_as_telegram_asks(env):
    api = await FakeBotApi().start()
    platform = TelegramPlatform(telegram_settings(api), env.bridge, WebServer(env.bridge, Metrics()))
    api.fail("getMe", retry_after=7)
    try:
        with pytest.raises(PlatformUnavailable) as failed:
            await platform.start()
        assert failed.value.retry_after == 7.0
        assert await platform.health() == "down: the Bot API asks to wait (flood control); retrying"
        await platform.start()
        assert await platform.health() == "ok: polling as @omibridge_bot"
    finally:
        await platform.stop()
        await platform.close()
        await api.stop()


# --- Slack -------------------------------------------------------------------------------------------------------


async def test_slack_refused_then_failing_then_up_and_commands_are_answered(tmp_path, watch, omi):
    port = free_port()
    fake = FakeSlack()  # not started yet: refused
    settings = bridge_settings(
        tmp_path,
        omi.url,
        omi.app_id,
        omi.api_key,
        SLACK_BOT_TOKEN=BOT_TOKEN,
        SLACK_SIGNING_SECRET=SIGNING_SECRET,
        SLACK_API_URL=f"http://127.0.0.1:{port}/api/",
    )
    try:
        async with serving(settings) as serve:
            await watch.wait_for(r"^slack: not started \(auth\.test failed: Client\w*Error\)")
            slack_health = (await serve.health())["components"]["slack"]
            assert slack_health.startswith("down: auth.test failed: Client")

            fake.fail("auth.test", "fatal_error", status=500)
            fake.fail("auth.test", "service_unavailable", status=503)
            await fake.start(port)
            await watch.wait_for(r"^slack: signed in as @omi-bridge in Fake Team \(HTTP\)$")
            assert (await serve.health())["components"]["slack"] == "ok"

            slack = SlackWorkspace(fake, events_url=f"{serve.url}/slack/events")
            assert (await slack.command(ADA, "")).status == 200
            await fake.said("I save what you send me")
    finally:
        await fake.stop()
    assert len(watch.matching(r"^slack: not started \(auth\.test failed: fatal_error\)")) == 1
    assert len(watch.matching(r"^slack: not started \(auth\.test failed: service_unavailable\)")) == 1
    assert_no_traceback_and_no_secret(watch, BOT_TOKEN, SIGNING_SECRET)


async def test_a_refused_slack_token_ends_serve_with_a_settings_error(tmp_path, watch, omi):
    fake = FakeSlack()
    api_url = await fake.start()
    settings = bridge_settings(
        tmp_path,
        omi.url,
        omi.app_id,
        omi.api_key,
        SLACK_BOT_TOKEN="xoxb-revoked",
        SLACK_SIGNING_SECRET=SIGNING_SECRET,
        SLACK_API_URL=api_url,
    )
    try:
        with pytest.raises(
            SettingsError, match=r"^invalid setting SLACK_BOT_TOKEN: Slack refused it \(invalid_auth\)$"
        ):
            await asyncio.wait_for(run_serve(settings, stop=asyncio.Event(), backoff=short_backoff), WAIT)
    finally:
        await fake.stop()
    assert_no_traceback_and_no_secret(watch, "xoxb-revoked")


async def test_slack_start_is_one_try_that_says_why_it_failed_and_works_the_next_time(env, fake_slack):
    platform = SlackPlatform(slack_settings(fake_slack), env.bridge, WebServer(env.bridge, Metrics()))
    assert await platform.health() == "starting"
    fake_slack.fail("auth.test", "fatal_error")
    with pytest.raises(PlatformUnavailable) as failed:
        await platform.start()  # serve does not stop: it tries again later
    assert failed.value.reason == "auth.test failed: fatal_error"
    assert await platform.health() == "down: auth.test failed: fatal_error; retrying"
    await platform.start()
    assert await platform.health() == "ok"
    await platform.stop()
    await platform.close()


async def test_slack_rate_limiting_at_start_waits_as_long_as_slack_asks(env, fake_slack):
    platform = SlackPlatform(slack_settings(fake_slack), env.bridge, WebServer(env.bridge, Metrics()))
    for _ in range(3):  # the client itself waits out two of them
        fake_slack.fail("auth.test", "ratelimited", status=429, retry_after=0)
    with pytest.raises(PlatformUnavailable) as failed:
        await platform.start()
    assert failed.value.reason == "auth.test failed: ratelimited" and failed.value.retry_after == 0.0
    await platform.close()


async def test_socket_mode_keeps_trying_until_slack_opens_the_connection(env, fake_slack, watch):
    web = WebServer(env.bridge, Metrics())
    platform = SlackPlatform(slack_settings(fake_slack, SLACK_APP_TOKEN=APP_TOKEN), env.bridge, web)
    fake_slack.fail("apps.connections.open", "fatal_error", status=500)
    fake_slack.fail("apps.connections.open", "internal_error")
    try:
        await asyncio.wait_for(keep_starting(platform, short_backoff()), WAIT)
        await asyncio.wait_for(fake_slack.connected.wait(), WAIT)
        assert await platform.health() == "ok (Socket Mode)"
        assert len(fake_slack.calls_to("apps.connections.open")) == 3
        slack = SlackWorkspace(fake_slack, platform=platform)
        assert (await slack.command(ADA, "")).status == 200  # the envelope was acknowledged
        await fake_slack.said("I save what you send me")
    finally:
        await platform.stop()
        await platform.close()
    assert len(watch.matching(r"^slack: not started \(apps\.connections\.open failed: (fatal|internal)_error\)")) == 2
    assert_no_traceback_and_no_secret(watch, APP_TOKEN, BOT_TOKEN)


def test_the_socket_mode_clients_reconnect_traceback_becomes_one_warn_line():
    try:
        raise ConnectionRefusedError("refused")
    except ConnectionRefusedError as exc:
        record = logging.LogRecord(
            "slack_bolt.omi-bridge", logging.ERROR, __file__, 1, "Failed to connect (error: %s); Retrying...",
            (exc,), (type(exc), exc, exc.__traceback__),
        )  # fmt: skip
    assert all(f.filter(record) for f in bolt_logger().filters)
    assert (record.levelno, record.levelname, record.exc_info) == (logging.WARNING, "WARNING", None)


async def test_a_refused_app_token_is_a_settings_error_naming_it(env, fake_slack):
    platform = SlackPlatform(
        slack_settings(fake_slack, SLACK_APP_TOKEN="xapp-revoked"), env.bridge, WebServer(env.bridge, Metrics())
    )
    try:
        with pytest.raises(
            SettingsError, match=r"^invalid setting SLACK_APP_TOKEN: Slack refused it \(invalid_auth\)$"
        ):
            await keep_starting(platform, short_backoff())
    finally:
        await platform.stop()
        await platform.close()


# --- the start-up loop -------------------------------------------------------------------------------------------


class Scripted:
    """A platform whose start-up tries go as scripted: an exception to raise, or None for success."""

    def __init__(self, name: str, *outcomes: BaseException | None, gate: asyncio.Event | None = None) -> None:
        self.name = name
        self._outcomes = list(outcomes)
        self._gate = gate
        self.tries = 0
        self.started = asyncio.Event()
        self.stopped = False

    async def start(self) -> None:
        self.tries += 1
        if self._gate is not None:
            await self._gate.wait()
        outcome = self._outcomes.pop(0) if self._outcomes else None
        if outcome is not None:
            raise outcome
        self.started.set()

    async def stop(self) -> None:
        self.stopped = True

    async def close(self) -> None:
        pass


class RecordedSleep:
    def __init__(self) -> None:
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


async def test_each_failed_try_waits_longer_up_to_the_cap_and_the_platform_asks_for_more(watch):
    platform = Scripted(
        "chat",
        PlatformUnavailable("down"),
        PlatformUnavailable("down"),
        PlatformUnavailable("flood control", retry_after=30.0),
        PlatformUnavailable("down"),
        PlatformUnavailable("down"),
    )
    sleep = RecordedSleep()
    tried: list[int] = []
    backoff = Backoff(1.0, 4.0, rng=random.Random(3))
    await keep_starting(platform, backoff, sleep=sleep, tried=lambda: tried.append(platform.tries))
    assert platform.tries == 6 and platform.started.is_set()
    assert tried == [1]  # once, after the first try
    assert 0.5 <= sleep.waits[0] <= 1.0 and 1.0 <= sleep.waits[1] <= 2.0
    assert sleep.waits[2] == 30.0  # what the platform asked for beats the backoff
    assert all(2.0 <= wait <= 4.0 for wait in sleep.waits[3:])  # capped
    assert len(watch.matching(r"^chat: not started \(down\); trying again in \d+\.\d s$")) == 4


async def test_an_unexpected_error_is_logged_with_its_traceback_once_then_retried(watch):
    platform = Scripted("chat", RuntimeError("bug"), RuntimeError("bug"), None)
    await keep_starting(platform, short_backoff(), sleep=RecordedSleep())
    assert platform.started.is_set()
    [first] = watch.matching(r"^chat: unexpected error while starting$")
    assert first.exc_info is not None
    assert len(watch.matching(r"^chat: not started \(unexpected error \(RuntimeError\)\)")) == 2


async def test_one_platform_down_does_not_hold_up_another_and_a_later_refused_token_ends_serve():
    hanging = asyncio.Event()
    slow = Scripted("slow", gate=hanging)
    fine = Scripted("fine")
    refused = Scripted("refused", PlatformUnavailable("down"), SettingsError("invalid setting CHAT_TOKEN: refused"))
    startup = PlatformStartup([slow, fine, refused], short_backoff)
    startup.start()
    try:
        await asyncio.wait_for(fine.started.wait(), WAIT)
        assert slow.tries == 1 and not slow.started.is_set()
        with pytest.raises(SettingsError, match="CHAT_TOKEN"):
            await asyncio.wait_for(startup.failure(), WAIT)
        assert refused.tries == 2
    finally:
        await startup.stop()
    assert slow.stopped and fine.stopped and refused.stopped


async def test_first_tries_returns_once_every_platform_tried_and_raises_a_refused_token_at_once():
    down = Scripted("down", *[PlatformUnavailable("down")] * 1000)
    up = Scripted("up")
    startup = PlatformStartup([down, up], short_backoff)
    startup.start()
    await asyncio.wait_for(startup.first_tries(), WAIT)  # `down` keeps trying in the background
    assert up.started.is_set()
    await startup.stop()

    refused = Scripted("refused", SettingsError("invalid setting CHAT_TOKEN: refused"))
    startup = PlatformStartup([refused], short_backoff)
    startup.start()
    with pytest.raises(SettingsError):
        await asyncio.wait_for(startup.first_tries(), WAIT)
    await startup.stop()


# --- as a process: exit 2 with one line -------------------------------------------------------------------------


async def _serve_process_exit(tmp_path: Path, **env: str) -> tuple[int, list[str]]:
    sandbox = Sandbox()
    omi_url = await sandbox.start("127.0.0.1", 0)
    app = sandbox.create_app(capabilities=ALL_CAPABILITIES)
    process_env = serve_env(tmp_path, omi_url, app, **env)
    serve = BackgroundProcess("serve", cwd=tmp_path, env=process_env)
    try:
        code = await asyncio.to_thread(serve.process.wait, WAIT * 2)
    finally:
        serve.kill()
        await sandbox.stop()
        sandbox.close()
    return code, serve.rest()


async def test_serve_exits_2_naming_the_telegram_token_the_bot_api_refuses(tmp_path):
    api = await FakeBotApi().start()
    try:
        code, lines = await _serve_process_exit(
            tmp_path, TELEGRAM_BOT_TOKEN="999:refused-token-never-logged", TELEGRAM_API_BASE_URL=api.base_url
        )
    finally:
        await api.stop()
    assert code == 2
    [line] = [line for line in lines if "TELEGRAM_BOT_TOKEN" in line]
    assert line == "omi-bridge: invalid setting TELEGRAM_BOT_TOKEN: Telegram rejected it"
    output = "\n".join(lines)
    assert "Traceback" not in output and "refused-token-never-logged" not in output


async def test_serve_exits_2_naming_the_slack_token_slack_refuses(tmp_path):
    fake = FakeSlack()
    api_url = await fake.start()
    try:
        code, lines = await _serve_process_exit(
            tmp_path,
            SLACK_BOT_TOKEN="xoxb-revoked-never-logged",
            SLACK_SIGNING_SECRET=SIGNING_SECRET,
            SLACK_API_URL=api_url,
        )
    finally:
        await fake.stop()
    assert code == 2
    [line] = [line for line in lines if "SLACK_BOT_TOKEN" in line]
    assert line == "omi-bridge: invalid setting SLACK_BOT_TOKEN: Slack refused it (invalid_auth)"
    output = "\n".join(lines)
    assert "Traceback" not in output and "xoxb-revoked-never-logged" not in output
