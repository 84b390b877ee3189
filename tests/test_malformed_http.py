"""Requests that are not valid HTTP get aiohttp's 400 and one WARN line naming the kind of error, never a traceback
(anyone could flood the log otherwise) nor the request's own text; errors in our handlers are still logged in full."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

import httpx
import pytest

from bot.metrics import Metrics
from bot.sandbox import ALL_CAPABILITIES, Sandbox
from bot.web.server import WebServer
from tests.processes import BackgroundProcess, serve_env

MARKER = "SECRETPATHMARKER"  # stands for what a request line may hold (the Omi webhook's secret path segment)

MALFORMED = {
    "an over-long request line": f"GET /omi/webhook/{MARKER}?uid={'u' * 20_000} HTTP/1.1\r\nHost: x\r\n\r\n",
    "an over-long header": f"GET /healthz HTTP/1.1\r\nHost: x\r\nX-{MARKER}: {'h' * 20_000}\r\n\r\n",
    "too many headers": "GET /healthz HTTP/1.1\r\nHost: x\r\n" + "".join(f"X-{i}: v\r\n" for i in range(200)) + "\r\n",
    "a header name with a control character": f"GET /healthz HTTP/1.1\r\nHost: x\r\nBad\x01{MARKER}: v\r\n\r\n",
    "a bad HTTP version": f"GET /{MARKER} HTTP/9.Z\r\nHost: x\r\n\r\n",
    "a bad chunk size": "POST /telegram/webhook HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
}


async def exchange(url: str, request: bytes) -> bytes:
    """Send raw bytes, read until the server closes the connection (it always does after a 400)."""
    host, port = url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        writer.write(request)
        await writer.drain()
        chunks = []
        async with asyncio.timeout(5.0):
            while chunk := await reader.read(65536):
                chunks.append(chunk)
        return b"".join(chunks)
    finally:
        writer.close()


def statuses(answer: bytes) -> list[str]:
    return [line.split(" ")[1] for line in answer.decode("latin-1").split("\r\n") if line.startswith("HTTP/1.")]


@pytest.fixture
async def server(env) -> AsyncIterator[tuple[WebServer, str]]:
    web = WebServer(env.bridge, Metrics())

    async def broken(request):
        raise RuntimeError("a bug in a handler")

    web.app.router.add_get("/broken", broken)
    url = await web.start("127.0.0.1", 0)
    yield web, url
    await web.stop()


@pytest.mark.parametrize("case", list(MALFORMED))
async def test_malformed_http_is_answered_400_and_logged_as_one_warn_line(server, caplog, case):
    _, url = server
    caplog.set_level(logging.DEBUG, logger="aiohttp.server")

    answer = await exchange(url, MALFORMED[case].encode("latin-1"))

    assert statuses(answer)[-1] == "400"
    [line] = [record for record in caplog.records if record.name == "aiohttp.server"]
    assert line.levelno == logging.WARNING
    assert line.exc_info is None and line.exc_text is None
    assert line.getMessage().startswith("malformed HTTP request from 127.0.0.1 refused (")
    assert MARKER not in caplog.text and "Traceback" not in caplog.text


async def test_non_http_bytes_as_the_first_request_stay_a_debug_line_as_aiohttp_has_it(server, caplog):
    """TLS to a plain HTTP port and port scanners: aiohttp keeps these out of the log below DEBUG on purpose."""
    _, url = server
    caplog.set_level(logging.DEBUG, logger="aiohttp.server")

    answer = await exchange(url, b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03 not http at all\r\n\r\n")

    assert statuses(answer) == ["400"]
    [line] = [record for record in caplog.records if record.name == "aiohttp.server"]
    assert line.levelno == logging.DEBUG and line.exc_info is None
    assert "Traceback" not in caplog.text


async def test_an_error_in_a_handler_is_still_logged_with_its_traceback(server, caplog):
    _, url = server
    async with httpx.AsyncClient(base_url=url) as client:
        assert (await client.get("/broken")).status_code == 500
        assert (await client.get("/healthz")).status_code == 200  # the server goes on
    [line] = [record for record in caplog.records if record.name == "aiohttp.server"]
    assert line.levelno == logging.ERROR
    assert line.exc_info is not None and isinstance(line.exc_info[1], RuntimeError)


async def test_serve_logs_an_over_long_request_line_as_one_line(tmp_path):
    sandbox = Sandbox()
    omi_url = await sandbox.start("127.0.0.1", 0)
    app = sandbox.create_app(capabilities=ALL_CAPABILITIES)
    env = serve_env(tmp_path, omi_url, app)
    serve = BackgroundProcess("serve", cwd=tmp_path, env=env)
    try:
        url = (await asyncio.to_thread(serve.wait_for, r"serving on (http://\S+)")).group(1)
        answer = await exchange(url, MALFORMED["an over-long request line"].encode())
        assert statuses(answer) == ["400"]
        async with httpx.AsyncClient(base_url=url) as client:
            assert (await client.get("/healthz")).status_code == 200
        line = await asyncio.to_thread(serve.wait_for, r"malformed HTTP request")
        assert await asyncio.to_thread(serve.stop) == 0
    finally:
        serve.kill()
        await sandbox.stop()
        sandbox.close()
    assert line.string.endswith(" WARNING aiohttp.server: malformed HTTP request from 127.0.0.1 refused (LineTooLong)")
    output = serve.rest()
    assert len([text for text in output if "aiohttp.server" in text]) == 1
    joined = "\n".join(output)
    assert "Traceback" not in joined and MARKER not in joined and "uuuuuuuu" not in joined
