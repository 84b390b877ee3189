"""Settings (SPEC §3): defaults, `.env` in the working directory, env overrides, one-line errors, secrets kept out."""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from bot.settings import Settings, SettingsError, load_settings

SECRETS = {
    "OMI_API_KEY": "sk_0123456789abcdef0123456789abcdef",
    "TELEGRAM_BOT_TOKEN": "123456:AAE-telegram-token-SECRET",
    "TELEGRAM_WEBHOOK_SECRET": "webhook-secret-SECRET_42",
    "SLACK_BOT_TOKEN": "xoxb-slack-bot-SECRET",
    "SLACK_SIGNING_SECRET": "signing-SECRET-0f0f0f",
    "SLACK_APP_TOKEN": "xapp-slack-app-SECRET",
}


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """An empty working directory and no setting in the environment."""
    monkeypatch.chdir(tmp_path)
    for name in list(os.environ):
        if name in Settings.model_fields or name.startswith(("OMI_", "TELEGRAM_", "SLACK_")):
            monkeypatch.delenv(name)
    return tmp_path


def write_env(directory: Path, text: str) -> None:
    (directory / ".env").write_text(text, encoding="utf-8")


def official(url: str) -> tuple[str, str, str]:
    parts = urlsplit(url)
    return parts.scheme, parts.netloc, parts.path


def test_defaults() -> None:
    settings = load_settings()
    assert settings.OMI_APP_ID is None
    assert settings.OMI_API_KEY is None
    # The real services' addresses, checked in parts: a test never connects to them (SPEC §3 defaults).
    assert official(settings.OMI_API_BASE_URL) == ("https", "api.omi.me", "")
    assert settings.OMI_TEST_UID is None
    assert settings.TELEGRAM_BOT_TOKEN is None
    assert official(settings.TELEGRAM_API_BASE_URL) == ("https", "api.telegram.org", "/bot")
    assert settings.TELEGRAM_WEBHOOK_URL is None
    assert settings.TELEGRAM_WEBHOOK_SECRET is None
    assert settings.SLACK_BOT_TOKEN is None
    assert settings.SLACK_SIGNING_SECRET is None
    assert settings.SLACK_APP_TOKEN is None
    assert official(settings.SLACK_API_URL) == ("https", "slack.com", "/api/")
    assert settings.DATABASE_URL == "sqlite:///omi-bridge.db"
    assert settings.database_path == "omi-bridge.db"
    assert (settings.HOST, settings.PORT) == ("0.0.0.0", 8080)  # noqa: S104 - the documented default
    assert settings.PUBLIC_URL is None
    assert settings.public_url == "http://localhost:8080"
    assert settings.BATCH_WINDOW_SECONDS == 2
    assert settings.DELIVERY_CONCURRENCY == 32
    assert (settings.LOG_LEVEL, settings.LOG_FORMAT) == ("INFO", "text")
    assert not settings.telegram_enabled
    assert not settings.slack_enabled
    assert settings.secret_values() == []


def test_env_file_in_the_working_directory_is_read(clean_env: Path) -> None:
    write_env(
        clean_env,
        "# a comment\n"
        "OMI_APP_ID=01HAPP\n"
        f"OMI_API_KEY={SECRETS['OMI_API_KEY']}\n"
        "OMI_API_BASE_URL=http://127.0.0.1:8765\n"
        "TELEGRAM_BOT_TOKEN='123:abc'\n"
        "PORT=9000\n"
        "BATCH_WINDOW_SECONDS=0.5\n"
        "LOG_LEVEL=debug\n"
        "LOG_FORMAT=json\n"
        "DATABASE_URL=sqlite:///data/bridge.db\n",
    )
    settings = load_settings()
    assert settings.OMI_APP_ID == "01HAPP"
    assert settings.OMI_API_KEY is not None
    assert settings.OMI_API_KEY.get_secret_value() == SECRETS["OMI_API_KEY"]
    assert settings.OMI_API_BASE_URL == "http://127.0.0.1:8765"
    assert settings.TELEGRAM_BOT_TOKEN is not None
    assert settings.TELEGRAM_BOT_TOKEN.get_secret_value() == "123:abc"
    assert settings.telegram_enabled
    assert settings.PORT == 9000
    assert settings.public_url == "http://localhost:9000"
    assert settings.BATCH_WINDOW_SECONDS == 0.5
    assert (settings.LOG_LEVEL, settings.LOG_FORMAT) == ("DEBUG", "json")
    assert settings.database_path == str(Path("data/bridge.db"))


