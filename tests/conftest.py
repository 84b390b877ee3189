"""Test-wide guards: no test may open a connection anywhere but loopback."""

from __future__ import annotations

import ipaddress
import os
import socket

import pytest
from hypothesis import settings as hypothesis_settings

from tests.databases import ENGINES, Schema, require_postgres

os.environ.setdefault("PTB_TIMEDELTA", "1")
# The made-up links of the tests are never fetched: previews are on only where a test injects its own fake web.
os.environ["LINK_PREVIEWS"] = "off"

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
    """The test matrix. A module with `BOTH_FLAVORS = True` runs each of its tests that uses `env` once per Omi
    flavor; with `BOTH_ENGINES = True`, once on SQLite and once on PostgreSQL (which runs the default flavor:
    SQLite × both flavors, PostgreSQL × fastapi)."""
    module = metafunc.module
    flavors = FLAVORS if getattr(module, "BOTH_FLAVORS", False) and "flavor" in metafunc.fixturenames else None
    engines = ENGINES if getattr(module, "BOTH_ENGINES", False) and "engine" in metafunc.fixturenames else None
    if engines and metafunc.definition.get_closest_marker("postgresql_only"):
        engines = ("postgresql",)  # what only PostgreSQL can show (e.g. two transactions open at once)
    if flavors and engines:
        combos = [("sqlite", flavor) for flavor in flavors] + [("postgresql", "fastapi")]
        metafunc.parametrize(("engine", "flavor"), combos, indirect=True, ids=[f"{e}-{f}" for e, f in combos])
    elif flavors:
        metafunc.parametrize("flavor", flavors, indirect=True)
    elif engines:
        metafunc.parametrize("engine", engines, indirect=True)


@pytest.fixture
def flavor(request: pytest.FixtureRequest) -> str:
    """The sandbox flavor of `env`: "fastapi" unless the module asks for both."""
    return getattr(request, "param", "fastapi")


@pytest.fixture
def engine(request: pytest.FixtureRequest) -> str:
    """The bridge's database engine: "sqlite" unless the module asks for both."""
    name = getattr(request, "param", "sqlite")
    if name == "postgresql":
        require_postgres()
    return name


@pytest.fixture
def database(tmp_path, engine):
    """Where the test's bridge keeps its data: a DATABASE_URL (a fresh PostgreSQL schema) or an SQLite path."""
    if engine == "sqlite":
        yield str(tmp_path / "bridge.db")
        return
    schema = Schema().create()
    try:
        yield schema.url
    finally:
        schema.drop()


@pytest.fixture
def spare_database(tmp_path, engine):
    """A second, empty database on the same engine (e.g. one an older version left behind)."""
    if engine == "sqlite":
        yield str(tmp_path / "spare.db")
        return
    schema = Schema().create()
    try:
        yield schema.url
    finally:
        schema.drop()


@pytest.fixture
async def env(database, flavor):
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
    store = await Store.open(database, clock)
    adapter = ChatAdapter()
    bridge = await start_bridge(store, omi, clock, adapter, window=2.0)
    environment = Env(sandbox, omi, store, bridge, clock, adapter, uid, app_id, database, 2.0)
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
