"""Omi's order of checks after validation, with each route's wording (behaviour notes §1.1, §1.6, §8, §9.1, §9.6).

FastAPI: 401 header, 403 key, 429 (creates; counts every request that got this far), 404 app, 403 not enabled,
403 capability. Its notification route: 401, 403 key, 404 app (also for a private app the uid may not see),
403 not installed, 429 per clock hour. API core: the same without the early limiter; every limit comes last, after
the capability check, and counts only the requests it lets through.
"""

from __future__ import annotations

from dataclasses import dataclass

from bot.sandbox.apps import AppRegistry, has_capability
from bot.sandbox.exceptions import AUTH_DETAIL, NOT_ENABLED_DETAIL, NOT_FOUND_DETAIL, NOT_INSTALLED_DETAIL, OmiError
from bot.sandbox.limits import RateLimits
from bot.sandbox.validation import Call


@dataclass(frozen=True)
class Guard:
    """What one integration route checks after validation, with its own wording."""

    key_detail: str
    capability: str | None
    capability_detail: str = ""
    rate_policy: str | None = None
    not_enabled_detail: str = NOT_ENABLED_DETAIL
    #: The notification route looks the app up "as available to this uid": a private app is 404 for strangers.
    private_is_not_found: bool = False


FASTAPI_GUARDS: dict[str, Guard] = {
    "create_conversation": Guard(
        "Invalid integration API key",
        "create_conversation",
        "App does not have the capability to create conversations",
        "conversations",
    ),
    "create_memories": Guard(
        "Invalid integrationAPI key",
        "create_memories",
        "App does not have the capability to create memories",
        "memories",
    ),
    "read_conversations": Guard(
        "Invalid API key", "read_conversations", "App does not have the capability to read conversations"
    ),
    "read_memories": Guard(
        "Invalid integrationAPI key", "read_memories", "App does not have the capability to read memories"
    ),
    "search_conversations": Guard(
        "Invalid API key", "read_conversations", "App does not have the capability to read conversations"
    ),
    "notification": Guard(
        "Invalid API key",
        None,
        rate_policy="notifications",
        not_enabled_detail=NOT_INSTALLED_DETAIL,
        private_is_not_found=True,
    ),
}

_API_CORE_KEY = "Invalid API key"
_API_CORE_CAPABILITY = "App does not have the required integration capability"

API_CORE_GUARDS: dict[str, Guard] = {
    route: Guard(
        _API_CORE_KEY,
        guard.capability,
        _API_CORE_CAPABILITY if guard.capability else "",
        guard.rate_policy,
        guard.not_enabled_detail,
        guard.private_is_not_found,
    )
    for route, guard in FASTAPI_GUARDS.items()
}


class CheckOrder:
    """Runs one flavor's checks for a validated call; raises the first refusal as an OmiError."""

    def __init__(
        self,
        apps: AppRegistry,
        limits: RateLimits,
        guards: dict[str, Guard],
        *,
        early_create_limits: bool,
        notification_off_by_one: bool,
    ) -> None:
        self._apps = apps
        self._limits = limits
        self._guards = guards
        self._early_create_limits = early_create_limits
        self._notification_off_by_one = notification_off_by_one

    def authorize(self, call: Call, authorization: str | None) -> None:
        """Checks 1–6 of Omi's order; rate-limit headers for the answer land in `call.headers`."""
        guard = self._guards[call.route]
        self.check_key(call.app_id, authorization, guard.key_detail)
        policy = guard.rate_policy
        early_limit = policy in ("conversations", "memories") and self._early_create_limits
        if early_limit:
            self._limits.count_fixed_window(policy or "", call.app_id, call.uid)
        app = self._apps.get(call.app_id)
        if app is None or (guard.private_is_not_found and not self._apps.available_to(app, call.uid)):
            raise OmiError(404, NOT_FOUND_DETAIL)
        if not self._apps.is_enabled(call.app_id, call.uid):
            raise OmiError(403, guard.not_enabled_detail)
        if guard.capability is not None and not has_capability(app, guard.capability):
            raise OmiError(403, guard.capability_detail)
        if policy == "notifications":
            off_by_one = self._notification_off_by_one
            call.headers |= self._limits.notification_quota(call.app_id, call.uid, off_by_one=off_by_one)
        elif policy is not None and not early_limit:
            self._limits.count_hourly(policy, call.app_id, call.uid)

    def check_key(self, app_id: str, authorization: str | None, key_detail: str) -> None:
        if not authorization or not authorization.startswith("Bearer "):
            raise OmiError(401, AUTH_DETAIL)
        # Omi strips every "Bearer " in the header, not just the prefix; the same here.
        if not self._apps.key_matches(app_id, authorization.replace("Bearer ", "")):
            raise OmiError(403, key_detail)
