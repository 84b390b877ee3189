"""Voice messages in bursts (SPEC §11), in process against the fake OpenAI-compatible STT server on 127.0.0.1: the
transcript joins the burst as `Author (voice 0:42): …`, a voice-only burst is `audio_transcript`, the user gets the
`🎤 "…"` echo; the burst waits for its transcripts; 429/5xx back off and retry, other 4xx fail at once; failed for
good → the placeholder and a reply; the job and its transcript live in the database (a restart never transcribes
twice, one instance runs a job); without a transcriber the voice is answered and the rest saved."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest

from bot.bridge import Bridge
from bot.events import Audio, ForwardOrigin
from bot.files import FileRefused, FileTooBig, FileUnavailable
from bot.store.transcripts import JobState
from bot.transcribe import Transcriber
from bot.transcribe.jobs import TranscriptionJobs, echo, job_key
from tests.fake_stt import FakeSTT

BOTH_ENGINES = True

OGG = b"OggS\x00fake-opus-audio"
WAIT = 5.0


class MemoryAudio:
    """The platform's file API, in memory: the bytes of each file id, or a scripted failure per fetch."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.failures: list[Exception] = []
        self.fetched: list[str] = []

    async def fetch_audio(self, audio: Audio) -> bytes:
        self.fetched.append(audio.ref)
        if self.failures:
            raise self.failures.pop(0)
        return self.files.get(audio.ref, OGG)


def voice(ref: str = "file-1", duration: float = 42) -> Audio:
    return Audio("voice", ref, duration=duration, size=len(OGG), mime="audio/ogg", filename="voice.ogg")


@pytest.fixture
async def stt(env):
    """The fake service; at the end the bridge's jobs stop before the clients made for it close."""
    server = FakeSTT(default_text="buy milk and call the plumber")
    await server.start()
    server.clients = []
    try:
        yield server
    finally:
        if env.bridge.transcription is not None:
            await env.bridge.transcription.stop()
        for client in server.clients:
            await client.aclose()
        await server.stop()


async def bridge_with_voice(env, stt: FakeSTT, audio: MemoryAudio | None = None, *, key: str | None = None) -> Bridge:
    await env.bridge.stop()
    transcriber = Transcriber(stt.base_url, api_key=key, timeout=5.0)
    bridge = Bridge(env.store, env.omi, env.clock, batch_window=env.window, transcriber=transcriber)
    bridge.register_adapter(
        env.adapter, env.adapter.parse, session_hint=env.adapter.session_hint, audio=audio or MemoryAudio()
    )
    await bridge.start()
    env.bridge = bridge
    stt.clients.append(transcriber)
    return bridge


async def texts_of(user, count: int) -> list[str]:
    return [(await user.reply(WAIT)).text for _ in range(count)]


def window_passes(env) -> None:
    """The burst's quiet time passes: its timer wakes and, while a transcript is missing, waits for it."""
    env.clock.advance(env.window + 0.001)


async def next_retry(env) -> None:
    """Move the manual clock to the job's next attempt (it sleeps on the clock until then)."""
    env.clock.set(await env.clock.next_sleeper(before=env.clock.now() + 120))


async def test_a_voice_message_is_transcribed_into_the_burst_and_echoed(env, stt):
    await bridge_with_voice(env, stt, key="sk-test")
    user = await env.linked_user(language="pt-br")
    await user.say("", audio=voice())
    await env.close_bursts()
    await env.run_clock(5)
    [text] = env.texts()
    assert text == "Ada Lovelace (voice 0:42): buy milk and call the plumber"
    [record] = env.sandbox.conversations(env.uid)
    assert "audio_transcript" in str(record)
    assert (await user.reply_text()) == '🎤 "buy milk and call the plumber"'
    [request] = stt.requests
    assert request.file == OGG and request.filename == "voice.ogg"
    assert request.fields == {"model": "whisper-1", "response_format": "json", "language": "pt"}
    assert request.authorization == "Bearer sk-test"


async def test_a_forwarded_voice_is_labelled_with_its_author_and_sent_without_a_language(env, stt):
    await bridge_with_voice(env, stt)
    user = await env.linked_user()
    origin = ForwardOrigin("user", "Bob Marley", date=datetime(2026, 3, 1, 8, 0, tzinfo=UTC))
    await user.say("", audio=voice(duration=5), forward_origin=origin)
    await user.say("what do you think?")
    await env.close_bursts()
    await env.run_clock(5)
    [text] = env.texts()
    assert text == "Bob Marley (voice 0:05): buy milk and call the plumber\n\nNote: what do you think?"
    assert "language" not in stt.requests[0].fields
    assert "audio_transcript" not in str(env.sandbox.conversations(env.uid)[0])


