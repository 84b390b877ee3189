"""Load generation for the benchmarks: wrk (Debian's `wrk`) with a Lua script that makes every request unique,
or, where wrk is missing, an aiohttp client (slower: it may become the bottleneck, and says so)."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass

import aiohttp

LUA = r"""
local counter = 0
local template = os.getenv("BENCH_BODY")
local header_names = {}
for name in string.gmatch(os.getenv("BENCH_HEADERS") or "", "[^|]+") do table.insert(header_names, name) end
local headers = {}
for _, pair in ipairs(header_names) do
  local k, v = string.match(pair, "([^=]+)=(.*)")
  headers[k] = v
end
local base = tonumber(os.getenv("BENCH_BASE") or "0")
request = function()
  counter = counter + 1
  local n = base + counter
  local body = string.gsub(template, "{n}", tostring(n))
  body = string.gsub(body, "{u}", tostring(1000 + n % 200))
  return wrk.format("POST", nil, headers, body)
end
done = function(summary, latency, requests)
  local bad = summary.errors.status + summary.errors.connect + summary.errors.read + summary.errors.write
    + summary.errors.timeout
  io.write(string.format("RESULT %d %d %d %d %d\n", summary.requests, summary.duration,
    latency:percentile(50), latency:percentile(99), bad))
end
"""


LUA_REPLAY = r"""
local requests = {}
init = function(args)
  for line in io.lines(os.getenv("BENCH_REQUESTS")) do
    local ts, signature, body = string.match(line, "([^\t]*)\t([^\t]*)\t(.*)")
    table.insert(requests, wrk.format("POST", nil, {
      ["Content-Type"] = "application/x-www-form-urlencoded",
      ["X-Slack-Request-Timestamp"] = ts,
      ["X-Slack-Signature"] = signature,
    }, body))
  end
end
local i = 0
request = function()
  i = i % #requests + 1
  return requests[i]
end
""" + LUA[LUA.index("done = function") :]


@dataclass(frozen=True)
class LoadResult:
    requests: int
    seconds: float
    p50_ms: float
    p99_ms: float
    errors: int
    tool: str

    @property
    def rate(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


def have_wrk() -> bool:
    return shutil.which("wrk") is not None


def run_load(
    url: str,
    body_template: str,
    headers: dict[str, str],
    *,
    connections: int = 32,
    seconds: float = 10.0,
    base: int = 0,
) -> LoadResult:
    """POST `body_template` (with `{n}` a unique number and `{u}` one of 200 user ids) at `connections`
    concurrency for `seconds`."""
    if have_wrk():
        return _wrk(url, body_template, headers, connections, seconds, base)
    return asyncio.run(_aiohttp(url, body_template, headers, connections, seconds, base))


def run_replay(url: str, requests_file: str, *, connections: int = 32, seconds: float = 10.0) -> LoadResult:
    """POST pre-signed Slack requests (lines `timestamp<TAB>signature<TAB>form body`) in turn: wrk only."""
    return _run_wrk(url, LUA_REPLAY, {"BENCH_REQUESTS": requests_file}, connections, seconds)


def _wrk(url: str, body: str, headers: dict[str, str], connections: int, seconds: float, base: int) -> LoadResult:
    env = {
        "BENCH_BODY": body,
        "BENCH_HEADERS": "|".join(f"{k}={v}" for k, v in headers.items()),
        "BENCH_BASE": str(base),
    }
    return _run_wrk(url, LUA, env, connections, seconds)


def _run_wrk(url: str, lua: str, extra_env: dict[str, str], connections: int, seconds: float) -> LoadResult:
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(lua)
    env = {**os.environ, **extra_env}
    done = subprocess.run(  # noqa: S603
        ["wrk", "-t1", f"-c{connections}", f"-d{int(seconds)}s", "--timeout", "10s", "-s", script.name, url],  # noqa: S607
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    os.unlink(script.name)
    match = re.search(r"RESULT (\d+) (\d+) (\d+) (\d+) (\d+)", done.stdout)
    if match is None:
        raise RuntimeError(f"wrk printed no result: {done.stdout} {done.stderr}")
    requests, duration_us, p50_us, p99_us, errors = (int(g) for g in match.groups())
    return LoadResult(requests, duration_us / 1e6, p50_us / 1000, p99_us / 1000, errors, "wrk")


async def _aiohttp(
    url: str, body: str, headers: dict[str, str], connections: int, seconds: float, base: int
) -> LoadResult:
    latencies: list[float] = []
    errors = 0
    counter = base
    deadline = time.perf_counter() + seconds

    async def worker(session: aiohttp.ClientSession) -> None:
        nonlocal counter, errors
        while time.perf_counter() < deadline:
            counter += 1
            data = body.replace("{n}", str(counter)).replace("{u}", str(1000 + counter % 200))
            started = time.perf_counter()
            async with session.post(url, data=data, headers=headers) as response:
                await response.read()
                if response.status >= 300:
                    errors += 1
            latencies.append(time.perf_counter() - started)

    connector = aiohttp.TCPConnector(limit=connections)
    async with aiohttp.ClientSession(connector=connector) as session:
        started = time.perf_counter()
        await asyncio.gather(*(worker(session) for _ in range(connections)))
        elapsed = time.perf_counter() - started
    latencies.sort()
    pick = lambda q: latencies[min(len(latencies) - 1, int(q * len(latencies)))] * 1000 if latencies else 0.0  # noqa: E731
    return LoadResult(len(latencies), elapsed, pick(0.5), pick(0.99), errors, "aiohttp client (wrk not found)")
