"""Injected faults: an answer status, a delay, a dropped connection, and "504 after the write happened"."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator

import httpx
import pytest

from tests.sandbox import UID, Omi, detail, running_omi


@pytest.fixture
async def omi() -> AsyncIterator[Omi]:
    async with running_omi() as running:
        yield running


async def test_status_fault_answers_without_writing_then_is_used_up(omi: Omi) -> None:
    omi.sandbox.add_fault("create_conversation", status=500)
    failed = await omi.call("create_conversation")
    assert (failed.status_code, detail(failed)) == (500, "Error processing conversation, please try again later")
    assert omi.sandbox.conversations(UID) == []
    assert (await omi.call("create_conversation")).status_code == 200
    assert len(omi.sandbox.conversations(UID)) == 1


async def test_status_fault_runs_before_validation_and_auth(omi: Omi) -> None:
    omi.sandbox.add_fault("create_memories", status=503, detail="Canonical memory write readback unavailable")
    response = await omi.call("create_memories", uid=None, key="", json=None)
    assert (response.status_code, detail(response)) == (503, "Canonical memory write readback unavailable")


async def test_429_fault_sets_retry_after(omi: Omi) -> None:
    omi.sandbox.add_fault("create_conversation", status=429, retry_after=7)
    response = await omi.call("create_conversation")
    assert response.status_code == 429
    assert response.headers["Retry-After"] == "7"
    assert detail(response) == "Rate limit exceeded. Try again in 7s."


async def test_faults_are_consumed_in_order_and_times_none_lasts_until_cleared(omi: Omi) -> None:
    omi.sandbox.add_fault("read_memories", status=502, times=2)
    omi.sandbox.add_fault("read_memories", status=503, times=None)
    codes = [(await omi.call("read_memories")).status_code for _ in range(5)]
    assert codes == [502, 502, 503, 503, 503]
    omi.sandbox.clear_faults()
    assert (await omi.call("read_memories")).status_code == 200


async def test_faults_apply_to_their_route_only(omi: Omi) -> None:
    omi.sandbox.add_fault("read_conversations", status=500, times=None)
    assert (await omi.call("read_memories")).status_code == 200
    assert (await omi.call("search_conversations")).status_code == 200
    assert (await omi.call("read_conversations")).status_code == 500


async def test_delay_then_normal_processing(omi: Omi) -> None:
    omi.sandbox.add_fault("create_conversation", delay=0.05)
    started = time.monotonic()
    response = await omi.call("create_conversation")
    assert time.monotonic() - started >= 0.05
    assert response.status_code == 200
    assert len(omi.sandbox.conversations(UID)) == 1


async def test_drop_closes_the_connection_without_an_answer(omi: Omi, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="aiohttp")
    omi.sandbox.add_fault("create_conversation", drop=True)
    with pytest.raises(httpx.TransportError):
        await omi.call("create_conversation")
    assert omi.sandbox.conversations(UID) == []
    assert (await omi.call("create_conversation")).status_code == 200  # the server carries on
    assert [r for r in caplog.records if r.levelno >= logging.WARNING or r.exc_info] == []
    assert [entry["status"] for entry in omi.sandbox.requests()] == [None, 200]


@pytest.mark.parametrize("route", ["create_conversation", "create_memories"])
async def test_after_write_answers_504_with_an_empty_body_but_the_write_happened(omi: Omi, route: str) -> None:
    omi.sandbox.add_fault(route, after_write=True)
    response = await omi.call(route)
    assert (response.status_code, response.content) == (504, b"")
    stored = omi.sandbox.conversations(UID) if route == "create_conversation" else omi.sandbox.memories(UID)
    assert len(stored) == 1


async def test_after_write_with_drop_loses_the_answer_but_not_the_write(omi: Omi) -> None:
    omi.sandbox.add_fault("create_conversation", after_write=True, drop=True)
    with pytest.raises(httpx.TransportError):
        await omi.call("create_conversation", json={"text": "The unknown outcome of a dropped connection."})
    [conversation] = omi.sandbox.conversations(UID)
    assert conversation["external_data"]["text"] == "The unknown outcome of a dropped connection."


async def test_faults_over_the_admin_route(omi: Omi) -> None:
    added = await omi.http.post("/_sandbox/faults", json={"route": "notification", "status": 503, "times": None})
    assert added.status_code == 200
    assert (await omi.call("notification")).status_code == 503
    assert (await omi.http.delete("/_sandbox/faults")).status_code == 200
    assert (await omi.call("notification")).status_code == 200
    unknown = await omi.http.post("/_sandbox/faults", json={"route": "user/facts", "status": 500})
    assert unknown.status_code == 400


def test_bad_faults_are_refused() -> None:
    from bot.sandbox import Sandbox

    sandbox = Sandbox()
    with pytest.raises(ValueError, match="unknown route"):
        sandbox.add_fault("facts", status=500)
    with pytest.raises(ValueError, match="times"):
        sandbox.add_fault("notification", status=500, times=0)
    sandbox.close()


async def test_request_log_records_every_integration_request(omi: Omi) -> None:
    omi.clock.advance(5)
    await omi.call("read_conversations")
    await omi.call("create_memories", uid=None)
    await omi.http.get("/_sandbox/requests")
    assert omi.sandbox.requests() == [
        {"route": "read_conversations", "method": "GET", "uid": UID, "status": 200, "at": omi.clock.now},
        {"route": "create_memories", "method": "POST", "uid": None, "status": 422, "at": omi.clock.now},
    ]
