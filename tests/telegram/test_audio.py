"""Voice messages, audio files and video notes (SPEC §11): parsed from real Bot API updates into `InboundMessage.audio`
(the `unsupported` answer kept as it was, for when transcription is off), and their bytes fetched through getFile
from the fake Bot API on 127.0.0.1."""

from __future__ import annotations

from typing import Any

import pytest
from telegram import Bot, Update

from adapters.telegram.adapter import TelegramAdapter
from adapters.telegram.bot_api import make_bot
from adapters.telegram.convert import audio_filename
from adapters.telegram.files import GONE, TelegramAudio
from adapters.telegram.intake import arrival_for
from bot.events import Audio, InboundMessage, Platform
from bot.files import MAX_DOWNLOAD_BYTES, FileRefused, FileTooBig, FileUnavailable
from bot.store import InboxRow
from tests.telegram.conftest import recorded, telegram_settings
from tests.telegram.fake_bot_api import FakeBotApi

CHARLES = {"id": 2002, "is_bot": False, "first_name": "Charles", "last_name": "Babbage", "username": "cbabbage"}


def voice_update(**changes: Any) -> dict[str, Any]:
    """fixtures/voice.json (a 4 s voice message, `voice-1`), its message changed by `changes`."""
    update = recorded("voice")
    update["message"].update(changes)
    return update


def audio_update(file_name: str | None, mime_type: str | None, *, file_id: str = "audio-1") -> dict[str, Any]:
    update = recorded("voice")
    message = update["message"]
    del message["voice"]
    message["audio"] = {
        "duration": 213,
        "performer": "Queen",
        "title": "Bohemian Rhapsody",
        "file_id": file_id,
        "file_unique_id": f"u-{file_id}",
        "file_size": 3_400_000,
    }
    if file_name is not None:
        message["audio"]["file_name"] = file_name
    if mime_type is not None:
        message["audio"]["mime_type"] = mime_type
    return update


def video_note_update() -> dict[str, Any]:
    update = recorded("voice")
    message = update["message"]
    del message["voice"]
    thumbnail = {"file_id": "thumb-1", "file_unique_id": "thumb1", "width": 240, "height": 240, "file_size": 9000}
    message["video_note"] = {
        "duration": 7,
        "length": 240,
        "thumbnail": thumbnail,
        "file_id": "note-1",
        "file_unique_id": "note1",
        "file_size": 480_000,
    }
    return update


@pytest.fixture
async def parse(fake_api):
    """The adapter's real parse path: an update stored as the transports store it, then parsed from its row."""
    adapter = TelegramAdapter(make_bot(telegram_settings(fake_api)))
    await adapter.start()

    async def parsed(update: dict[str, Any]) -> InboundMessage:
        arrival = arrival_for(update)
        message = await adapter.parse(InboxRow(1, "telegram", arrival.kind, arrival.payload, 1773306000.0))
        assert message is not None
        return message

    try:
        yield parsed
    finally:
        await adapter.close()


# --- parsing ------------------------------------------------------------------------------------------------


async def test_a_voice_message_carries_its_audio(parse):
    message = await parse(voice_update())

    assert message.audio == Audio(
        kind="voice", ref="voice-1", duration=4, size=9000, mime="audio/ogg", filename="voice.ogg"
    )
    assert message.text == ""
    assert message.unsupported == "voice"  # as before: the answer when transcription is off


async def test_a_voice_message_without_a_mime_type_is_ogg(parse):
    update = voice_update()
    del update["message"]["voice"]["mime_type"]

    message = await parse(update)

    assert message.audio is not None
    assert (message.audio.mime, message.audio.filename) == ("audio/ogg", "voice.ogg")


async def test_a_voice_message_with_a_caption_keeps_the_caption_as_text(parse):
    message = await parse(voice_update(caption="Notes from the mill"))

    assert message.audio is not None and message.audio.ref == "voice-1"
    assert message.text == "Notes from the mill"
    assert message.unsupported is None


