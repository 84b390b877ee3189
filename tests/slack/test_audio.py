"""Slack audio files in DMs (SPEC §11): the parsed message marks its first audio file (a Slack audio clip, an
uploaded audio file) for the transcription job, and `SlackAudio` fetches its bytes from the fake Slack — within
20 MB, with the bot token, and with a clear refusal or a "try later" when Slack will not hand it over."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from slack_sdk.web.async_client import AsyncWebClient

from adapters.slack.adapter import SlackAdapter
from adapters.slack.client import web_client
from adapters.slack.files import SlackAudio
from adapters.slack.jobs import job_for
from bot.clock import ManualClock
from bot.events import Audio, InboundMessage, Platform
from bot.files import MAX_DOWNLOAD_BYTES, FileRefused, FileTooBig, FileUnavailable
from bot.store import InboxRow
from tests.slack.fake_slack import BOT_TOKEN, BOT_USER_ID, TEAM_ID, FakeSlack
from tests.slack.workspace import ADA, GENERAL, fixture

CLIP_ID = "F0AUDIO001"
FILES = "https://files.slack.com"
#: An in-app audio clip as Slack describes it in a `file_share` message event (and in files.info).
CLIP: dict[str, Any] = {
    "id": CLIP_ID,
    "created": 1773306010,
    "timestamp": 1773306010,
    "name": "audio_message.m4a",
    "title": "audio_message.m4a",
    "mimetype": "audio/mp4",
    "filetype": "m4a",
    "pretty_type": "MPEG 4 Audio",
    "user": ADA.id,
    "user_team": TEAM_ID,
    "editable": False,
    "size": 48213,
    "mode": "hosted",
    "is_external": False,
    "external_type": "",
    "is_public": False,
    "public_url_shared": False,
    "display_as_bot": False,
    "username": "",
    "subtype": "slack_audio",
    "transcription": {"status": "processing"},
    "url_private": f"{FILES}/files-tmb/{TEAM_ID}-{CLIP_ID}-3f2c1b/audio_message_audio.mp4",
    "url_private_download": f"{FILES}/files-pri/{TEAM_ID}-{CLIP_ID}/download/audio_message.m4a",
    "duration_ms": 42180,
    "aac": f"{FILES}/files-tmb/{TEAM_ID}-{CLIP_ID}-3f2c1b/audio_message_audio.mp4",
    "audio_wave_samples": [0, 12, 40, 73, 51, 20, 4],
    "media_display_type": "audio",
    "permalink": f"https://fake-team.slack.com/files/{ADA.id}/{CLIP_ID}/audio_message.m4a",
    "is_starred": False,
    "has_rich_preview": False,
    "file_access": "visible",
}
MP3: dict[str, Any] = {
    "id": "F0MP300001",
    "name": "Standup Notes.MP3",
    "title": "Standup Notes",
    "mimetype": "audio/mpeg",
    "filetype": "mp3",
    "pretty_type": "MP3",
    "size": 1_203_334,
    "mode": "hosted",
    "is_external": False,
    "url_private": f"{FILES}/files-pri/{TEAM_ID}-F0MP300001/standup_notes.mp3",
    "url_private_download": f"{FILES}/files-pri/{TEAM_ID}-F0MP300001/download/standup_notes.mp3",
    "file_access": "visible",
}
PDF: dict[str, Any] = {
    "id": "F0PLAN0001",
    "name": "plan.pdf",
    "mimetype": "application/pdf",
    "filetype": "pdf",
    "size": 80_112,
    "mode": "hosted",
}


def file_share(files: list[dict[str, Any]], text: str = "", **event: Any) -> dict[str, Any]:
    """A `message.im` event of a user sharing files with the bot, as the Events API delivers it."""
    body = fixture("dm_event")
    body["event"] |= {
        "subtype": "file_share",
        "text": text,
        "files": copy.deepcopy(files),
        "upload": False,
        "display_as_bot": False,
        "ts": "1773306010.000200",
        "event_ts": "1773306010.000200",
        **event,
    }
    body["event_id"] = "Ev0AUDIO0001"
    return body


@pytest.fixture
def adapter(fake_slack: FakeSlack) -> SlackAdapter:
    fake_slack.add_user(ADA.id, ADA.name, tz=ADA.tz, locale=ADA.locale)
    return SlackAdapter(web_client(BOT_TOKEN, fake_slack.api_url), ManualClock(), _no_summary)


async def _no_summary(account: str) -> Any:
    raise AssertionError("not asked in these tests")


async def parsed(adapter: SlackAdapter, body: dict[str, Any]) -> InboundMessage:
    job = job_for(body, BOT_USER_ID)
    assert job is not None, "a file_share DM is a stored job"
    message = await adapter.parse(InboxRow(1, Platform.SLACK.value, job.kind.value, json.dumps(job.payload), 1.0))
    assert message is not None
    return message


# --- parsing ------------------------------------------------------------------------------------------------


async def test_a_slack_audio_clip_is_a_voice_message_to_transcribe(adapter):
    message = await parsed(adapter, file_share([CLIP]))
    assert message.audio == Audio(
        kind="voice", ref=CLIP_ID, duration=42.18, size=48213, mime="audio/mp4", filename="audio_message.m4a"
    )
    assert message.text == ""
    assert message.unsupported == "audio"  # as before: what the core says when transcription is off


async def test_a_clip_labelled_video_mp4_is_still_audio(adapter):
    clip = CLIP | {"name": "audio_message.mp4", "mimetype": "video/mp4", "filetype": "mp4", "duration_ms": 3040}
    message = await parsed(adapter, file_share([clip]))
    assert message.audio is not None
    assert (message.audio.kind, message.audio.mime, message.audio.filename) == (
        "voice",
        "video/mp4",
        "audio_message.mp4",
    )
    assert message.audio.duration == 3.04


async def test_an_uploaded_mp3_is_an_audio_file(adapter):
    message = await parsed(adapter, file_share([MP3]))
    assert message.audio == Audio(
        kind="audio", ref="F0MP300001", size=1_203_334, mime="audio/mpeg", filename="Standup Notes.mp3"
    )


@pytest.mark.parametrize(
    ("fields", "filename"),
    [
        ({"name": "memo.aac", "filetype": "aac", "mimetype": "audio/aac"}, "audio.m4a"),
        ({"name": "memo", "filetype": "wav", "mimetype": "audio/x-wav"}, "audio.wav"),
        ({"name": "voice.opus", "filetype": "", "mimetype": "audio/ogg"}, "audio.ogg"),
        ({"name": "take.FLAC", "filetype": "flac", "mimetype": "audio/flac"}, "take.flac"),
    ],
)
async def test_a_name_the_transcription_service_cannot_read_is_replaced(adapter, fields, filename):
    message = await parsed(adapter, file_share([MP3 | fields]))
    assert message.audio is not None and message.audio.filename == filename


async def test_a_pdf_is_no_audio(adapter):
    message = await parsed(adapter, file_share([PDF]))
    assert message.audio is None
    assert message.unsupported == "document"


async def test_the_first_audio_file_is_taken_and_unsupported_stays_as_before(adapter):
    message = await parsed(adapter, file_share([PDF, MP3, CLIP]))
    assert message.audio is not None and message.audio.ref == "F0MP300001"
    assert message.unsupported == "document"  # read from the first file, as before


async def test_text_with_audio_keeps_the_text_and_marks_the_audio(adapter):
    message = await parsed(adapter, file_share([CLIP], text="for *Tuesday's* meeting"))
    assert message.text == "for **Tuesday's** meeting"
    assert message.audio is not None and message.audio.ref == CLIP_ID
    assert message.unsupported is None


async def test_a_file_announced_by_id_alone_is_not_audio(adapter):
    hidden = {"id": CLIP_ID, "file_access": "check_file_info", "created": 1773306010, "timestamp": 1773306010}
    message = await parsed(adapter, file_share([hidden]))
    assert message.audio is None
    assert message.unsupported == "document"


async def test_an_audio_file_on_a_channel_message_saved_by_shortcut_is_not_transcribed(adapter):
    body = fixture("shortcut_save_to_omi")
    body["user"] |= {"id": ADA.id, "name": "ada"}
    body["channel"]["id"] = GENERAL
    message = {"type": "message", "user": ADA.id, "ts": "1773306010.000200", "text": "", "files": [CLIP]}
    body |= {"message": message, "message_ts": message["ts"], "trigger_id": "1.2.3"}
    job = job_for(body, BOT_USER_ID)
    assert job is not None
    saved = await adapter.parse(InboxRow(1, Platform.SLACK.value, job.kind.value, json.dumps(job.payload), 1.0))
    assert saved is not None and saved.audio is None
    assert saved.reply_to is not None and saved.reply_to.audio is None


# --- fetching -----------------------------------------------------------------------------------------------

CLIP_BYTES = b"\x00\x00\x00\x1cftypM4A " + bytes(range(256)) * 40


def source(fake: FakeSlack, token: str = BOT_TOKEN) -> SlackAudio:
    return SlackAudio(web_client(token, fake.api_url), token)


def clip(size: int | None = None) -> Audio:
    return Audio(kind="voice", ref=CLIP_ID, duration=42.18, size=size, mime="audio/mp4", filename="audio_message.m4a")


def _safe(exc: BaseException, fake: FakeSlack) -> None:
    """No token, no file URL in what a user or a log may see; nothing chained that carries the request."""
    assert BOT_TOKEN not in str(exc) and fake.base_url not in str(exc) and "files-pri" not in str(exc)
    assert exc.__cause__ is None and (exc.__context__ is None or exc.__suppress_context__)


async def test_the_bytes_are_fetched_with_the_bot_token(fake_slack):
    fake_slack.add_file(CLIP_ID, CLIP_BYTES, content_type="audio/mp4", mimetype="audio/mp4")
    assert await source(fake_slack).fetch_audio(clip(size=len(CLIP_BYTES))) == CLIP_BYTES
    [info] = fake_slack.calls_to("files.info")
    assert (info.args["file"], info.token) == (CLIP_ID, BOT_TOKEN)
    [download] = fake_slack.calls_to("download")
    assert (download.args["file"], download.token) == (CLIP_ID, BOT_TOKEN)


async def test_url_private_serves_when_there_is_no_download_url(fake_slack):
    fake_slack.add_file(CLIP_ID, CLIP_BYTES)
    info = fake_slack.files[CLIP_ID][0]
    del info["url_private_download"]
    assert await source(fake_slack).fetch_audio(clip()) == CLIP_BYTES


async def test_a_file_announced_over_20_mb_is_not_downloaded(fake_slack):
    fake_slack.add_file(CLIP_ID, CLIP_BYTES, size=MAX_DOWNLOAD_BYTES + 1)
    with pytest.raises(FileTooBig) as raised:
        await source(fake_slack).fetch_audio(clip())
    assert raised.value.size == MAX_DOWNLOAD_BYTES + 1
    assert fake_slack.calls_to("download") == []


async def test_a_size_over_20_mb_in_the_message_needs_no_call_at_all(fake_slack):
    with pytest.raises(FileTooBig):
        await source(fake_slack).fetch_audio(clip(size=MAX_DOWNLOAD_BYTES + 1))
    assert fake_slack.calls == []


async def test_a_download_bigger_than_announced_stops_at_20_mb(fake_slack):
    fake_slack.add_file(CLIP_ID, bytes(MAX_DOWNLOAD_BYTES + 1), size=1000)
    with pytest.raises(FileTooBig):
        await source(fake_slack).fetch_audio(clip())


async def test_a_deleted_file_is_refused_for_good(fake_slack):
    with pytest.raises(FileRefused) as raised:
        await source(fake_slack).fetch_audio(clip())  # the fake answers file_not_found
    assert str(raised.value) == "the file was deleted"
    _safe(raised.value, fake_slack)


async def test_a_missing_files_read_scope_is_refused_naming_the_scope(fake_slack):
    fake_slack.add_file(CLIP_ID, CLIP_BYTES)
    fake_slack.fail("files.info", "missing_scope", needed="files:read", provided="commands,chat:write")
    with pytest.raises(FileRefused) as raised:
        await source(fake_slack).fetch_audio(clip())
    assert "files:read" in str(raised.value) and "reinstall" in str(raised.value)
    assert fake_slack.calls_to("download") == []


async def test_slack_s_sign_in_page_instead_of_the_file_is_refused(fake_slack):
    fake_slack.add_file(CLIP_ID, b"<!DOCTYPE html><html><title>Slack</title></html>", content_type="text/html")
    with pytest.raises(FileRefused) as raised:
        await source(fake_slack).fetch_audio(clip())
    _safe(raised.value, fake_slack)


async def test_a_rate_limited_files_info_is_tried_again_later(fake_slack):
    fake_slack.add_file(CLIP_ID, CLIP_BYTES)
    fake_slack.rate_limit("files.info", retry_after=30)
    plain = AsyncWebClient(token=BOT_TOKEN, base_url=fake_slack.api_url, retry_handlers=[])  # no wait in a test
    with pytest.raises(FileUnavailable):
        await SlackAudio(plain, BOT_TOKEN).fetch_audio(clip())


async def test_slack_down_is_tried_again_later(fake_slack):
    gone = FakeSlack()
    await gone.start()
    url = gone.api_url
    await gone.stop()
    plain = AsyncWebClient(token=BOT_TOKEN, base_url=url, retry_handlers=[])  # no reconnect wait in a test
    with pytest.raises(FileUnavailable) as raised:
        await SlackAudio(plain, BOT_TOKEN).fetch_audio(clip())
    _safe(raised.value, gone)


async def test_a_file_server_down_is_tried_again_later(fake_slack):
    gone = FakeSlack()
    await gone.start()
    await gone.stop()
    fake_slack.add_file(CLIP_ID, CLIP_BYTES, url_private_download=f"{gone.base_url}/files-pri/{TEAM_ID}-{CLIP_ID}/x")
    with pytest.raises(FileUnavailable) as raised:
        await source(fake_slack).fetch_audio(clip())
    _safe(raised.value, gone)


async def test_the_platform_hands_the_core_its_audio_source(env, slack):
    assert isinstance(env.bridge.audio_sources[Platform.SLACK], SlackAudio)