def test_env_file_elsewhere_is_not_read(clean_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_env(clean_env, "PORT=9000\n")
    elsewhere = clean_env / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert load_settings().PORT == 8080


def test_environment_overrides_the_env_file(clean_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_env(clean_env, "PORT=9000\nLOG_FORMAT=json\nPUBLIC_URL=https://from-file.example\n")
    monkeypatch.setenv("PORT", "9100")
    monkeypatch.setenv("PUBLIC_URL", "https://bridge.example.com/")
    settings = load_settings()
    assert settings.PORT == 9100
    assert settings.LOG_FORMAT == "json"
    assert settings.PUBLIC_URL == "https://bridge.example.com"
    assert settings.public_url == "https://bridge.example.com"


def test_every_field_empty_is_the_same_as_unset(clean_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    defaults = load_settings().model_dump()
    write_env(clean_env, "".join(f"{name}=\n" for name in Settings.model_fields))
    monkeypatch.setenv("PORT", "")
    monkeypatch.setenv("OMI_APP_ID", "   ")
    settings = load_settings()
    assert settings.model_dump() == defaults
    assert "LOG_LEVEL" not in settings.model_fields_set  # the console's "unless asked for" relies on this


@pytest.mark.parametrize(
    ("env", "name"),
    [
        ({"PORT": "abc"}, "PORT"),
        ({"PORT": "0"}, "PORT"),
        ({"PORT": "70000"}, "PORT"),
        ({"BATCH_WINDOW_SECONDS": "-1"}, "BATCH_WINDOW_SECONDS"),
        ({"DELIVERY_CONCURRENCY": "0"}, "DELIVERY_CONCURRENCY"),
        ({"LOG_LEVEL": "LOUD"}, "LOG_LEVEL"),
        ({"LOG_FORMAT": "xml"}, "LOG_FORMAT"),
        ({"DATABASE_URL": "postgres://x"}, "DATABASE_URL"),
        ({"OMI_API_BASE_URL": "ftp://x"}, "OMI_API_BASE_URL"),
        ({"TELEGRAM_API_BASE_URL": "tg.example.com/bot"}, "TELEGRAM_API_BASE_URL"),
        ({"SLACK_API_URL": "file:///etc/passwd"}, "SLACK_API_URL"),
        ({"PUBLIC_URL": "bridge.example.com"}, "PUBLIC_URL"),
        ({"OMI_APP_ID": "01HAPP"}, "OMI_API_KEY"),
        ({"OMI_API_KEY": SECRETS["OMI_API_KEY"]}, "OMI_APP_ID"),
        ({"TELEGRAM_WEBHOOK_URL": "http://example.com/x"}, "TELEGRAM_WEBHOOK_URL"),
        ({"TELEGRAM_WEBHOOK_SECRET": "has spaces and !"}, "TELEGRAM_WEBHOOK_SECRET"),
        ({"OMI_APP_ID": "01HAPP", "OMI_API_KEY": "sk_abc def"}, "OMI_API_KEY"),
    ],
)
def test_invalid_value_is_one_line_naming_the_setting(
    env: dict[str, str], name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(SettingsError) as info:
        load_settings()
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(f"invalid setting {name}: ")
    assert len(message) > len(f"invalid setting {name}: ")


def test_invalid_value_in_the_env_file_is_reported_too(clean_env: Path) -> None:
    write_env(clean_env, "LOG_FORMAT=xml\n")
    with pytest.raises(SettingsError, match=r"^invalid setting LOG_FORMAT: "):
        load_settings()


@pytest.mark.parametrize(
    ("name", "bad"),
    [
        ("PORT", "abc"),
        ("OMI_API_KEY", "sk_abc def hunter2"),
        ("TELEGRAM_WEBHOOK_SECRET", "bad secret hunter2!"),
        ("DATABASE_URL", "postgres://bridge:hunter2@db.internal:port/bridge"),
        ("DATABASE_URL", "mysql://bridge:hunter2@db.internal:5432/bridge"),
        ("OMI_API_BASE_URL", "ftp://user:hunter2@omi.example"),
    ],
)
def test_secrets_never_appear_in_the_error(name: str, bad: str, monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in SECRETS.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("OMI_APP_ID", "01HAPP")
    monkeypatch.setenv(name, bad)
    with pytest.raises(SettingsError) as info:
        load_settings()
    message = str(info.value)
    assert name in message
    assert "hunter2" not in message
    for secret in SECRETS.values():
        assert secret not in message
        assert secret not in repr(info.value)
    assert info.value.__cause__ is None
    assert info.value.__suppress_context__


def test_secrets_never_appear_in_the_repr(monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in SECRETS.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("OMI_APP_ID", "01HAPP")
    settings = load_settings()
    for text in (repr(settings), str(settings), settings.model_dump_json()):
        for secret in SECRETS.values():
            assert secret not in text
    assert "01HAPP" in repr(settings)
    assert sorted(settings.secret_values()) == sorted(SECRETS.values())


@pytest.mark.parametrize(
    ("base", "files"),
    [
        ("http://127.0.0.1:8081/bot", "http://127.0.0.1:8081/file/bot"),
        ("https://tg.example.com/bot/", "https://tg.example.com/file/bot"),
        ("https://tg.example.com/proxy/bot", "https://tg.example.com/proxy/file/bot"),
    ],
)
def test_telegram_file_base_url(base: str, files: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TELEGRAM_API_BASE_URL", base)
    assert load_settings().telegram_file_base_url == files


def test_default_telegram_file_base_url() -> None:
    assert official(load_settings().telegram_file_base_url) == ("https", "api.telegram.org", "/file/bot")


def test_webhook_url_https_and_loopback_http_are_accepted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TELEGRAM_WEBHOOK_URL", "https://bridge.example.com/telegram/webhook/")
    assert load_settings().TELEGRAM_WEBHOOK_URL == "https://bridge.example.com/telegram/webhook"
    monkeypatch.setenv("TELEGRAM_WEBHOOK_URL", "http://127.0.0.1:8080/telegram/webhook")
    assert load_settings().TELEGRAM_WEBHOOK_URL == "http://127.0.0.1:8080/telegram/webhook"


@pytest.mark.parametrize(
    ("url", "path"),
    [
        ("sqlite:///:memory:", ":memory:"),
        ("sqlite:///bridge.db", "bridge.db"),
        ("sqlite:////var/lib/omi-bridge/bridge.db", str(Path("/var/lib/omi-bridge/bridge.db"))),
    ],
)
def test_database_url_forms(url: str, path: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", url)
    assert load_settings().database_path == path


def test_overrides_are_validated_like_the_environment() -> None:
    assert load_settings(PORT="8181").PORT == 8181
    with pytest.raises(SettingsError, match=r"^invalid setting PORT: "):
        load_settings(PORT="nope")


def test_env_example_and_readme_list_every_setting():
    from pathlib import Path

    from bot.settings import Settings

    root = Path(__file__).resolve().parent.parent
    example = (root / ".env.example").read_text()
    readme = (root / "README.md").read_text()
    for name in Settings.model_fields:
        assert f"# {name}=" in example, f"{name} is missing from .env.example"
        assert f"`{name}`" in readme, f"{name} is missing from README's settings table"


def test_the_time_scale_is_refused_unless_omi_is_on_loopback():
    from bot.settings import SettingsError, load_settings

    with pytest.raises(SettingsError, match="OMI_BRIDGE_TIME_SCALE: test-only"):
        load_settings(OMI_APP_ID="a", OMI_API_KEY="k", OMI_BRIDGE_TIME_SCALE=20)
    fast = load_settings(
        OMI_APP_ID="a", OMI_API_KEY="k", OMI_API_BASE_URL="http://127.0.0.1:9/", OMI_BRIDGE_TIME_SCALE=20
    )
    assert fast.OMI_BRIDGE_TIME_SCALE == 20
    assert load_settings(OMI_BRIDGE_TIME_SCALE=20).OMI_BRIDGE_TIME_SCALE == 20  # the embedded sandbox


async def test_a_scaled_clock_runs_faster_from_a_shared_origin():
    import time

    from bot.clock import ScaledClock

    origin = time.time() - 10.0
    clock, twin = ScaledClock(20.0, origin), ScaledClock(20.0, origin)
    assert abs(clock.now() - twin.now()) < 1.0  # two processes with one origin agree
    assert clock.now() - origin == pytest.approx(200.0, abs=5.0)
    started = time.monotonic()
    await clock.sleep_until(clock.now() + 2.0)  # two scaled seconds: a tenth of a real one
    assert time.monotonic() - started < 1.0


def test_link_previews_are_on_by_default_and_off_fetches_nothing(monkeypatch):
    from bot.previews import allow_any, is_public
    from bot.runtime import previews_for
    from bot.settings import load_settings

    monkeypatch.delenv("LINK_PREVIEWS", raising=False)  # the test-suite turns them off (tests/conftest.py)
    on = previews_for(load_settings())
    assert on is not None and on.keywords["allow"] is is_public
    assert previews_for(load_settings(LINK_PREVIEWS="off")) is None
    private = previews_for(load_settings(LINK_PREVIEWS_ALLOW_PRIVATE=True))
    assert private is not None and private.keywords["allow"] is allow_any
    # The embedded sandbox promises that nothing leaves the machine: previews only when asked for by name.
    assert previews_for(load_settings(), sandbox=True) is None
    assert previews_for(load_settings(LINK_PREVIEWS="on"), sandbox=True) is not None