async def test_a_forwarded_voice_message_carries_its_audio_and_origin(parse):
    message = await parse(voice_update(forward_origin={"type": "user", "sender_user": CHARLES, "date": 1773219600}))

    assert message.audio is not None and message.audio.kind == "voice"
    assert message.forward_origin is not None and message.forward_origin.name == "Charles Babbage"
    assert message.unsupported == "voice"


async def test_a_voice_message_the_library_refuses_is_read_leniently_with_its_audio(parse):
    # A hidden-user forward without `sender_user_name` (an older or self-hosted server): read from the raw JSON.
    update = voice_update(forward_origin={"type": "hidden_user", "date": 1773219600})
    with pytest.raises(Exception):  # noqa: B017 - whatever the library raises
        Update.de_json(update, None)

    message = await parse(update)

    assert message.audio == Audio(
        kind="voice", ref="voice-1", duration=4, size=9000, mime="audio/ogg", filename="voice.ogg"
    )
    assert message.forward_origin is not None and message.forward_origin.kind == "hidden_user"
    assert message.unsupported == "voice"


async def test_an_audio_file_with_a_transcribable_name_keeps_it(parse):
    message = await parse(audio_update("song.m4a", "audio/mp4"))

    assert message.audio == Audio(
        kind="audio", ref="audio-1", duration=213, size=3_400_000, mime="audio/mp4", filename="song.m4a"
    )
    assert message.unsupported == "audio"


async def test_an_audio_file_of_another_format_is_named_by_the_default(parse):
    message = await parse(audio_update("x.aiff", "audio/aiff"))

    assert message.audio is not None
    assert (message.audio.mime, message.audio.filename) == ("audio/aiff", "audio.mp3")
    assert message.unsupported == "audio"


async def test_an_audio_file_without_name_or_mime_type_is_mpeg(parse):
    message = await parse(audio_update(None, None))

    assert message.audio is not None
    assert (message.audio.mime, message.audio.filename) == ("audio/mpeg", "audio.mp3")


async def test_a_video_note_carries_its_audio(parse):
    message = await parse(video_note_update())

    assert message.audio == Audio(
        kind="video_note", ref="note-1", duration=7, size=480_000, mime="video/mp4", filename="video_note.mp4"
    )
    assert message.unsupported == "video_note"


async def test_a_command_replying_to_a_voice_message_has_no_audio(parse):
    update = recorded("command_start")
    message = update["message"]
    message["text"] = "/extract"
    message["entities"][0]["length"] = len("/extract")
    message["reply_to_message"] = voice_update()["message"]

    parsed = await parse(update)

    assert parsed.command is not None and parsed.command.name == "extract"
    assert parsed.audio is None
    assert parsed.reply_to is not None and parsed.reply_to.audio is None


async def test_messages_without_audio_have_none(parse):
    assert (await parse(recorded("plain_text"))).audio is None
    assert (await parse(recorded("sticker"))).audio is None


@pytest.mark.parametrize(
    ("kind", "file_name", "mime", "expected"),
    [
        ("voice", "", "audio/mpeg", "voice.ogg"),
        ("video_note", "clip.mov", "video/quicktime", "video_note.mp4"),
        ("audio", "song.m4a", "audio/mp4", "song.m4a"),
        ("audio", "Song.MP3", "audio/mpeg", "Song.MP3"),
        ("audio", "dir/sub\\take.flac", "audio/flac", "take.flac"),
        ("audio", ".mp3", "audio/mpeg", "audio.mp3"),
        ("audio", "x.aiff", "audio/aiff", "audio.mp3"),
        ("audio", "", "audio/mpeg", "audio.mp3"),
        ("audio", "track", "audio/mp4", "audio.m4a"),
        ("audio", "track.bin", "audio/x-m4a", "audio.m4a"),
        ("audio", "", "audio/ogg; codecs=opus", "audio.ogg"),
        ("audio", "", "audio/wav", "audio.wav"),
        ("audio", "", "audio/x-wav", "audio.wav"),
        ("audio", "", "audio/flac", "audio.flac"),
        ("audio", "", "audio/webm", "audio.webm"),
        ("audio", "", "application/octet-stream", "audio.mp3"),
    ],
)
def test_the_file_name_always_ends_in_an_extension_the_transcription_api_accepts(kind, file_name, mime, expected):
    assert audio_filename(kind, file_name, mime) == expected