async def test_the_burst_waits_for_a_transcript_that_is_retried_after_a_500(env, stt):
    stt.queue_error(500, "server_error")
    stt.queue_text("second time lucky")
    await bridge_with_voice(env, stt)
    user = await env.linked_user()
    await user.say("before the voice")
    await user.say("", audio=voice(duration=61))
    window_passes(env)  # the burst still waits for its transcript
    await stt.wait_for_requests(1)
    assert env.texts() == [] and await env.store.outbox.open_for_account(user.account) == []
    await next_retry(env)
    await stt.wait_for_requests(2)
    await asyncio.wait_for(env.bridge.bursts.close_all(), WAIT)
    await env.run_clock(5)
    assert env.texts() == ["before the voice\n\nAda Lovelace (voice 1:01): second time lucky"]


async def test_a_429_waits_its_retry_after(env, stt):
    stt.queue_error(429, "rate_limit_exceeded", retry_after="30")
    await bridge_with_voice(env, stt)
    user = await env.linked_user()
    await user.say("", audio=voice())
    started = env.clock.now()
    window_passes(env)
    await stt.wait_for_requests(1)
    deadline = await env.clock.next_sleeper(before=env.clock.now() + 120)
    assert deadline - started >= 30
    env.clock.set(deadline)
    await stt.wait_for_requests(2)
    await asyncio.wait_for(env.bridge.bursts.close_all(), WAIT)
    await env.run_clock(5)
    assert env.texts() == ["Ada Lovelace (voice 0:42): buy milk and call the plumber"]


@pytest.mark.parametrize(
    ("status", "code"), [(400, None), (401, "invalid_api_key"), (429, "insufficient_quota")], ids=str
)
async def test_a_permanent_refusal_fails_at_once_with_the_placeholder_and_a_reply(env, stt, status, code):
    stt.queue_error(status, code)
    await bridge_with_voice(env, stt)
    user = await env.linked_user()
    await user.say("keep this text")
    await user.say("", audio=voice())
    await env.close_bursts()
    await env.run_clock(5)
    assert len(stt.requests) == 1  # never retried
    [text] = env.texts()
    head, placeholder = text.split("\n\n")
    assert head == "keep this text"
    assert placeholder.startswith("[voice message 0:42, not transcribed: ") and placeholder.endswith("]")
    said = await user.reply_text()
    assert said.startswith("I couldn't transcribe your voice message (0:42): ") and "sk-" not in said


async def test_five_failed_attempts_give_up(env, stt):
    for _ in range(6):
        stt.queue_error(503, "server_error")
    await bridge_with_voice(env, stt)
    user = await env.linked_user()
    await user.say("", audio=voice(duration=3))
    window_passes(env)
    for attempt in range(1, 5):
        await stt.wait_for_requests(attempt)
        await next_retry(env)
    await stt.wait_for_requests(5)
    await asyncio.wait_for(env.bridge.bursts.close_all(), WAIT)
    await env.run_clock(5)
    assert len(stt.requests) == 5
    [text] = env.texts()
    assert text.startswith("[voice message 0:03, not transcribed: ")
    assert "audio_transcript" in str(env.sandbox.conversations(env.uid)[0])  # still only voice


@pytest.mark.parametrize(
    ("failure", "reason"),
    [(FileTooBig(30_000_000), "the file is over 20 MB"), (FileRefused("the file was deleted"), "the file was deleted")],
    ids=["too-big", "refused"],
)
async def test_a_file_the_platform_will_not_hand_over_fails_without_asking_the_service(env, stt, failure, reason):
    audio = MemoryAudio()
    audio.failures.append(failure)
    await bridge_with_voice(env, stt, audio)
    user = await env.linked_user()
    await user.say("", audio=voice())
    await env.close_bursts()
    await env.run_clock(5)
    assert stt.requests == []
    assert env.texts() == [f"[voice message 0:42, not transcribed: {reason}]"]


async def test_a_download_that_fails_once_is_tried_again(env, stt):
    audio = MemoryAudio()
    audio.failures.append(FileUnavailable("reset"))
    await bridge_with_voice(env, stt, audio)
    user = await env.linked_user()
    await user.say("", audio=voice())
    window_passes(env)
    await next_retry(env)
    await stt.wait_for_requests(1)
    await asyncio.wait_for(env.bridge.bursts.close_all(), WAIT)
    await env.run_clock(5)
    assert audio.fetched == ["file-1", "file-1"]
    assert env.texts() == ["Ada Lovelace (voice 0:42): buy milk and call the plumber"]


async def test_silence_is_kept_as_nothing_heard(env, stt):
    stt.queue_text("   ")
    await bridge_with_voice(env, stt)
    user = await env.linked_user()
    await user.say("", audio=voice(duration=2))
    await env.close_bursts()
    await env.run_clock(5)
    assert env.texts() == ["[voice message 0:02, not transcribed: no speech was heard]"]


