"""The speech-to-text client (bot.transcribe) against a fake OpenAI-compatible server, and its decision rules:
which answers are retried, when, and when a job gives up (SPEC §11)."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import httpx
import pytest

from bot import backoff
from bot.transcribe import (
    GiveUp,
    Retry,
    Transcriber,
    TranscriptionError,
    TranscriptionFailed,
    TranscriptionRetry,
    classify,
    model_ids,
    next_step,
    primary_language,
)
from bot.transcribe.errors import OUT_OF_QUOTA, TIMED_OUT, UNREACHABLE, UNREADABLE, parse_retry_after
from tests.fake_stt import FakeSTT, Reply, openai_error

KEY = "sk-test-very-secret-key"
AUDIO = b"OggS\x00\x02" + bytes(range(256)) * 40


@pytest.fixture
async def stt() -> AsyncIterator[FakeSTT]:
    async with FakeSTT() as fake:
        yield fake


@pytest.fixture
async def client(stt: FakeSTT) -> AsyncIterator[Transcriber]:
    async with Transcriber(stt.base_url, api_key=KEY, model="whisper-1", timeout=2.0) as transcriber:
        yield transcriber


async def run_job(
    transcriber: Transcriber, *, language: str | None = None, seed: int = 7
) -> tuple[str | GiveUp, list[Retry | GiveUp]]:
    """What the durable job will do, on a virtual clock: attempt, ask next_step, 'wait' until its `at`, again."""
    rng = random.Random(seed)
    first = now = 1_000.0
    steps: list[Retry | GiveUp] = []
    attempts = 0
    while True:
        attempts += 1
        try:
            return await transcriber.transcribe(AUDIO, filename="voice.ogg", mime="audio/ogg", language=language), steps
        except TranscriptionError as error:
            step = next_step(attempts, first, now, error, rng=rng)
            steps.append(step)
            if isinstance(step, GiveUp):
                return step, steps
            assert step.at > now or (isinstance(error, TranscriptionRetry) and error.retry_after == 0)
            now = step.at


# --- the language tag ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("tag", "expected"),
    [
        ("pt-br", "pt"),
        ("pt_BR", "pt"),
        ("PT", "pt"),
        (" en-GB ", "en"),
        ("zh-Hant-TW", "zh"),
        ("fil", None),  # ISO 639-1 only: the API would refuse it
        ("und", None),
        ("x-klingon", None),
        ("", None),
        (None, None),
        ("e1", None),
    ],
)
def test_primary_language(tag: str | None, expected: str | None) -> None:
    assert primary_language(tag) == expected


# --- the decision -------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("status", "body", "kind"),
    [
        (408, None, TranscriptionRetry),
        (429, openai_error("rate_limit_exceeded"), TranscriptionRetry),
        (429, None, TranscriptionRetry),
        (500, openai_error("server_error"), TranscriptionRetry),
        (502, None, TranscriptionRetry),
        (503, "<html>overloaded</html>", TranscriptionRetry),
        (429, openai_error("insufficient_quota"), TranscriptionFailed),
        (
            429,
            {"error": {"message": "No credit.", "type": "insufficient_quota", "code": None}},
            TranscriptionFailed,
        ),
        (429, {"error": "insufficient_quota"}, TranscriptionFailed),
        (401, openai_error("invalid_api_key"), TranscriptionFailed),
        (400, openai_error("invalid_api_key"), TranscriptionFailed),
        (500, openai_error("insufficient_quota"), TranscriptionFailed),
        (400, openai_error(None), TranscriptionFailed),
        (403, None, TranscriptionFailed),
        (404, None, TranscriptionFailed),
        (413, None, TranscriptionFailed),
        (415, None, TranscriptionFailed),
        (422, {"detail": [{"msg": "field required"}]}, TranscriptionFailed),
        (302, None, TranscriptionFailed),
    ],
)
def test_classify(status: int, body: object, kind: type) -> None:
    error = classify(status, body)
    assert type(error) is kind
    assert error.status == status
    assert str(status) in error.reason
    error_body = body.get("error") if isinstance(body, dict) else None
    message = error_body.get("message") if isinstance(error_body, dict) else None
    if isinstance(message, str):
        assert message not in error.reason  # a fixed phrase, never the service's words


def test_classify_names_quota_and_key() -> None:
    assert classify(429, openai_error("insufficient_quota")).reason == f"{OUT_OF_QUOTA} (429)"
    assert classify(429, openai_error("insufficient_quota")).code == "insufficient_quota"
    assert "API key" in classify(401, openai_error("invalid_api_key")).reason
    assert classify(400, None).reason == "the transcription service refused the file (400)"


def test_classify_keeps_retry_after_for_retries_only() -> None:
    rate_limited = classify(429, openai_error("rate_limit_exceeded"), 12.5)
    assert isinstance(rate_limited, TranscriptionRetry) and rate_limited.retry_after == 12.5
    unavailable = classify(503, None, 3.0)
    assert isinstance(unavailable, TranscriptionRetry) and unavailable.retry_after == 3.0
    assert isinstance(classify(500, None), TranscriptionRetry) and classify(500, None).retry_after is None
    assert not hasattr(classify(400, None, 5.0), "retry_after")


def test_parse_retry_after() -> None:
    now = datetime(2025, 1, 1, 12, 0, 0, tzinfo=UTC)
    assert parse_retry_after(httpx.Headers({"Retry-After": "7"})) == 7.0
    assert parse_retry_after(httpx.Headers({"retry-after": " 1.5 "})) == 1.5
    assert parse_retry_after(httpx.Headers({"retry-after-ms": "250", "Retry-After": "9"})) == 0.25
    assert parse_retry_after(httpx.Headers({"Retry-After": "-3"})) == 0.0
    assert parse_retry_after(httpx.Headers({"Retry-After": "Wed, 01 Jan 2025 12:00:30 GMT"}), now=now) == 30.0
    assert parse_retry_after(httpx.Headers({"Retry-After": "soon"})) is None
    assert parse_retry_after(httpx.Headers({"Retry-After": "nan"})) is None
    assert parse_retry_after(httpx.Headers({})) is None


# --- the policy ---------------------------------------------------------------------------------------------------
def test_policy_gives_up_at_once_on_failed() -> None:
    step = next_step(1, 0.0, 0.0, TranscriptionFailed(OUT_OF_QUOTA), rng=random.Random(1))
    assert step == GiveUp(OUT_OF_QUOTA)


def test_policy_backs_off_with_the_shared_jittered_delay() -> None:
    for attempts in range(1, 5):
        step = next_step(attempts, 100.0, 110.0, TranscriptionRetry("x"), rng=random.Random(attempts))
        expected = backoff.delay(attempts - 1, base=2.0, cap=60.0, rng=random.Random(attempts))
        assert step == Retry(at=110.0 + expected, reason="x")
        ceiling = 2.0 * 2 ** (attempts - 1)
        assert ceiling / 2 <= step.at - 110.0 <= ceiling
    draws = {next_step(1, 0.0, 0.0, TranscriptionRetry("x"), rng=random.Random(seed)).at for seed in range(20)}
    assert len(draws) > 1  # jitter: jobs that failed together do not retry together


def test_policy_honours_retry_after() -> None:
    step = next_step(2, 100.0, 130.0, TranscriptionRetry("busy", retry_after=42.0), rng=random.Random(1))
    assert step == Retry(at=172.0, reason="busy")


def test_policy_stops_after_five_attempts() -> None:
    error = TranscriptionRetry("the transcription service had an error (500)")
    assert isinstance(next_step(4, 0.0, 30.0, error, rng=random.Random(1)), Retry)
    assert next_step(5, 0.0, 30.0, error, rng=random.Random(1)) == GiveUp(error.reason)


def test_policy_stops_after_ten_minutes() -> None:
    error = TranscriptionRetry("slow", retry_after=60.0)
    assert next_step(2, 0.0, 540.0, error, rng=random.Random(1)) == Retry(at=600.0, reason="slow")
    assert next_step(2, 0.0, 541.0, error, rng=random.Random(1)) == GiveUp("slow")
    assert next_step(1, 0.0, 0.0, TranscriptionRetry("x", retry_after=3600.0), rng=random.Random(1)) == GiveUp("x")


def test_policy_rejects_zero_attempts() -> None:
    with pytest.raises(ValueError):
        next_step(0, 0.0, 0.0, TranscriptionRetry("x"), rng=random.Random(1))


# --- the client against the fake ----------------------------------------------------------------------------------
async def test_success_sends_the_fields_the_language_subtag_and_the_key(stt: FakeSTT, client: Transcriber) -> None:
    stt.queue_text("  olá, tudo bem?\n")
    text = await client.transcribe(AUDIO, filename="voice.ogg", mime="audio/ogg", language="pt_BR")
    assert text == "olá, tudo bem?"
    [request] = stt.requests
    assert request.path == "/v1/audio/transcriptions"
    assert request.fields == {"model": "whisper-1", "response_format": "json", "language": "pt"}
    assert (request.file, request.filename, request.content_type) == (AUDIO, "voice.ogg", "audio/ogg")
    assert request.authorization == f"Bearer {KEY}"


async def test_no_key_no_language(stt: FakeSTT) -> None:
    async with Transcriber(stt.base_url + "/", model="Systran/faster-whisper-small") as transcriber:
        assert await transcriber.transcribe(AUDIO, filename="a.mp3", mime="audio/mpeg", language=None) == (
            "hello from the fake"
        )
        await transcriber.transcribe(AUDIO, filename="a.mp3", mime="audio/mpeg", language="fil")
    assert [r.fields for r in stt.requests] == [
        {"model": "Systran/faster-whisper-small", "response_format": "json"}
    ] * 2
    assert [r.authorization for r in stt.requests] == [None, None]


async def test_a_refused_language_is_sent_again_without_it(stt: FakeSTT, client: Transcriber) -> None:
    stt.queue_error(400, "invalid_language_format", param="language")
    stt.queue_text("bonjour")
    assert await client.transcribe(AUDIO, filename="v.ogg", mime="audio/ogg", language="xx-YY") == "bonjour"
    assert [r.fields.get("language") for r in stt.requests] == ["xx", None]


async def test_500_then_success_through_the_policy(stt: FakeSTT, client: Transcriber) -> None:
    stt.queue_error(500, "server_error")
    stt.queue_text("second time lucky")
    result, steps = await run_job(client)
    assert result == "second time lucky"
    [step] = steps
    assert isinstance(step, Retry) and 1.0 <= step.at - 1_000.0 <= 2.0
    assert len(stt.requests) == 2


async def test_429_with_retry_after_retries_at_that_time(stt: FakeSTT, client: Transcriber) -> None:
    stt.queue_error(429, "rate_limit_exceeded", retry_after="17")
    stt.queue_text("ok")
    with pytest.raises(TranscriptionRetry) as raised:
        await client.transcribe(AUDIO, filename="v.ogg", mime="audio/ogg", language=None)
    assert raised.value.retry_after == 17.0 and raised.value.status == 429
    assert next_step(1, 1_000.0, 1_003.0, raised.value, rng=random.Random(1)) == Retry(
        at=1_020.0, reason="the transcription service is rate limiting (429)"
    )
    result, steps = await run_job(client)
    assert result == "ok" and steps == []


async def test_permanent_400_fails_at_once(stt: FakeSTT, client: Transcriber) -> None:
    stt.queue_error(400, None)
    stt.queue_text("never asked for")
    result, _ = await run_job(client)
    assert result == GiveUp("the transcription service refused the file (400)")
    assert len(stt.requests) == 1


async def test_insufficient_quota_429_fails_at_once(stt: FakeSTT, client: Transcriber) -> None:
    stt.queue_error(429, "insufficient_quota")
    stt.queue_text("never asked for")
    result, _ = await run_job(client)
    assert result == GiveUp(f"{OUT_OF_QUOTA} (429)")
    assert len(stt.requests) == 1


async def test_a_bad_key_fails_at_once_and_is_never_repeated(stt: FakeSTT, client: Transcriber) -> None:
    stt.queue_error(401, "invalid_api_key")
    with pytest.raises(TranscriptionFailed) as raised:
        await client.transcribe(AUDIO, filename="v.ogg", mime="audio/ogg", language=None)
    assert KEY not in raised.value.reason and KEY not in str(raised.value) and KEY not in repr(client)
    assert "sk-" not in raised.value.reason


async def test_a_hanging_server_times_out_and_is_retried(stt: FakeSTT) -> None:
    stt.queue_hang()
    stt.queue_text("awake now")
    async with Transcriber(stt.base_url, timeout=0.3) as transcriber:
        with pytest.raises(TranscriptionRetry) as raised:
            await transcriber.transcribe(AUDIO, filename="v.ogg", mime="audio/ogg", language=None)
        assert raised.value.reason == TIMED_OUT
        assert isinstance(next_step(1, 0.0, 0.3, raised.value, rng=random.Random(1)), Retry)
        assert await transcriber.transcribe(AUDIO, filename="v.ogg", mime="audio/ogg", language=None) == "awake now"


async def test_a_server_that_is_gone_is_retried() -> None:
    fake = FakeSTT()
    url = await fake.start()
    await fake.stop()
    async with Transcriber(url) as transcriber:
        with pytest.raises(TranscriptionRetry) as raised:
            await transcriber.transcribe(AUDIO, filename="v.ogg", mime="audio/ogg", language=None)
    assert raised.value.reason == UNREACHABLE


async def test_five_failures_give_up(stt: FakeSTT, client: Transcriber) -> None:
    for _ in range(6):
        stt.queue_error(503, None)
    result, steps = await run_job(client)
    assert result == GiveUp("the transcription service had an error (503)")
    assert len(stt.requests) == 5 and len(steps) == 5
    assert all(isinstance(step, Retry) for step in steps[:4])


async def test_ten_minutes_give_up(stt: FakeSTT, client: Transcriber) -> None:
    for _ in range(5):
        stt.queue_error(429, "rate_limit_exceeded", retry_after="300")
    result, steps = await run_job(client)
    assert result == GiveUp("the transcription service is rate limiting (429)")
    assert [step.at for step in steps if isinstance(step, Retry)] == [1_300.0, 1_600.0]
    assert len(stt.requests) == 3  # at 0, 5 and 10 minutes; a fourth would start past the 10 minutes


@pytest.mark.parametrize("body", ["hello", '{"transcript": "hi"}', '{"text": 42}'])
async def test_an_unreadable_200_fails(stt: FakeSTT, client: Transcriber, body: str) -> None:
    stt.queue_reply(Reply(200, body))
    with pytest.raises(TranscriptionFailed) as raised:
        await client.transcribe(AUDIO, filename="v.ogg", mime="audio/ogg", language=None)
    assert raised.value.reason == UNREADABLE


# --- models, for doctor -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("shape", ["openai", "bare"])
async def test_models_in_both_shapes(stt: FakeSTT, client: Transcriber, shape: str) -> None:
    stt.models_shape = shape
    stt.model_list = ["whisper-1", "whisper-large-v3"]
    assert await client.models() == ["whisper-1", "whisper-large-v3"]
    assert stt.model_requests == [f"Bearer {KEY}"]


async def test_models_errors_are_classified(stt: FakeSTT, client: Transcriber) -> None:
    stt.models_reply = Reply(401, openai_error("invalid_api_key"))
    with pytest.raises(TranscriptionFailed):
        await client.models()
    stt.models_reply = Reply(200, "not json")
    with pytest.raises(TranscriptionFailed):
        await client.models()


def test_model_ids_shapes() -> None:
    assert model_ids({"data": [{"id": "a"}, {"id": "b"}]}) == ["a", "b"]
    assert model_ids([{"id": "a"}, "b"]) == ["a", "b"]
    assert model_ids({"models": [{"name": "c"}]}) == ["c"]
    with pytest.raises(ValueError):
        model_ids({"object": "list"})


def test_only_http_urls() -> None:
    with pytest.raises(ValueError):
        Transcriber("ftp://example.invalid/v1")
