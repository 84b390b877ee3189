"""Rate limits: per (app, uid) fixed windows on the creates (§2) and clock-hour buckets on notifications (§8)."""

from __future__ import annotations

import pytest

from tests.sandbox import START, UID, FakeClock, Omi, detail, running_omi

CREATE_ROUTES = ["create_conversation", "create_memories"]


async def statuses(omi: Omi, route: str, count: int, **kwargs: object) -> list[int]:
    return [(await omi.call(route, **kwargs)).status_code for _ in range(count)]  # type: ignore[arg-type]


@pytest.mark.parametrize(("route", "limit"), [("create_conversation", 10), ("create_memories", 60)])
async def test_default_limits_are_omis_base_figures(route: str, limit: int) -> None:
    async with running_omi() as omi:
        assert await statuses(omi, route, limit) == [200] * limit
        response = await omi.call(route)
        assert response.status_code == 429
        assert response.headers["X-RateLimit-Limit"] == str(limit)


@pytest.mark.parametrize("route", CREATE_ROUTES)
async def test_fixed_window_starts_at_the_first_request_and_says_how_long_is_left(route: str) -> None:
    async with running_omi(conversations_per_hour=3, memories_per_hour=3) as omi:
        assert (await omi.call(route)).status_code == 200  # the window opens here, at START
        omi.clock.advance(1000)
        assert await statuses(omi, route, 2) == [200, 200]
        omi.clock.advance(1500)
        limited = await omi.call(route)
        assert limited.status_code == 429
        assert detail(limited) == "Rate limit exceeded. Try again in 1100s."
        assert limited.headers["Retry-After"] == "1100"
        assert limited.headers["X-RateLimit-Limit"] == "3"
        assert limited.headers["X-RateLimit-Remaining"] == "0"
        omi.clock.advance(1099.5)
        assert (await omi.call(route)).headers["Retry-After"] == "1"
        omi.clock.advance(0.5)  # the window has ended: a new one opens at this request
        assert await statuses(omi, route, 3) == [200, 200, 200]
        assert (await omi.call(route)).headers["Retry-After"] == "3600"


async def test_successful_creates_carry_no_rate_limit_headers() -> None:
    async with running_omi() as omi:
        for route in CREATE_ROUTES:
            response = await omi.call(route)
            assert response.status_code == 200
            assert not [name for name in response.headers if name.lower().startswith("x-ratelimit")]
            assert "Retry-After" not in response.headers


async def test_requests_past_the_key_check_count_even_when_they_fail() -> None:
    async with running_omi(conversations_per_hour=3, memories_per_hour=3) as omi:
        stranger = "not-enabled-uid"
        assert await statuses(omi, "create_conversation", 3, uid=stranger) == [403, 403, 403]
        assert (await omi.call("create_conversation", uid=stranger)).status_code == 429
        assert await statuses(omi, "create_memories", 3, json={"text": None}) == [422, 422, 422]
        assert (await omi.call("create_memories")).status_code == 429


async def test_requests_stopped_before_the_key_check_do_not_count() -> None:
    async with running_omi(conversations_per_hour=2) as omi:
        assert await statuses(omi, "create_conversation", 3, json={"no": "text"}) == [422] * 3
        assert await statuses(omi, "create_conversation", 3, key="") == [401] * 3
        assert await statuses(omi, "create_conversation", 3, key="sk_" + "2" * 32) == [403] * 3
        assert await statuses(omi, "create_conversation", 3) == [200, 200, 429]


async def test_windows_are_per_app_uid_and_policy() -> None:
    async with running_omi(conversations_per_hour=1, memories_per_hour=1) as omi:
        other_app = omi.sandbox.create_app(name="other")
        omi.sandbox.enable(other_app.app_id, UID)
        omi.sandbox.enable(omi.app.app_id, "user-2")
        assert await statuses(omi, "create_conversation", 2) == [200, 429]
        assert (await omi.call("create_memories")).status_code == 200
        assert (await omi.call("create_conversation", uid="user-2")).status_code == 200
        other = await omi.call("create_conversation", key=other_app.api_key, app_id=other_app.app_id)
        assert other.status_code == 200