# --- fetching -----------------------------------------------------------------------------------------------


@pytest.fixture
async def bot(fake_api):
    made = Bot(fake_api.token, base_url=fake_api.base_url, base_file_url=fake_api.file_base_url)
    async with made:
        yield made


def voice(ref: str = "voice-1", size: int | None = 9000) -> Audio:
    return Audio(kind="voice", ref=ref, duration=4, size=size, mime="audio/ogg", filename="voice.ogg")


async def test_the_bytes_are_fetched_through_get_file(fake_api, bot):
    fake_api.add_file("voice-1", "voice/file_1.oga", b"OggS fake opus")

    assert await TelegramAudio(bot).fetch_audio(voice()) == b"OggS fake opus"
    assert fake_api.calls_to("getFile") == [{"file_id": "voice-1"}]
    assert fake_api.calls_to("download") == [{"path": "voice/file_1.oga"}]


async def test_a_size_announced_over_the_limit_is_too_big_before_any_request(fake_api, bot):
    fake_api.add_file("voice-1", "voice/file_1.oga", b"OggS")

    with pytest.raises(FileTooBig) as caught:
        await TelegramAudio(bot).fetch_audio(voice(size=MAX_DOWNLOAD_BYTES + 1))

    assert caught.value.size == MAX_DOWNLOAD_BYTES + 1
    assert fake_api.calls_to("getFile") == []


async def test_get_file_saying_too_big_is_too_big(fake_api, bot):
    fake_api.add_file("voice-1", "voice/file_1.oga", b"OggS")
    fake_api.fail("getFile", 400, "Bad Request: file is too big")

    with pytest.raises(FileTooBig):
        await TelegramAudio(bot).fetch_audio(voice(size=None))
    assert fake_api.calls_to("download") == []


async def test_a_file_telegram_does_not_know_is_refused_for_good(fake_api, bot):
    with pytest.raises(FileRefused) as caught:
        await TelegramAudio(bot).fetch_audio(voice(ref="no-such-file"))

    assert str(caught.value) == GONE
    assert caught.value.__cause__ is None


async def test_a_server_error_is_unavailable_for_now(fake_api, bot):
    fake_api.fail("getFile", 500, "Internal Server Error")

    with pytest.raises(FileUnavailable):
        await TelegramAudio(bot).fetch_audio(voice())
    assert len(fake_api.calls_to("getFile")) == 1  # one attempt: the transcription job tries again later


async def test_an_unreachable_bot_api_is_unavailable_without_the_token_or_url(fake_api, bot):
    fake_api.add_file("voice-1", "voice/file_1.oga", b"OggS")
    await fake_api.stop()

    with pytest.raises(FileUnavailable) as caught:
        await TelegramAudio(bot).fetch_audio(voice())

    assert fake_api.token not in str(caught.value)
    assert fake_api.url not in str(caught.value)
    assert caught.value.__cause__ is None and caught.value.__suppress_context__


async def test_serve_registers_the_telegram_audio_source(transport, fake_api, env):
    fake_api.add_file("voice-1", "voice/file_1.oga", b"OggS registered")
    await transport.start()

    source = env.bridge.audio_sources[Platform.TELEGRAM]

    assert isinstance(source, TelegramAudio)
    assert await source.fetch_audio(voice()) == b"OggS registered"


async def test_the_fake_bot_api_stays_on_loopback(fake_api: FakeBotApi):
    assert fake_api.url.startswith("http://127.0.0.1:")
