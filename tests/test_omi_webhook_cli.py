"""`omi-bridge omi-webhook-url` and doctor's `omi-webhook` check (SPEC §2, §12), run as `python -m bot` in a
subprocess with a clean environment: one line to paste (the stored secret, or the new one of "new,old"), a warning
on stderr when Omi could not call it, and the secret never in doctor's output."""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path

from bot.checks import check_omi_webhook
from bot.clock import SystemClock
from bot.pushes.secret import SECRET_KEY, webhook_secrets
from bot.settings import Settings
from bot.store import Store
from tests.test_cli import clean_env, run, run_all

HTTPS = "https://bridge.example.org"
URL = re.compile(r"^(?P<base>.+)/omi/webhook/(?P<secret>[A-Za-z0-9_-]+)$")
#: Doctor's line format; a part may have a hyphen (`omi-webhook`).
LINE = re.compile(r"^(OK|WARN|FAIL) [a-z_-]+: \S")
NEW, OLD = "newsecretnewsecret1", "oldsecretoldsecret2"
OK_LINE = "OK omi-webhook: set → run omi-bridge omi-webhook-url and paste it as the Omi app's webhook (Memory creation)"


def env_for(tmp_path: Path, **extra: str) -> dict[str, str]:
    return clean_env(DATABASE_URL=f"sqlite:///{tmp_path / 'bridge.db'}", **extra)


def pasted(out: str) -> tuple[str, str]:
    """The single stdout line: (the base URL, the secret)."""
    lines = out.splitlines()
    assert len(lines) == 1, out
    match = URL.match(lines[0])
    assert match, lines[0]
    return match["base"], match["secret"]


# --- omi-webhook-url ------------------------------------------------------------------------------------------------


def test_prints_one_line_with_a_generated_secret_that_is_stored(tmp_path: Path) -> None:
    env = env_for(tmp_path, PUBLIC_URL=HTTPS + "/")
    first, second = run_all(("omi-webhook-url",), ("omi-webhook-url",), cwd=tmp_path, env=env)
    third = run("omi-webhook-url", cwd=tmp_path, env=env)
    for result in (first, second, third):
        assert result.code == 0, result
        assert result.err == "", result.err  # https: nothing to warn about
    base, secret = pasted(first.out)
    assert base == HTTPS
    assert len(secret) >= 32  # token_urlsafe(32): 256 bits
    assert second.out == first.out == third.out  # generated once, stored, even when two run at once

    stored = sqlite3.connect(tmp_path / "bridge.db").execute(
        "SELECT value FROM stored_values WHERE key = ?", (SECRET_KEY,)
    )
    assert stored.fetchall() == [(secret,)]


async def test_it_is_the_secret_serve_accepts(tmp_path: Path) -> None:
    result = run("omi-webhook-url", cwd=tmp_path, env=env_for(tmp_path, PUBLIC_URL=HTTPS))
    assert result.code == 0, result
    _, secret = pasted(result.out)
    store = await Store.open(f"sqlite:///{tmp_path / 'bridge.db'}", SystemClock())
    try:
        assert await webhook_secrets(None, store.values) == [secret]
    finally:
        await store.close()


