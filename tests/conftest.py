"""Test-wide guards: no test may open a connection anywhere but loopback."""

from __future__ import annotations

import ipaddress
import os
import socket

import pytest
from hypothesis import settings as hypothesis_settings

os.environ.setdefault("PTB_TIMEDELTA", "1")

# CI runs the property tests on a fixed set of examples (hypothesis's `derandomize`): a run fails only for a
# change, never for the draw. Local runs draw new examples each time, and so keep looking for new odd shapes.
hypothesis_settings.register_profile("ci", derandomize=True, database=None)
if os.environ.get("CI"):
    hypothesis_settings.load_profile("ci")
os.environ["NO_PROXY"] = "127.0.0.1,localhost"

_real_connect = socket.socket.connect
_real_connect_ex = socket.socket.connect_ex
_real_getaddrinfo = socket.getaddrinfo


class NonLoopbackConnection(AssertionError):
    """A test tried to reach the outside world; tests talk only to fakes on 127.0.0.1."""


def _is_loopback(host: object) -> bool:
    if isinstance(host, bytes):
        host = host.decode()
    if not isinstance(host, str):
        return False
    if host in ("localhost", ""):
        return True
    try:
        return ipaddress.ip_address(host.split("%")[0]).is_loopback
    except ValueError:
        return False


def _check_address(sock: socket.socket, address: object) -> None:
    if sock.family in (socket.AF_INET, socket.AF_INET6) and isinstance(address, tuple):
        if not _is_loopback(address[0]):
            raise NonLoopbackConnection(f"test tried to connect to {address[0]!r}")


def _guarded_connect(self: socket.socket, address: object) -> None:
    _check_address(self, address)
    return _real_connect(self, address)


def _guarded_connect_ex(self: socket.socket, address: object) -> int:
    _check_address(self, address)
    return _real_connect_ex(self, address)


def _guarded_getaddrinfo(host: object, *args: object, **kwargs: object):
    if host is not None and not _is_loopback(host):
        raise NonLoopbackConnection(f"test tried to resolve {host!r}")
    return _real_getaddrinfo(host, *args, **kwargs)


@pytest.fixture(autouse=True)
def _loopback_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """Refuse any non-loopback connect or name lookup for the length of each test."""
    monkeypatch.setattr(socket.socket, "connect", _guarded_connect)
    monkeypatch.setattr(socket.socket, "connect_ex", _guarded_connect_ex)
    monkeypatch.setattr(socket, "getaddrinfo", _guarded_getaddrinfo)


# --- the in-process bridge against the sandbox ------------------------------------------------------------


#: Both Omi server generations (behaviour notes §9.6): delivery, linking and chaos tests run against each.
FLAVORS = ("fastapi", "api-core")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """A module with `BOTH_FLAVORS = True` runs each of its tests that uses `env` once per Omi flavor."""
    if "flavor" in metafunc.fixturenames and getattr(metafunc.module, "BOTH_FLAVORS", False):
        metafunc.parametrize("flavor", FLAVORS, indirect=True)


@pytest.fixture
def flavor(request: pytest.FixtureRequest) -> str:
    """The sandbox flavor of `env`: "fastapi" unless the module asks for both."""
    return getattr(request, "param", "fastapi")


@pytest.fixture
async def env(tmp_path, flavor):
    from bot.clock import ManualClock
    from bot.omi.client import OmiClient
    from bot.store import Store
    from tests.harness import ChatAdapter, Env, make_sandbox, start_bridge

    clock = ManualClock()
    sandbox, base_url, app_id, api_key = await make_sandbox(
        flavor=flavor, clock=clock.now, conversations_per_hour=0, memories_per_hour=0
    )
    uid = "uid-ada"
    sandbox.enable(app_id, uid)
    omi = OmiClient(base_url, app_id, api_key, create_timeout=3.0, read_timeout=3.0)
    db_path = str(tmp_path / "bridge.db")
    store = await Store.open(db_path, clock)
    adapter = ChatAdapter()
    bridge = await start_bridge(store, omi, clock, adapter, window=2.0)
    environment = Env(sandbox, omi, store, bridge, clock, adapter, uid, app_id, db_path, 2.0)
    try:
        yield environment
    finally:
        await environment.bridge.stop(grace=1.0)
        await environment.store.close()
        await omi.aclose()
        await sandbox.stop()


@pytest.fixture
async def web(env):
    """The bridge's web server on 127.0.0.1 (setup page offering Telegram and Slack), and a client for it."""
    import httpx

    from bot.metrics import Metrics
    from bot.web.server import SetupOptions, WebServer

    server = WebServer(env.bridge, Metrics(), SetupOptions(telegram_username="omibridge_bot", slack=True))
    url = await server.start("127.0.0.1", 0)
    async with httpx.AsyncClient(base_url=url) as client:
        yield client
    await server.stop()