async def test_zero_turns_a_limit_off_and_limits_change_at_runtime() -> None:
    async with running_omi(conversations_per_hour=0) as omi:
        assert set(await statuses(omi, "create_conversation", 15)) == {200}
        omi.sandbox.set_limits(conversations_per_hour=2)  # nothing was counted while the limit was off
        assert await statuses(omi, "create_conversation", 3) == [200, 200, 429]
        admin = await omi.http.put("/_sandbox/limits", json={"conversations_per_hour": 0})
        assert admin.json()["conversations_per_hour"] == 0
        assert (await omi.call("create_conversation")).status_code == 200


# --- notifications (§8) ------------------------------------------------------------------------------------------


async def test_notification_success_carries_the_rate_limit_headers() -> None:
    async with running_omi(clock=FakeClock(START + 600.25)) as omi:
        response = await omi.call("notification")
        assert (response.status_code, response.json()) == (200, {"status": "Ok"})
        assert response.headers["X-RateLimit-Limit"] == "10"
        assert response.headers["X-RateLimit-Remaining"] == "8"  # Omi's off-by-one: the first reply says 8
        assert response.headers["X-RateLimit-Reset"] == "3000"  # seconds to the next clock hour
        assert "Retry-After" not in response.headers
        [stored] = omi.sandbox.notifications(UID)
        assert stored == {
            "app_id": omi.app.app_id,
            "uid": UID,
            "message": "hello from the app",
            "created_at": "2024-03-15T00:10:00.250000Z",
        }


async def test_nine_notifications_pass_per_clock_hour() -> None:
    """Behaviour notes §9.1: Omi's counter starts at 1 and is then incremented, so 9 of its "10 per hour" pass."""
    async with running_omi(clock=FakeClock(START + 3000)) as omi:
        remaining = [(await omi.call("notification")).headers["X-RateLimit-Remaining"] for _ in range(9)]
        assert remaining == [str(n) for n in range(8, -1, -1)]
        limited = await omi.call("notification")
        assert limited.status_code == 429
        assert detail(limited) == "Rate limit exceeded. Maximum 10 notifications per hour."
        assert limited.headers["Retry-After"] == limited.headers["X-RateLimit-Reset"] == "600"
        assert limited.headers["X-RateLimit-Remaining"] == "0"
        assert limited.headers["X-RateLimit-Limit"] == "10"
        omi.clock.advance(600)  # the next clock hour, not an hour after the first notification
        assert (await omi.call("notification")).status_code == 200
        assert len(omi.sandbox.notifications(UID)) == 10


async def test_notification_order_of_checks() -> None:
    async with running_omi(notifications_per_hour=1) as omi:
        other = omi.sandbox.create_app(name="other")
        assert detail(await omi.call("notification", key="")) == (
            "Missing or invalid Authorization header. Must be 'Bearer API_KEY'"
        )
        for key, app_id in ((other.api_key, None), ("sk_" + "3" * 32, None), (None, "01NOSUCHAPP000000000000000")):
            response = await omi.call("notification", key=key, app_id=app_id)
            assert (response.status_code, detail(response)) == (403, "Invalid API key")
        assert (await omi.call("notification")).status_code == 200
        assert (await omi.call("notification")).status_code == 429
        # The install check comes before the limit, so retrying while the user installs costs nothing.
        not_installed = await omi.call("notification", uid="installing")
        assert (not_installed.status_code, detail(not_installed)) == (403, "User does not have this app installed")
        omi.sandbox.enable(omi.app.app_id, "installing")
        assert (await omi.call("notification", uid="installing")).status_code == 200
        omi.sandbox.delete_app(other.app_id)
        gone = await omi.call("notification", key=other.api_key, app_id=other.app_id)
        assert (gone.status_code, detail(gone)) == (404, "App not found")


async def test_notification_needs_no_capability_and_validates_message_then_uid() -> None:
    async with running_omi() as omi:
        omi.sandbox.set_capabilities(omi.app.app_id, [])
        assert (await omi.call("notification")).status_code == 200
        response = await omi.http.post(f"/v2/integrations/{omi.app.app_id}/notification")
        assert response.status_code == 422
        assert [error["loc"] for error in detail(response)] == [["query", "message"], ["query", "uid"]]