def test_another_database_gets_another_secret(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    a, b = run_all(
        ("omi-webhook-url",),
        ("omi-webhook-url",),
        cwd=tmp_path,
        env=clean_env(PUBLIC_URL=HTTPS, DATABASE_URL=f"sqlite:///{tmp_path / 'a' / 'x.db'}"),
    )
    other = run(
        "omi-webhook-url", cwd=tmp_path, env=clean_env(PUBLIC_URL=HTTPS, DATABASE_URL=f"sqlite:///{tmp_path / 'b.db'}")
    )
    assert a.out == b.out
    assert pasted(other.out)[1] != pasted(a.out)[1]


def test_configured_secret_prints_the_new_one_while_rotating(tmp_path: Path) -> None:
    rotating, single = run_all(
        ("omi-webhook-url",),
        ("omi-webhook-url",),
        cwd=tmp_path,
        env=env_for(tmp_path, PUBLIC_URL=HTTPS, OMI_WEBHOOK_SECRET=f"{NEW},{OLD}"),
    )
    assert rotating.code == 0, rotating
    assert rotating.out == f"{HTTPS}/omi/webhook/{NEW}\n"
    assert OLD not in rotating.out + rotating.err
    assert rotating.err == ""
    assert single.out == rotating.out


def test_an_http_or_unset_public_url_warns_on_stderr_only(tmp_path: Path) -> None:
    plain = run("omi-webhook-url", cwd=tmp_path, env=env_for(tmp_path, PUBLIC_URL="http://bridge.example.org"))
    unset = run("omi-webhook-url", cwd=tmp_path, env=env_for(tmp_path, PORT="8123"))
    assert pasted(plain.out)[0] == "http://bridge.example.org"
    assert pasted(unset.out)[0] == "http://localhost:8123"
    assert pasted(plain.out)[1] == pasted(unset.out)[1]
    for result in (plain, unset):
        assert result.code == 0, result
        assert len(result.err_lines) == 1, result.err
        assert "https" in result.err and "PUBLIC_URL" in result.err, result.err
        assert pasted(result.out)[1] not in result.err


def test_help_and_an_invalid_secret(tmp_path: Path) -> None:
    bad = "short,secret"
    helped, invalid = run_all(
        ("omi-webhook-url", "--help"),
        ("omi-webhook-url",),
        cwd=tmp_path,
        env=env_for(tmp_path, OMI_WEBHOOK_SECRET=bad),
    )
    assert helped.code == 0, helped
    assert "usage: omi-bridge omi-webhook-url" in helped.out
    assert helped.err == ""
    assert invalid.code == 2, invalid
    assert invalid.out == ""
    assert len(invalid.err_lines) == 1 and "OMI_WEBHOOK_SECRET" in invalid.err, invalid.err
    assert "Traceback" not in invalid.err
    assert list(tmp_path.iterdir()) == []  # neither touched the database


def test_listed_in_the_program_help(tmp_path: Path) -> None:
    result = run("--help", cwd=tmp_path)
    assert result.code == 0
    assert "omi-webhook-url" in result.out


# --- doctor ---------------------------------------------------------------------------------------------------------


def test_the_check_alone() -> None:
    https = check_omi_webhook(Settings(_env_file=None, PUBLIC_URL=HTTPS))  # type: ignore[call-arg]
    assert https.line() == OK_LINE
    for public_url in ("http://bridge.example.org", None):
        finding = check_omi_webhook(Settings(_env_file=None, PUBLIC_URL=public_url))  # type: ignore[call-arg]
        assert finding.level == "WARN"
        assert finding.line().startswith("WARN omi-webhook: "), finding.line()
        assert "https" in finding.finding and "PUBLIC_URL" in finding.fix, finding.line()


def test_doctor_says_ok_for_https_and_warns_for_http_never_showing_the_secret(tmp_path: Path) -> None:
    generated = run("omi-webhook-url", cwd=tmp_path, env=env_for(tmp_path, PUBLIC_URL=HTTPS))
    _, secret = pasted(generated.out)
    https = run("doctor", cwd=tmp_path, env=env_for(tmp_path, PUBLIC_URL=HTTPS))
    http = run("doctor", cwd=tmp_path, env=env_for(tmp_path, PUBLIC_URL="http://bridge.example.org"))
    configured = run("doctor", cwd=tmp_path, env=env_for(tmp_path, PUBLIC_URL=HTTPS, OMI_WEBHOOK_SECRET=f"{NEW},{OLD}"))
    for result in (https, http, configured):
        assert result.code == 0, result
        assert all(LINE.match(line) for line in result.out_lines), result.out
        for hidden in (secret, NEW, OLD):
            assert hidden not in result.out + result.err
        ours = [line for line in result.out_lines if line.startswith(("OK omi-webhook", "WARN omi-webhook"))]
        assert len(ours) == 1, result.out
        assert result.out_lines.index(ours[0]) > next(  # after the transcription check
            i for i, line in enumerate(result.out_lines) if " transcription: " in line
        )
    assert OK_LINE in https.out_lines and OK_LINE in configured.out_lines
    [warning] = [line for line in http.out_lines if line.startswith("WARN omi-webhook: ")]
    assert "https" in warning and " → set PUBLIC_URL" in warning, warning