async def test_a_restart_finds_the_stored_transcript_instead_of_paying_twice(env, stt):
    await bridge_with_voice(env, stt)
    user = await env.linked_user()
    message = await user.say("", audio=voice())
    await stt.wait_for_requests(1)
    assert (await user.reply_text()) == '🎤 "buy milk and call the plumber"'
    job = await env.store.transcripts.get(job_key(message))
    assert job is not None and job.state is JobState.DONE
    await bridge_with_voice(env, stt)  # stopped before the burst closed: its rows are replayed
    await env.bridge.processor.wait_idle()
    await env.close_bursts()
    await env.run_clock(5)
    assert len(stt.requests) == 1
    assert env.texts() == ["Ada Lovelace (voice 0:42): buy milk and call the plumber"]
    assert user.no_reply_pending() or (await user.reply()).reaction  # no second echo
    assert await env.store.transcripts.get(job_key(message)) is None  # gone with the stored burst


async def test_a_job_another_instance_holds_is_watched_not_run_twice(env, stt):
    stt.queue_text("heard once", delay=0.3)
    user = await env.linked_user()
    message = user.message("", audio=voice())
    transcriber = Transcriber(stt.base_url, timeout=5.0)
    sent: list[str] = []

    async def send(reply) -> None:
        sent.append(reply.text)

    def jobs(owner: str) -> TranscriptionJobs:
        return TranscriptionJobs(
            env.store.transcripts, transcriber, env.clock, {message.platform: MemoryAudio()}, send, owner,
            watch_seconds=0.02,
        )  # fmt: skip

    first, second = jobs("instance-a"), jobs("instance-b")
    try:
        await first.request(message)
        await stt.wait_for_requests(1)
        await second.request(message)
        await asyncio.wait_for(asyncio.gather(first.settle([message]), second.settle([message])), WAIT)
        assert len(stt.requests) == 1
        assert [m.transcript for m in second.heard([message])] == ["heard once"]
        assert sent == ['🎤 "heard once"']  # told once, by the instance that did it
    finally:
        await first.stop()
        await second.stop()
        await transcriber.aclose()


async def test_an_unlinked_user_is_told_to_link_and_nothing_is_transcribed(env, stt):
    await bridge_with_voice(env, stt)
    user = env.user(user_id="4444")
    message = await user.say("", audio=voice())
    assert "link" in (await user.reply_text()).lower()
    assert stt.requests == [] and await env.store.transcripts.get(job_key(message)) is None


async def test_unlink_removes_a_waiting_transcript(env, stt):
    stt.queue_hang()
    await bridge_with_voice(env, stt)
    user = await env.linked_user()
    message = await user.say("", audio=voice())
    await stt.wait_for_requests(1)
    await user.command("unlink", "confirm")
    assert (await user.reply_text()).startswith("Unlinked.")
    assert await env.store.transcripts.get(job_key(message)) is None


async def test_without_a_transcriber_voice_is_answered_and_the_rest_saved(env):
    user = await env.linked_user()
    await user.say("the text part")
    await user.say("", audio=voice())
    assert (await user.reply_text()).startswith("Voice messages can't be saved to Omi yet")
    await user.say("a caption", audio=voice(ref="file-2"))
    assert "transcription" in await user.reply_text()
    await env.close_bursts()
    await env.run_clock(5)
    assert env.texts() == ["the text part\n\na caption"]


def test_the_echo_shows_the_first_200_characters():
    assert echo("short") == '🎤 "short"'
    long = "word " * 100
    shown = echo(long)
    assert shown.endswith('…"') and len(shown) <= 200 + 5


async def test_a_dead_instances_job_is_taken_over_once_its_lease_lapses(env, stt):
    user = await env.linked_user()
    message = user.message("", audio=voice())
    key = job_key(message)
    await env.store.transcripts.want(key, message.account, env.clock.now())
    assert await env.store.transcripts.take(key, "instance-that-died", 0.3) is not None  # then it died
    transcriber = Transcriber(stt.base_url, timeout=5.0)
    sent: list[str] = []

    async def send(reply) -> None:
        sent.append(reply.text)

    jobs = TranscriptionJobs(
        env.store.transcripts, transcriber, env.clock, {message.platform: MemoryAudio()}, send, "instance-b",
        watch_seconds=0.05,
    )  # fmt: skip
    try:
        await jobs.request(message)
        assert stt.requests == []  # not while the other instance's lease holds
        await asyncio.wait_for(jobs.settle([message]), WAIT)
        assert len(stt.requests) == 1 and sent == ['🎤 "buy milk and call the plumber"']
    finally:
        await jobs.stop()
        await transcriber.aclose()


async def test_attempts_cut_short_by_restarts_still_count(env, stt):
    await bridge_with_voice(env, stt)
    user = await env.linked_user()
    message = user.message("", audio=voice())
    key = job_key(message)
    await env.store.transcripts.want(key, message.account, env.clock.now())
    await env.store.db.write(
        lambda conn: conn.execute("UPDATE transcripts SET attempts = 5, first_attempt_at = ?", (env.clock.now(),))
    )  # five attempts, each ended by a crash before it could record its outcome
    await user.push(message)
    env.clock.advance(env.window + 0.001)
    await asyncio.wait_for(env.bridge.bursts.close_all(), WAIT)
    await env.run_clock(5)
    assert stt.requests == []
    assert env.texts() == ["[voice message 0:42, not transcribed: transcription kept failing]"]
