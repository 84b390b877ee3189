"""`omi-bridge import` end to end (SPEC §10), as a real subprocess against the sandbox on 127.0.0.1: a Telegram
export in both layouts, the dry run, the refusals and their exit codes, delivery by the command itself (no `serve`),
and a second import of the same chat that queues nothing twice."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from bot.clock import SystemClock
from bot.sandbox import Sandbox, conversation_text
from bot.store import Store
from tests.harness import make_sandbox
from tests.processes import clean_env
from tests.telegram import export_fixtures as fx

UID = "uid-importer"


@dataclass
class Setup:
    sandbox: Sandbox
    env: dict[str, str]
    work: Path
    database: str

    async def run(self, *args: str, timeout: float = 60.0) -> tuple[int, str, str]:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bot", "import", *args,
            cwd=self.work, env=self.env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        out, err = await asyncio.wait_for(process.communicate(), timeout)
        assert process.returncode is not None
        return process.returncode, out.decode(), err.decode()

    async def link(self, account: str) -> None:
        store = await Store.open(self.database, SystemClock())
        try:
            await store.links.link_verified(account, UID)
        finally:
            await store.close()


@pytest.fixture
async def setup(tmp_path: Path) -> AsyncIterator[Setup]:
    sandbox, omi_url, app_id, api_key = await make_sandbox(conversations_per_hour=0, memories_per_hour=0)
    sandbox.enable(app_id, UID)
    database = f"sqlite:///{tmp_path / 'bridge.db'}"
    env = clean_env(DATABASE_URL=database, OMI_API_BASE_URL=omi_url, OMI_APP_ID=app_id, OMI_API_KEY=api_key)
    try:
        yield Setup(sandbox, env, tmp_path, database)
    finally:
        await sandbox.stop()


def family_export(directory: Path) -> Path:
    return fx.write(
        directory, fx.full_export(fx.private_chat(), fx.private_chat("Carol Byrne", 1003), fx.saved_messages())
    )


async def test_a_dry_run_shows_each_conversation_and_writes_nothing(setup: Setup) -> None:
    path = fx.write(setup.work, fx.private_chat(n=3))
    code, out, err = await setup.run("telegram", str(path), "--dry-run")
    assert code == 0, err
    lines = out.strip().splitlines()
    assert lines[0].endswith("· 3 messages · Bob Byrne · message 1 from Bob")
    assert lines[-1] == "1 conversation(s) from 3 message(s) of Bob Byrne; dry run, nothing written"
    assert not (setup.work / "bridge.db").exists()


async def test_a_full_export_needs_chat_and_an_html_export_is_answered_with_how_to_export_json(setup: Setup) -> None:
    path = family_export(setup.work)
    code, _, err = await setup.run("telegram", str(path), "--dry-run")
    assert code == 2 and "--chat" in err and "Bob Byrne" in err
    html = setup.work / "messages.html"
    html.write_text("<!DOCTYPE html><html><body>Exported Data</body></html>")
    code, _, err = await setup.run("telegram", str(html), "--as", "telegram:1001")
    assert code == 2 and "Machine-readable JSON" in err
    truncated = setup.work / "cut.json"
    truncated.write_text(path.read_text()[: len(path.read_text()) // 2])
    code, _, err = await setup.run("telegram", str(truncated), "--chat", "Bob Byrne", "--as", "telegram:1001")
    assert code == 2 and err.strip()
    assert await _items(setup) == 0  # nothing queued by a refused import


async def test_an_unverified_account_is_refused_with_exit_1(setup: Setup) -> None:
    path = fx.write(setup.work, fx.private_chat(n=2))
    code, _, err = await setup.run("telegram", str(path), "--as", "telegram:1001")
    assert code == 1 and "not linked" in err


async def test_the_command_delivers_the_import_itself_and_a_second_run_queues_nothing_twice(setup: Setup) -> None:
    await setup.link("telegram:1001")
    path = family_export(setup.work)
    code, out, err = await setup.run("telegram", str(path), "--chat", "Bob Byrne", "--as", "telegram:1001")
    assert code == 0, err + out
    assert "queued 1 conversation(s) from 3 message(s) of Bob Byrne" in out
    assert "imported 1/1" in out
    [conversation] = setup.sandbox.conversations(UID)
    assert conversation_text(conversation) == "\n\n".join(f"Bob Byrne: message {k} from Bob" for k in (1, 2, 3))

    code, out, err = await setup.run("telegram", str(path), "--chat", "1002", "--as", "telegram:1001")
    assert code == 0, err
    assert "nothing to import from Bob Byrne; 3 already imported before, left out" in out
    assert len(setup.sandbox.conversations(UID)) == 1

    code, out, _ = await setup.run("status")
    assert code == 0 and "telegram Bob Byrne\ttelegram:1001\t1/1 delivered\tqueued" in out


async def test_no_wait_returns_once_queued_and_leaves_delivery_to_serve(setup: Setup) -> None:
    await setup.link("telegram:1001")
    path = fx.write(setup.work, fx.saved_messages())
    code, out, err = await setup.run("telegram", str(path), "--as", "telegram:1001", "--no-wait")
    assert code == 0, err
    assert "queued 1 conversation(s) from 2 message(s) of Saved Messages" in out
    assert setup.sandbox.conversations(UID) == []
    assert await _items(setup) == 1
    # An operator unlink ends the account's imports with its link: the waiting items go too.
    unlinking = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", "unlink", "telegram:1001",
        cwd=setup.work, env=setup.env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out_bytes, _ = await asyncio.wait_for(unlinking.communicate(), 30)
    assert unlinking.returncode == 0 and "cancelled its imports (1 conversation(s) not sent)" in out_bytes.decode()
    assert await _items(setup) == 0
    code, out, _ = await setup.run("status")
    assert "cancelled" in out


async def _items(setup: Setup) -> int:
    if not (setup.work / "bridge.db").exists():
        return 0
    store = await Store.open(setup.database, SystemClock())
    try:
        return await store.outbox.depth()
    finally:
        await store.close()


async def test_a_slack_channel_is_imported_through_the_web_api_with_a_rate_limit_waited_out(setup: Setup) -> None:
    from tests.slack.fake_slack import BOT_TOKEN, FakeSlack

    slack = FakeSlack()
    api_url = await slack.start()
    try:
        slack.add_user("U100", "Ada Lovelace")
        slack.add_user("U200", "Grace Hopper")
        slack.add_channel("C100", "garden")
        for n, (user, text) in enumerate([("U100", "tomatoes in April"), ("U200", "and basil"), ("U100", "agreed")]):
            slack.post("C100", f"1717000{n}00.000100", text, user=user)
        slack.rate_limit("conversations.history", retry_after=1)
        await setup.link("slack:U100")
        setup.env.update(SLACK_BOT_TOKEN=BOT_TOKEN, SLACK_API_URL=api_url, SLACK_SIGNING_SECRET="s")
        code, out, err = await setup.run("slack", "--channel", "C100", "--as", "slack:U100")
        assert code == 0, err + out
        assert "queued 1 conversation(s) from 3 message(s) of #garden" in out
        [conversation] = setup.sandbox.conversations(UID)
        assert conversation_text(conversation) == (
            "Ada Lovelace: tomatoes in April\n\nGrace Hopper: and basil\n\nAda Lovelace: agreed"
        )
        slack.leave("C100")
        code, _, err = await setup.run("slack", "--channel", "C100", "--as", "slack:U100")
        assert code == 1 and "/invite" in err
    finally:
        await slack.stop()


async def test_a_channel_of_a_workspace_export_is_imported_and_a_zip_slip_is_refused(setup: Setup) -> None:
    from tests.slack.export_fixtures import SlackExport, write_zip

    export = SlackExport()
    export.user("U100", "Ada Lovelace")
    folder = export.channel("C100", "garden")
    export.message(folder, "1717000000.000100", "planting day", user="U100")
    export.message(folder, "1717000100.000100", "seeds bought", user="U100")
    path = export.write(setup.work / "export.zip")
    code, out, err = await setup.run("slack-export", str(path), "--channel", "garden", "--dry-run")
    assert code == 0, err
    assert "· 2 messages · Ada Lovelace · planting day" in out
    slip = write_zip(setup.work / "slip.zip", {**export.members(), "../../evil.json": b"[]"})
    code, _, err = await setup.run("slack-export", str(slip), "--channel", "garden", "--as", "slack:U100")
    assert code == 2 and err.strip()


async def test_a_serve_started_during_an_import_gets_the_database_within_seconds(setup: Setup) -> None:
    """SPEC §10: the command delivers while no `serve` holds the database, and hands delivery over within 5 s when
    one starts and wants it (SQLite: one worker per file)."""
    import time

    from tests.processes import BackgroundProcess, free_port

    await setup.link("telegram:1001")
    setup.sandbox.set_limits(conversations_per_hour=1)  # the import will take hours: the command keeps delivering
    big = fx.write(setup.work, fx.private_chat(n=3), name="three.json")
    importing = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", "import", "telegram", str(big), "--as", "telegram:1001", "--gap", "0.001",
        cwd=setup.work, env=setup.env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        assert importing.stdout is not None
        line = await asyncio.wait_for(importing.stdout.readline(), 30)
        while b"queued" not in line:
            line = await asyncio.wait_for(importing.stdout.readline(), 30)
        await _until(lambda: len(setup.sandbox.conversations(UID)) == 1)  # it delivers: the first one went
        serve = BackgroundProcess(
            "serve", cwd=setup.work, env={**setup.env, "PORT": str(free_port()), "HOST": "127.0.0.1"}
        )
        try:
            started = time.monotonic()
            await asyncio.to_thread(serve.wait_for, r"serving on http://", 30.0)
            assert time.monotonic() - started < 15.0  # the command let go well before serve's 60 s wait ran out
            assert importing.returncode is None  # and it is still there, watching serve deliver
        finally:
            serve.stop()
    finally:
        importing.kill()
        await importing.wait()


async def _until(predicate, timeout: float = 20.0) -> None:  # type: ignore[no-untyped-def]
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.05)
