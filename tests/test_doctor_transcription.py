"""`omi-bridge doctor`'s transcription check (SPEC §2, §11): `GET {TRANSCRIBE_URL}/models` against the fake
OpenAI-compatible server on 127.0.0.1 — each answer's line, the Authorization header, and the key never shown."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from bot.checks import Finding, check_transcription
from bot.settings import Settings
from tests.fake_stt import FakeSTT, Reply, openai_error
from tests.processes import free_port
from tests.test_cli import FINDING, arun, clean_env

KEY = "sk-doctor-transcription-secret-4f9a"


@pytest.fixture
async def stt() -> AsyncIterator[FakeSTT]:
    async with FakeSTT() as fake:
        yield fake


def settings_for(url: str | None, *, key: str | None = KEY, model: str = "whisper-1") -> Settings:
    values: dict[str, object] = {"TRANSCRIBE_URL": url, "TRANSCRIBE_API_KEY": key, "TRANSCRIBE_MODEL": model}
    return Settings(_env_file=None, **values)  # type: ignore[arg-type]


async def check(settings: Settings, **kwargs: object) -> Finding:
    finding = await check_transcription(settings, **kwargs)  # type: ignore[arg-type]
    line = finding.line()
    assert FINDING.match(line), line
    assert line.startswith(f"{finding.level} transcription: "), line
    assert KEY not in line and "Bearer" not in line, line
    if finding.level != "OK":
        assert " → " in line, line
    return finding


def where(stt: FakeSTT) -> str:
    return stt.base_url.removesuffix("/v1")  # scheme://host:port, never the path


async def test_unset_is_off() -> None:
    finding = await check(settings_for(None))
    assert finding.line() == (
        "OK transcription: off — voice messages are answered that transcription is not set up "
        "→ set TRANSCRIBE_URL to save them"
    )


async def test_the_model_is_listed(stt: FakeSTT) -> None:
    stt.model_list = ["whisper-1", "gpt-4o-transcribe"]
    finding = await check(settings_for(stt.base_url))
    assert finding.line() == f"OK transcription: {where(stt)} serves whisper-1"
    assert "leaves this machine" not in finding.line()  # loopback: the audio stays here
    assert stt.model_requests == [f"Bearer {KEY}"]


async def test_a_bare_list_and_no_key(stt: FakeSTT) -> None:
    stt.models_shape = "bare"
    stt.model_list = ["Systran/faster-whisper-small"]
    finding = await check(settings_for(stt.base_url, key=None, model="Systran/faster-whisper-small"))
    assert finding.level == "OK", finding
    assert finding.finding.endswith("serves Systran/faster-whisper-small")
    assert stt.model_requests == [None]  # no key set → no Authorization header at all


async def test_a_hosted_service_says_the_audio_leaves_the_machine() -> None:
    seen: list[httpx.Request] = []

    def groq(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"object": "list", "data": [{"id": "whisper-large-v3-turbo"}]})

    settings = settings_for("https://api.groq.com/openai/v1", model="whisper-large-v3-turbo")
    finding = await check(settings, transport=httpx.MockTransport(groq))
    assert finding.line() == (
        "OK transcription: https://api.groq.com serves whisper-large-v3-turbo; "
        "audio leaves this machine for api.groq.com"
    )
    assert [str(r.url) for r in seen] == ["https://api.groq.com/openai/v1/models"]
    assert seen[0].headers["Authorization"] == f"Bearer {KEY}"


async def test_the_model_is_missing(stt: FakeSTT) -> None:
    stt.model_list = [f"model-{n}" for n in range(1, 8)]
    finding = await check(settings_for(stt.base_url))
    assert finding.level == "WARN", finding
    assert "does not list whisper-1" in finding.finding
    assert "model-1, model-2, model-3, model-4, model-5 (and 2 more)" in finding.finding
    assert "model-6" not in finding.finding
    assert "TRANSCRIBE_MODEL" in finding.fix


async def test_the_servers_names_stay_on_one_line(stt: FakeSTT) -> None:
    stt.model_list = ["tiny\nFAIL omi: forged", "x" * 500]
    finding = await check(settings_for(stt.base_url))
    assert "\n" not in finding.line() and "tiny FAIL omi: forged" in finding.finding
    assert len(finding.line()) < 400


async def test_rate_limited(stt: FakeSTT) -> None:
    stt.models_reply = Reply(429, openai_error("rate_limit_exceeded"), {"Retry-After": "20"})
    finding = await check(settings_for(stt.base_url))
    assert finding.level == "WARN", finding
    assert "rate limiting (429)" in finding.finding


async def test_an_empty_list(stt: FakeSTT) -> None:
    stt.model_list = []
    finding = await check(settings_for(stt.base_url))
    assert finding.level == "WARN", finding
    assert "lists no models" in finding.finding


async def test_no_models_endpoint_like_whisper_cpp(stt: FakeSTT) -> None:
    stt.models_reply = Reply(404, "Not Found")
    finding = await check(settings_for(stt.base_url))
    assert finding.line() == (
        f"WARN transcription: {where(stt)}: the server does not list models (whisper.cpp's server has no /models) "
        "→ send a voice message to check"
    )


@pytest.mark.parametrize("status", [401, 403])
async def test_the_key_is_refused(stt: FakeSTT, status: int) -> None:
    stt.models_reply = Reply(status, openai_error("invalid_api_key", f"Incorrect API key provided: {KEY}."))
    finding = await check(settings_for(stt.base_url))
    assert finding.level == "FAIL", finding
    assert "the key was refused" in finding.finding
    assert finding.fix == "check TRANSCRIBE_API_KEY"
    assert stt.model_requests == [f"Bearer {KEY}"]


async def test_a_key_is_wanted_but_unset(stt: FakeSTT) -> None:
    stt.models_reply = Reply(401, openai_error(None, "Missing bearer authentication"))
    finding = await check(settings_for(stt.base_url, key=None))
    assert finding.level == "FAIL", finding
    assert "set TRANSCRIBE_API_KEY" in finding.fix


async def test_out_of_quota(stt: FakeSTT) -> None:
    stt.models_reply = Reply(429, openai_error("insufficient_quota"))
    finding = await check(settings_for(stt.base_url))
    assert finding.level == "FAIL", finding
    assert "out of quota" in finding.finding


@pytest.mark.parametrize("status", [500, 502, 503])
async def test_a_server_error(stt: FakeSTT, status: int) -> None:
    stt.models_reply = Reply(status, openai_error("server_error"))
    finding = await check(settings_for(stt.base_url))
    assert finding.level == "FAIL", finding
    assert f"had an error ({status})" in finding.finding
    assert "TRANSCRIBE_URL" in finding.fix


async def test_unreachable() -> None:
    url = f"http://127.0.0.1:{free_port()}/v1"  # nothing listens there
    finding = await check(settings_for(url))
    assert finding.level == "FAIL", finding
    assert "could not be reached" in finding.finding
    assert "that the server runs" in finding.fix


async def test_timeout(stt: FakeSTT) -> None:
    stt.models_reply = Reply(hang=True)
    finding = await check(settings_for(stt.base_url), timeout=0.3)
    assert finding.level == "FAIL", finding
    assert "did not answer in time" in finding.finding


async def test_not_a_model_list(stt: FakeSTT) -> None:
    stt.models_reply = Reply(200, "<html>a web page</html>")
    finding = await check(settings_for(stt.base_url))
    assert finding.level == "WARN", finding
    assert "no model list" in finding.finding
    assert "/v1" in finding.fix


async def test_doctor_prints_the_line_and_exits_by_it(tmp_path: Path) -> None:
    async with FakeSTT() as good, FakeSTT() as refusing:
        refusing.models_reply = Reply(401, openai_error("invalid_api_key"))
        env = {"DATABASE_URL": f"sqlite:///{tmp_path / 'b.db'}", "TRANSCRIBE_API_KEY": KEY}
        ok, failed = await asyncio.gather(
            arun("doctor", cwd=tmp_path, env=clean_env(**env, TRANSCRIBE_URL=good.base_url)),
            arun("doctor", cwd=tmp_path, env=clean_env(**env, TRANSCRIBE_URL=refusing.base_url)),
        )
    for result in (ok, failed):
        assert all(FINDING.match(line) for line in result.out_lines), result.out
        assert KEY not in result.out + result.err
        assert "Traceback" not in result.err
    assert ok.code == 0, ok
    assert f"OK transcription: {where(good)} serves whisper-1" in ok.out_lines, ok.out
    assert good.model_requests == [f"Bearer {KEY}"]
    assert failed.code == 1, failed
    assert any(line.startswith("FAIL transcription: ") for line in failed.out_lines), failed.out
