"""Odd real updates (fixtures/odd/, written in the shapes the Bot API documentation and the libraries' test data
show): each ends as a saved conversation or a clear reply, never silence — including updates python-telegram-bot
refuses to parse and kinds newer than this bridge."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass

import pytest
from telegram import Update

from adapters.telegram.adapter import TelegramAdapter
from adapters.telegram.bot_api import make_bot
from adapters.telegram.intake import arrival_for
from bot.store import InboxRow
from tests.telegram.conftest import FIXTURES, telegram_settings

ODD = FIXTURES / "odd"


@dataclass(frozen=True)
class Saved:
    text: str
    started_at: str | None = None  # the ISO prefix of the original time, where the update has one
    geolocation: tuple[float, float] | None = None


@dataclass(frozen=True)
class Replied:
    words: str


CANT_BE_SAVED = "can't be saved to Omi yet"

EXPECTED: dict[str, Saved | Replied] = {
    "forward_hidden_user_without_name": Saved("Hidden user: Meet me at the usual place.", "2026-03-11T09:00:00"),
    "forward_channel_post_signed": Saved("Engine News (Chief Engineer): Gear ratios, revised.", "2026-03-11T09:01:40"),
    "forward_legacy_keys_only": Saved("Charles Babbage: Numbers may represent letters as well.", "2026-03-11T09:03:20"),
    "poll_without_newer_keys": Saved("Charles Babbage: Poll: Where shall we meet?\n- The mill\n- The library"),
    "checklist": Saved("Checklist: Before the demo\n- [ ] Oil the gears\n- [x] Punch the cards"),
    "giveaway": Saved("Engine News: Giveaway: 3 winners · A brass gear set · winners chosen 2026-03-20"),
    "giveaway_winners": Saved(
        "Engine News: Giveaway winners: Mary Somerville, Charles Wheatstone\nPrize: 3 months of Telegram Premium"
    ),
    "paid_media": Replied(CANT_BE_SAVED),
    "paid_media_with_caption": Saved("Engine News: Behind the scenes at the mill"),
    "story_forward": Replied(CANT_BE_SAVED),
    "venue": Saved(
        "Location: The British Museum, Great Russell St, London WC1B 3DG (51.5194, -0.127)",
        geolocation=(51.5194, -0.127),
    ),
    "dice": Replied(CANT_BE_SAVED),
    "game": Saved("Game: Difference Engine — Crank the handle to tabulate polynomials."),
    "web_app_data": Replied(CANT_BE_SAVED),
    "link_preview_only": Saved("https://example.com/analytical-engine"),
    "rich_message": Saved("Mill status\nThe store holds 1,000 numbers.\n1. Oil the gears\n2. Punch the cards"),
    "unknown_kind": Replied(CANT_BE_SAVED),
    "edited_unknown_kind": Saved("Draft: ship on Thursday"),
    "edited_rich_message": Saved("Agenda: gears and cards"),
    "private_message_without_from": Saved("Sent without a from field."),
    "callback_inaccessible_message": Replied("Linked to Omi (verified)"),
}


def odd(name: str) -> list[dict]:
    data = json.loads((ODD / f"{name}.json").read_text(encoding="utf-8"))
    return data if isinstance(data, list) else [data]


def test_every_odd_fixture_has_an_expected_outcome():
    assert sorted(path.stem for path in ODD.glob("*.json")) == sorted(EXPECTED)


def test_the_set_includes_updates_the_library_refuses():
    refused = []
    for name in EXPECTED:
        for update in odd(name):
            try:
                Update.de_json(update, None)
            except Exception:
                refused.append(name)
    assert {"forward_hidden_user_without_name", "poll_without_newer_keys"} <= set(refused)


@pytest.mark.parametrize("name", sorted(EXPECTED))
async def test_an_odd_update_is_saved_or_answered(telegram, caplog, name):
    await telegram.link()
    caplog.set_level(logging.INFO)
    await telegram.receive(*odd(name))
    await telegram.deliver()

    expected = EXPECTED[name]
    if isinstance(expected, Saved):
        [conversation] = telegram.conversations()
        assert conversation["external_data"]["text"] == expected.text
        if expected.started_at is not None:
            assert conversation["started_at"].startswith(expected.started_at)
        if expected.geolocation is not None:
            point = conversation["geolocation"]
            assert (point["latitude"], point["longitude"]) == expected.geolocation
        await telegram.api.wait_for("setMessageReaction")
    else:
        assert expected.words in await telegram.reply()
        assert telegram.conversations() == []
    assert not [record for record in caplog.records if record.exc_info], "no tracebacks"


@pytest.mark.parametrize("name", sorted(EXPECTED))
async def test_the_session_known_at_intake_is_the_parsed_messages(env, fake_api, name):
    """One session key: what intake tells processing (`Arrival.session`) is the message's `session_key`."""
    adapter = TelegramAdapter(make_bot(telegram_settings(fake_api)))
    await adapter.start()
    try:
        for update in odd(name):
            arrival = arrival_for(update)
            message = await adapter.parse(InboxRow(1, "telegram", arrival.kind, arrival.payload, 1773306000.0))
            if message is not None:
                assert arrival.session == message.session_key
    finally:
        await adapter.close()
