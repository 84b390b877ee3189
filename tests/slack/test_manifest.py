"""`slack-manifest.yml` and `omi-bridge slack-manifest`: the packaged copy is the repository's file, only the
needed scopes (each with its reason), the public URL filled in."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from adapters.slack.manifest import PLACEHOLDER, manifest_template, render_manifest
from bot.cli import main

ROOT = Path(__file__).resolve().parents[2]
NEEDED_SCOPES = {
    "commands",
    "chat:write",
    "im:history",
    "im:write",
    "users:read",
    "channels:history",
    "groups:history",
    "channels:read",
    "groups:read",
    "files:read",
}


def test_the_packaged_manifest_is_the_repositorys_file():
    assert manifest_template() == (ROOT / "slack-manifest.yml").read_text(encoding="utf-8")


def test_only_the_needed_scopes_each_with_a_reason():
    text = manifest_template()
    scope_lines = text.split("    bot:\n", 1)[1].split("settings:", 1)[0].strip().splitlines()
    scopes = {}
    for line in scope_lines:
        match = re.fullmatch(r"\s*- ([a-z:.]+) # (.+)", line)
        assert match, line
        scopes[match.group(1)] = match.group(2)
    assert set(scopes) == NEEDED_SCOPES


def test_it_declares_the_command_both_shortcuts_the_events_home_and_interactivity():
    text = manifest_template()
    for needed in (
        "command: /omi",
        "callback_id: save_to_omi",
        "callback_id: save_thread_to_omi",
        "- message.im",
        "- app_home_opened",
        "home_tab_enabled: true",
        "messages_tab_enabled: true",
        "is_enabled: true",
        "socket_mode_enabled: false",
    ):
        assert needed in text, needed
    assert text.count(f"{PLACEHOLDER}/slack/events") == 3


def test_render_fills_in_the_public_url_and_can_turn_socket_mode_on():
    text = render_manifest("https://bridge.example.org/", socket_mode=True)
    assert "YOUR_PUBLIC_URL" not in text.replace("where it says YOUR_PUBLIC_URL", "")
    assert text.count("https://bridge.example.org/slack/events") == 3
    assert "socket_mode_enabled: true" in text


@pytest.fixture
def clean_settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)  # no .env
    for name in ("PUBLIC_URL", "SLACK_BOT_TOKEN", "SLACK_APP_TOKEN", "SLACK_SIGNING_SECRET", "PORT"):
        monkeypatch.delenv(name, raising=False)


def test_the_command_prints_the_manifest_with_public_url(clean_settings, monkeypatch, capsys):
    monkeypatch.setenv("PUBLIC_URL", "https://omi.example.net")
    assert main(["slack-manifest"]) == 0
    out, err = capsys.readouterr()
    assert out.count("https://omi.example.net/slack/events") == 3
    assert err == ""


def test_without_public_url_the_placeholder_stays_and_stderr_says_so(clean_settings, capsys):
    assert main(["slack-manifest"]) == 0
    out, err = capsys.readouterr()
    assert out == manifest_template()
    assert "PUBLIC_URL is not set" in err
