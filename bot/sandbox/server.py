"""The Omi sandbox: an aiohttp server answering like Omi's integration API, plus loopback-only `/_sandbox/` routes.

Every integration route runs Omi's checks in Omi's order (reference/omi-backend-behaviour.md §1.1 and §8):
422 validation, 401 header, 403 key (each route's own wording), 429 (creates only), 404 app, 403 not enabled,
403 capability, then the route's own checks. Faults injected per route run before all of that (`after_write` ones
after the normal path).
"""

from __future__ import annotations

import asyncio
import hashlib
import ipaddress
import logging
import math
import os
import secrets
import time
import uuid
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http import HTTPStatus
from typing import Any

import httpx
from aiohttp import web
from pydantic import BaseModel, Field

from bot.sandbox import derive
from bot.sandbox.store import AppRecord, SandboxStore, StoredMemory
from bot.sandbox.validation import (
    NOTIFICATION_QUERY,
    READ_CONVERSATIONS_QUERY,
    READ_MEMORIES_QUERY,
    SEARCH_QUERY,
    UID_QUERY,
    BodyRejected,
    ConversationIn,
    MemoriesIn,
    SearchIn,
    json_response,
    read_body,
    validate_body,
    validate_query,
    validation_response,
)

log = logging.getLogger(__name__)

ALL_CAPABILITIES: tuple[str, ...] = (
    "create_conversation",
    "create_memories",
    "read_conversations",
    "read_memories",
    "read_tasks",
)
#: Omi's app store and `ActionType` only offer these older names; the server accepts them as the same actions.
CAPABILITY_ALIASES = {"create_facts": "create_memories", "read_facts": "read_memories"}
KNOWN_CAPABILITIES = frozenset(ALL_CAPABILITIES) | frozenset(CAPABILITY_ALIASES)

#: Route names, for faults and the request log.
ROUTES: tuple[str, ...] = (
    "create_conversation",
    "create_memories",
    "read_conversations",
    "read_memories",
    "notification",
    "search_conversations",
)

DEFAULT_APP_NAME = "omi-bridge sandbox"
RATE_WINDOW_SECONDS = 3600
NOTIFICATION_BUCKET_SECONDS = 3600
REQUEST_LOG_SIZE = 100_000
SETUP_CHECK_TIMEOUT_SECONDS = 5.0
DEFAULT_DURATION = timedelta(seconds=300)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

AUTH_DETAIL = "Missing or invalid Authorization header. Must be 'Bearer API_KEY'"
NOT_FOUND_DETAIL = "App not found"
NOT_ENABLED_DETAIL = "App is not enabled for this user"
NOT_INSTALLED_DETAIL = "User does not have this app installed"
EMPTY_MEMORIES_DETAIL = "Either text or explicit memories(facts) are required and cannot be empty"
SETUP_NOT_COMPLETED_DETAIL = "App setup is not completed"


def bad_date_detail(name: str) -> str:
    return f"Invalid {name} format. Use ISO format (YYYY-MM-DDTHH:MM:SS.sssZ) or YYYY-MM-DD"


@dataclass(frozen=True)
class SandboxApp:
    """An integration app and one of its keys (the key is kept out of reprs)."""

    app_id: str
    api_key: str = field(repr=False)


@dataclass
class Fault:
    """A misbehaviour to inject on one route, consumed `times` times (None: until cleared)."""

    route: str
    status: int | None = None
    detail: Any = None
    delay: float = 0.0
    drop: bool = False
    after_write: bool = False
    retry_after: float | None = None
    times: int | None = 1


@dataclass(frozen=True)
class _Guard:
    """What one integration route checks after validation, with its own wording."""

    key_detail: str
    capability: str
    capability_detail: str
    rate_policy: str | None = None


_GUARDS = {
    "create_conversation": _Guard(
        "Invalid integration API key",
        "create_conversation",
        "App does not have the capability to create conversations",
        "conversations",
    ),
    "create_memories": _Guard(
        "Invalid integrationAPI key",
        "create_memories",
        "App does not have the capability to create memories",
        "memories",
    ),
    "read_conversations": _Guard(
        "Invalid API key", "read_conversations", "App does not have the capability to read conversations"
    ),
    "read_memories": _Guard(
        "Invalid integrationAPI key", "read_memories", "App does not have the capability to read memories"
    ),
    "search_conversations": _Guard(
        "Invalid API key", "read_conversations", "App does not have the capability to read conversations"
    ),
}


# --- admin request models ---------------------------------------------------------------------------------------


class AdminAppIn(BaseModel):
    name: str = "omi-bridge"
    capabilities: list[str] = Field(default_factory=lambda: list(ALL_CAPABILITIES))
    setup_completed_url: str | None = None


class AdminCapabilitiesIn(BaseModel):
    capabilities: list[str]


class AdminUidIn(BaseModel):
    uid: str


class AdminFaultIn(BaseModel):
    route: str
    status: int | None = None
    detail: Any = None
    delay: float = 0.0
    drop: bool = False
    after_write: bool = False
    retry_after: float | None = None
    times: int | None = 1


class AdminLimitsIn(BaseModel):
    conversations_per_hour: int | None = Field(default=None, ge=0)
    memories_per_hour: int | None = Field(default=None, ge=0)
    notifications_per_hour: int | None = Field(default=None, ge=0)


class AdminMemoryIn(BaseModel):
    uid: str
    content: str
    tags: list[str] = Field(default_factory=list)
    manually_added: bool = True


# --- helpers ----------------------------------------------------------------------------------------------------


def _detail(status: int, detail: Any, headers: dict[str, str] | None = None) -> web.Response:
    return json_response({"detail": detail}, status, headers)


def iso_utc(moment: datetime) -> str:
    """Omi's datetime rendering: ISO-8601 in UTC ending in `Z` (microseconds only when non-zero)."""
    return moment.astimezone(UTC).replace(tzinfo=None).isoformat() + "Z"


def _as_utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _micros(moment: datetime) -> int:
    return (_as_utc(moment) - _EPOCH) // timedelta(microseconds=1)


def parse_date_filter(value: str | None, *, end: bool) -> datetime | None:
    """Omi's start_date/end_date parsing: 10 characters → that whole UTC day, else `fromisoformat` (Z allowed).

    Raises ValueError on anything else; the caller answers 400.
    """
    if not value:
        return None
    if len(value) == 10:
        day = datetime.strptime(value, "%Y-%m-%d").replace(tzinfo=UTC)
        return day + timedelta(days=1, microseconds=-1) if end else day
    return _as_utc(datetime.fromisoformat(value.replace("Z", "+00:00")))


def _key_hash(api_key: str) -> str:
    """Omi's `_lookup_api_key`: sha256 of the key without its optional `sk_` prefix."""
    secret = api_key[3:] if api_key.startswith("sk_") else api_key
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def _new_app_id(now: float) -> str:
    """A ULID, the shape of Omi's app ids (48-bit milliseconds + 80 random bits, Crockford base32)."""
    alphabet = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
    value = (int(now * 1000) << 80) | secrets.randbits(80)
    return "".join(alphabet[(value >> shift) & 31] for shift in range(125, -1, -5))


def _is_loopback(remote: str | None) -> bool:
    if not remote:
        return False
    try:
        address = ipaddress.ip_address(remote.split("%")[0])
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_loopback


def _normalise_capabilities(capabilities: Iterable[str]) -> tuple[str, ...]:
    if isinstance(capabilities, str):
        raise ValueError("capabilities must be a list of names, not one string")
    names = tuple(dict.fromkeys(capabilities))
    unknown = [name for name in names if name not in KNOWN_CAPABILITIES]
    if unknown:
        raise ValueError(f"unknown capabilities {unknown}; known: {sorted(KNOWN_CAPABILITIES)}")
    return names


@web.middleware
async def fastapi_not_found(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """Unknown paths and wrong methods answer as FastAPI does (JSON `detail`), e.g. the removed `/user/facts`."""
    try:
        return await handler(request)
    except web.HTTPMethodNotAllowed as exc:
        return _detail(405, "Method Not Allowed", {"Allow": ", ".join(sorted(exc.allowed_methods))})
    except web.HTTPNotFound:
        return _detail(404, "Not Found")


class _FixedWindows:
    """Omi's Redis limiter: INCR, EXPIRE on the first hit, so a fixed window that starts at the first request."""

    def __init__(self) -> None:
        self._windows: dict[tuple[str, ...], tuple[float, int]] = {}

    def hit(self, key: tuple[str, ...], limit: int, now: float) -> int | None:
        """Count one request; the seconds until the window ends when it is over `limit`, else None."""
        start, count = self._windows.get(key, (now, 0))
        if now >= start + RATE_WINDOW_SECONDS:
            start, count = now, 0
        self._windows[key] = (start, count + 1)
        if len(self._windows) > 50_000:
            self._windows = {k: v for k, v in self._windows.items() if now < v[0] + RATE_WINDOW_SECONDS}
        if count + 1 <= limit:
            return None
        return max(1, math.ceil(start + RATE_WINDOW_SECONDS - now))


class Sandbox:
    """Omi's integration API on 127.0.0.1, backed by SQLite. See the module docstring and SPEC §8."""

    def __init__(
        self,
        db_path: str | os.PathLike[str] = ":memory:",
        *,
        conversations_per_hour: int = 10,
        memories_per_hour: int = 60,
        notifications_per_hour: int = 10,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._store = SandboxStore(str(db_path))
        self._clock = clock
        self._limits = {"conversations": 0, "memories": 0, "notifications": 0}
        self.set_limits(
            conversations_per_hour=conversations_per_hour,
            memories_per_hour=memories_per_hour,
            notifications_per_hour=notifications_per_hour,
        )
        self._windows = _FixedWindows()
        self._notification_counts: dict[tuple[str, str, int], int] = {}
        self._faults: dict[str, deque[Fault]] = {route: deque() for route in ROUTES}
        self._requests: deque[dict[str, Any]] = deque(maxlen=REQUEST_LOG_SIZE)
        #: Called with each stored notification (the console prints them as they arrive).
        self.on_notification: Callable[[dict[str, Any]], None] | None = None
        self.web_app = self._build_app()
        self.base_url: str | None = None
        self._runner: web.AppRunner | None = None

    # --- lifecycle --------------------------------------------------------------------------------------------

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        if self._runner is not None:
            raise RuntimeError("the sandbox is already running")
        runner = web.AppRunner(self.web_app, access_log=None, shutdown_timeout=1.0)
        await runner.setup()
        site = web.TCPSite(runner, host, port)
        try:
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        bound_port = runner.addresses[0][1]
        shown = "127.0.0.1" if host in ("", "0.0.0.0", "::") else host  # noqa: S104 - naming, not binding
        if ":" in shown:
            shown = f"[{shown}]"
        self.base_url = f"http://{shown}:{bound_port}"
        log.info("Omi sandbox listening on %s", self.base_url)
        return self.base_url

    async def stop(self) -> None:
        """Stop serving; the store stays readable (call `close()` to release the database)."""
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()

    def close(self) -> None:
        self._store.close()

    # --- apps, keys, users ------------------------------------------------------------------------------------

    def create_app(
        self,
        name: str = "omi-bridge",
        capabilities: Iterable[str] = ALL_CAPABILITIES,
        setup_completed_url: str | None = None,
    ) -> SandboxApp:
        record = AppRecord(_new_app_id(self._clock()), name, _normalise_capabilities(capabilities), setup_completed_url)
        self._store.add_app(record, self._clock())
        return SandboxApp(record.app_id, self.mint_key(record.app_id))

    def mint_key(self, app_id: str) -> str:
        """A new `sk_` + 32 hex key; only its hash is stored, and the app's older keys keep working."""
        self._require_app(app_id)
        api_key = "sk_" + secrets.token_hex(16)
        self._store.add_key(app_id, _key_hash(api_key), self._clock())
        return api_key

    def delete_app(self, app_id: str) -> None:
        """Drop the app's record but keep its keys: the next call with such a key reaches 404 `App not found`."""
        self._require_app(app_id)
        self._store.delete_app(app_id)

    def set_capabilities(self, app_id: str, capabilities: Iterable[str]) -> None:
        self._require_app(app_id)
        self._store.set_capabilities(app_id, _normalise_capabilities(capabilities))

    def set_setup_completed_url(self, app_id: str, url: str | None) -> None:
        """Point the app at a bridge's `/omi/setup-completed` (Omi asks it before enabling)."""
        self._require_app(app_id)
        self._store.set_setup_completed_url(app_id, url)

    def enable(self, app_id: str, uid: str) -> None:
        """Enable the app for `uid` without asking its `setup_completed_url` (see `enable_checked`)."""
        self._require_app(app_id)
        self._store.set_enabled(app_id, uid, True)

    def disable(self, app_id: str, uid: str) -> None:
        self._store.set_enabled(app_id, uid, False)

    async def enable_checked(self, app_id: str, uid: str) -> bool:
        """Enable as Omi's `POST /v1/apps/enable` does: the app's `setup_completed_url`, if any, must say done."""
        app = self._require_app(app_id)
        if app.setup_completed_url and not await _setup_completed(app.setup_completed_url, uid):
            return False
        self._store.set_enabled(app_id, uid, True)
        return True

    def ensure_default(self, uid: str | None = None) -> tuple[str, str, str]:
        """(app_id, a new api_key, test uid) of the default app, created once per database, enabled for the uid."""
        app_id = self._store.meta("default_app_id")
        if app_id is None or self._store.app(app_id) is None:
            app_id = self.create_app(DEFAULT_APP_NAME, ALL_CAPABILITIES).app_id
            self._store.set_meta("default_app_id", app_id)
        else:
            self._store.set_capabilities(app_id, ALL_CAPABILITIES)
        uid = uid or self._store.meta("default_uid") or f"sandbox-user-{secrets.token_hex(4)}"
        self._store.set_meta("default_uid", uid)
        self._store.set_enabled(app_id, uid, True)
        return app_id, self.mint_key(app_id), uid

    def _require_app(self, app_id: str) -> AppRecord:
        app = self._store.app(app_id)
        if app is None:
            raise LookupError(f"no sandbox app {app_id!r}")
        return app

    # --- limits and faults ------------------------------------------------------------------------------------

    def set_limits(
        self,
        *,
        conversations_per_hour: int | None = None,
        memories_per_hour: int | None = None,
        notifications_per_hour: int | None = None,
    ) -> dict[str, int]:
        """Change any of the per-hour limits (0 turns one off); returns them all."""
        for policy, value in (
            ("conversations", conversations_per_hour),
            ("memories", memories_per_hour),
            ("notifications", notifications_per_hour),
        ):
            if value is not None:
                if value < 0:
                    raise ValueError(f"{policy}_per_hour must be 0 (off) or more")
                self._limits[policy] = value
        return self.limits()

    def limits(self) -> dict[str, int]:
        return {f"{policy}_per_hour": value for policy, value in self._limits.items()}

    def add_fault(
        self,
        route: str,
        *,
        status: int | None = None,
        detail: Any = None,
        delay: float = 0.0,
        drop: bool = False,
        after_write: bool = False,
        retry_after: float | None = None,
        times: int | None = 1,
    ) -> Fault:
        if route not in ROUTES:
            raise ValueError(f"unknown route {route!r}; routes: {', '.join(ROUTES)}")
        if times is not None and times < 1:
            raise ValueError("times must be 1 or more (None: until cleared)")
        if delay < 0:
            raise ValueError("delay must not be negative")
        if status is not None and not 100 <= status <= 599:
            raise ValueError("status must be an HTTP status code")
        fault = Fault(route, status, detail, delay, drop, after_write, retry_after, times)
        self._faults[route].append(fault)
        return fault

    def clear_faults(self) -> None:
        for faults in self._faults.values():
            faults.clear()

    def _take_fault(self, route: str) -> Fault | None:
        faults = self._faults[route]
        if not faults:
            return None
        fault = faults[0]
        if fault.times is not None:
            fault.times -= 1
            if fault.times == 0:
                faults.popleft()
        return fault

    # --- inspection -------------------------------------------------------------------------------------------

    def conversations(self, uid: str) -> list[dict[str, Any]]:
        """Everything stored for `uid` (discarded too), newest first, in the GET response shape."""
        return self._store.conversations(uid)

    def memories(self, uid: str) -> list[dict[str, Any]]:
        return self._store.memories(uid)

    def notifications(self, uid: str | None = None) -> list[dict[str, Any]]:
        """Oldest first: {"app_id", "uid", "message", "created_at" (ISO, UTC, `Z`)}."""
        return [
            {**notification, "created_at": iso_utc(datetime.fromtimestamp(notification["created_at"], UTC))}
            for notification in self._store.notifications(uid)
        ]

    def requests(self) -> list[dict[str, Any]]:
        """Every integration-route request: route, method, uid, status (None when the connection was dropped), at."""
        return list(self._requests)

    def add_manual_memory(
        self, uid: str, content: str, tags: Iterable[str] = (), *, manually_added: bool = True
    ) -> dict[str, Any]:
        """A memory as the user would add it in the Omi app (category `manual`, sorted before the rest)."""
        body = _memory_body(uid, content, list(tags), category="manual", app_id=None, manual=manually_added)
        return self._put_memories(uid, [body])[0]

    # --- the web application ----------------------------------------------------------------------------------

    def _build_app(self) -> web.Application:
        app = web.Application(middlewares=[fastapi_not_found], client_max_size=64 * 1024**2)
        add = app.router.add_route
        integration = "/v2/integrations/{app_id}"
        add("POST", integration + "/user/conversations", self._route("create_conversation", self._create_conversation))
        add("POST", integration + "/user/memories", self._route("create_memories", self._create_memories))
        add("GET", integration + "/conversations", self._route("read_conversations", self._read_conversations))
        add("GET", integration + "/memories", self._route("read_memories", self._read_memories))
        add("POST", integration + "/notification", self._route("notification", self._notification))
        add("POST", integration + "/search/conversations", self._route("search_conversations", self._search))

        for method, path, handler in (
            ("POST", "/_sandbox/apps", self._admin_create_app),
            ("DELETE", "/_sandbox/apps/{app_id}", self._admin_delete_app),
            ("POST", "/_sandbox/apps/{app_id}/keys", self._admin_mint_key),
            ("PUT", "/_sandbox/apps/{app_id}/capabilities", self._admin_capabilities),
            ("POST", "/_sandbox/apps/{app_id}/enable", self._admin_enable),
            ("POST", "/_sandbox/apps/{app_id}/disable", self._admin_disable),
            ("POST", "/_sandbox/faults", self._admin_add_fault),
            ("DELETE", "/_sandbox/faults", self._admin_clear_faults),
            ("PUT", "/_sandbox/limits", self._admin_limits),
            ("GET", "/_sandbox/notifications", self._admin_notifications),
            ("GET", "/_sandbox/conversations", self._admin_conversations),
            ("GET", "/_sandbox/memories", self._admin_memories),
            ("POST", "/_sandbox/memories", self._admin_add_memory),
            ("GET", "/_sandbox/requests", self._admin_requests),
        ):
            add(method, path, admin_route(handler))
        return app

    def _route(
        self, route: str, handler: Callable[[web.Request], Awaitable[web.Response]]
    ) -> Callable[[web.Request], Awaitable[web.Response]]:
        async def serve(request: web.Request) -> web.Response:
            fault = self._take_fault(route)
            response: web.Response | None
            if fault is not None and fault.delay > 0:
                await asyncio.sleep(fault.delay)
            if fault is not None and not fault.after_write and (fault.drop or fault.status is not None):
                response = None if fault.drop else self._fault_response(route, fault)
            else:
                try:
                    response = await handler(request)
                except BodyRejected as exc:
                    response = exc.response
                if fault is not None and fault.after_write:
                    response = None if fault.drop else self._fault_response(route, fault)
            status = None if response is None else response.status
            self._requests.append(
                {
                    "route": route,
                    "method": request.method,
                    "uid": request.query.get("uid"),
                    "status": status,
                    "at": self._clock(),
                }
            )
            log.debug("sandbox %s %s -> %s", request.method, route, status)
            if response is None:
                return _dropped(request)
            return response

        return serve

    def _fault_response(self, route: str, fault: Fault) -> web.Response:
        status = fault.status or HTTPStatus.GATEWAY_TIMEOUT
        if status == HTTPStatus.GATEWAY_TIMEOUT and fault.detail is None:
            return web.Response(status=status)  # Omi's request timeout answers with an empty body
        headers: dict[str, str] = {}
        if status == HTTPStatus.TOO_MANY_REQUESTS:
            headers["X-RateLimit-Remaining"] = "0"
            if fault.retry_after is not None:
                headers["Retry-After"] = str(math.ceil(fault.retry_after))
        detail = fault.detail
        if detail is None:
            detail = _default_fault_detail(route, status, fault.retry_after)
        return _detail(status, detail, headers)

    def _authorize(self, request: web.Request, app_id: str, uid: str, route: str) -> web.Response | None:
        """Checks 1–6 of Omi's order; None when the request may proceed."""
        guard = _GUARDS[route]
        if denied := self._check_key(request, app_id, guard.key_detail):
            return denied
        if guard.rate_policy is not None and (limited := self._rate_limit(guard.rate_policy, app_id, uid)):
            return limited
        app = self._store.app(app_id)
        if app is None:
            return _detail(404, NOT_FOUND_DETAIL)
        if not self._store.is_enabled(app_id, uid):
            return _detail(403, NOT_ENABLED_DETAIL)
        if all(CAPABILITY_ALIASES.get(name, name) != guard.capability for name in app.capabilities):
            return _detail(403, guard.capability_detail)
        return None

    def _check_key(self, request: web.Request, app_id: str, key_detail: str) -> web.Response | None:
        header = request.headers.get("Authorization")
        if not header or not header.startswith("Bearer "):
            return _detail(401, AUTH_DETAIL)
        # Omi strips every "Bearer " in the header, not just the prefix; the same here.
        if not self._store.key_matches(app_id, _key_hash(header.replace("Bearer ", ""))):
            return _detail(403, key_detail)
        return None

    def _rate_limit(self, policy: str, app_id: str, uid: str) -> web.Response | None:
        limit = self._limits[policy]
        if limit <= 0:
            return None
        retry_after = self._windows.hit((policy, app_id, uid), limit, self._clock())
        if retry_after is None:
            return None
        headers = {
            "Retry-After": str(retry_after),
            "X-RateLimit-Limit": str(limit),
            "X-RateLimit-Remaining": "0",
        }
        return _detail(429, f"Rate limit exceeded. Try again in {retry_after}s.", headers)

    # --- integration routes -----------------------------------------------------------------------------------

    async def _create_conversation(self, request: web.Request) -> web.Response:
        body = await read_body(request)
        query, errors = validate_query(request.query, UID_QUERY)
        payload, body_errors = validate_body(ConversationIn, body)
        if errors or body_errors or payload is None:
            return validation_response(errors + body_errors)
        app_id, uid = request.match_info["app_id"], query["uid"]
        if denied := self._authorize(request, app_id, uid, "create_conversation"):
            return denied
        self._save_conversation(app_id, uid, payload)
        return json_response({})

    def _save_conversation(self, app_id: str, uid: str, payload: ConversationIn) -> None:
        started = _as_utc(payload.started_at) if payload.started_at else self._now()
        finished = _as_utc(payload.finished_at) if payload.finished_at else started + DEFAULT_DURATION
        language = payload.language or "en"
        geolocation = payload.geolocation
        external_data = {
            "started_at": iso_utc(started),
            "finished_at": iso_utc(finished),
            "text": payload.text,
            "text_source": payload.text_source.value,
            "text_source_spec": payload.text_source_spec,
            "geolocation": geolocation.model_dump() if geolocation else None,
            "source": "external_integration",
            "language": language,
            "app_id": app_id,
            "client_device_id": payload.client_device_id,
            "client_platform": payload.client_platform,
        }
        structure = derive.structure(payload.text)
        item: dict[str, Any] = {
            "id": str(uuid.uuid4()),
            "created_at": iso_utc(started),
            "started_at": iso_utc(started),
            "finished_at": iso_utc(finished),
            "source": "external_integration",
            "structured": {
                "title": structure.title,
                "overview": structure.overview,
                "emoji": structure.emoji,
                "category": structure.category,
                "action_items": [],
                "events": [],
            },
            "transcript_segments": [],
            "discarded": structure.discarded,
            "app_id": app_id,
            "language": language,
            "external_data": external_data,
        }
        if geolocation is not None:
            item["geolocation"] = geolocation.model_dump(exclude_none=True)
        item["status"] = "completed"
        self._store.add_conversation(uid, _micros(started), item)

    async def _create_memories(self, request: web.Request) -> web.Response:
        body = await read_body(request)
        query, errors = validate_query(request.query, UID_QUERY)
        payload, body_errors = validate_body(MemoriesIn, body)
        if errors or body_errors or payload is None:
            return validation_response(errors + body_errors)
        app_id, uid = request.match_info["app_id"], query["uid"]
        if denied := self._authorize(request, app_id, uid, "create_memories"):
            return denied
        has_text = bool(payload.text and payload.text.strip())
        if not has_text and not payload.memories:
            return _detail(422, EMPTY_MEMORIES_DETAIL)
        memories = [
            _memory_body(uid, item.content, item.tags or [], category="system", app_id=app_id)
            for item in payload.memories or []
        ]
        # `source_id` dedupes extractions: the same source extracted again for this app and user adds nothing.
        if has_text and (payload.source_id is None or self._store.claim_source(app_id, uid, payload.source_id)):
            memories += [
                _memory_body(uid, content, [], category="interesting", app_id=app_id)
                for content in derive.extract_memories(payload.text or "")
            ]
        self._put_memories(uid, memories)
        return json_response({})

    def _put_memories(self, uid: str, bodies: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Write one batch, stamped now; the same content (same id) overwrites but keeps its first `created_at`."""
        now_us = _micros(self._now())
        batch = {body["id"]: body for body in bodies}  # within one request, the last of a content wins
        created = self._store.memory_created(uid, batch)
        stored = []
        for memory_id, body in batch.items():
            created_us = created.get(memory_id, now_us)
            created_at = _EPOCH + timedelta(microseconds=created_us)
            body |= {
                "created_at": iso_utc(created_at),
                "updated_at": iso_utc(_EPOCH + timedelta(microseconds=now_us)),
                "scoring": f"{int(body['manually_added']):02d}_00_{int(created_at.timestamp()):010d}",
            }
            stored.append(StoredMemory(memory_id, body["manually_added"], created_us, body))
        self._store.put_memories(uid, stored)
        return [memory.body for memory in stored]

    async def _read_conversations(self, request: web.Request) -> web.Response:
        query, errors = validate_query(request.query, READ_CONVERSATIONS_QUERY)
        if errors:
            return validation_response(errors)
        app_id, uid = request.match_info["app_id"], query["uid"]
        if denied := self._authorize(request, app_id, uid, "read_conversations"):
            return denied
        bounds = _date_bounds(query["start_date"], query["end_date"])
        if isinstance(bounds, web.Response):
            return bounds
        start, end = bounds
        conversations = self._store.conversations(
            uid,
            include_discarded=query["include_discarded"],
            statuses=query["statuses"],
            start_us=None if start is None else _micros(start),
            end_us=None if end is None else _micros(end),
            limit=query["limit"],
            offset=query["offset"],
        )
        return json_response({"conversations": conversations})

    async def _read_memories(self, request: web.Request) -> web.Response:
        query, errors = validate_query(request.query, READ_MEMORIES_QUERY)
        if errors:
            return validation_response(errors)
        app_id, uid = request.match_info["app_id"], query["uid"]
        if denied := self._authorize(request, app_id, uid, "read_memories"):
            return denied
        return json_response({"memories": self._store.memories(uid, limit=query["limit"], offset=query["offset"])})

    async def _search(self, request: web.Request) -> web.Response:
        body = await read_body(request)
        query, errors = validate_query(request.query, SEARCH_QUERY)
        payload, body_errors = validate_body(SearchIn, body)
        if errors or body_errors or payload is None:
            return validation_response(errors + body_errors)
        app_id, uid = request.match_info["app_id"], query["uid"]
        if denied := self._authorize(request, app_id, uid, "search_conversations"):
            return denied
        bounds = _date_bounds(payload.start_date, payload.end_date)
        if isinstance(bounds, web.Response):
            return bounds
        start, end = bounds
        # Omi's search index keeps whole seconds: compare at that precision.
        start_us = None if start is None else int(start.timestamp()) * 1_000_000
        end_us = None if end is None else int(end.timestamp()) * 1_000_000 + 999_999
        page = max(1, payload.page or 1)
        per_page = max(1, payload.per_page or 10)
        include_discarded = True if payload.include_discarded is None else payload.include_discarded
        words = [word.lower() for word in payload.query.split() if word != "*"]
        matches = [
            conversation
            for conversation in self._store.conversations(
                uid, include_discarded=include_discarded, start_us=start_us, end_us=end_us
            )
            if _matches(conversation, words)
        ]
        return json_response(
            {
                "conversations": matches[(page - 1) * per_page : page * per_page],
                "total_pages": math.ceil(len(matches) / per_page),
                "current_page": page,
                "per_page": per_page,
            }
        )

    async def _notification(self, request: web.Request) -> web.Response:
        query, errors = validate_query(request.query, NOTIFICATION_QUERY)
        if errors:
            return validation_response(errors)
        app_id, uid, message = request.match_info["app_id"], query["uid"], query["message"]
        if denied := self._check_key(request, app_id, "Invalid API key"):
            return denied
        if self._store.app(app_id) is None:
            return _detail(404, NOT_FOUND_DETAIL)
        if not self._store.is_enabled(app_id, uid):
            return _detail(403, NOT_INSTALLED_DETAIL)
        now = self._clock()
        limit = self._limits["notifications"]
        headers: dict[str, str] = {}
        if limit > 0:
            bucket = (app_id, uid, int(now // NOTIFICATION_BUCKET_SECONDS))
            sent = self._notification_counts.get(bucket, 0)
            reset = NOTIFICATION_BUCKET_SECONDS - int(now) % NOTIFICATION_BUCKET_SECONDS
            headers = {"X-RateLimit-Limit": str(limit), "X-RateLimit-Reset": str(reset)}
            if sent >= limit:
                headers |= {"X-RateLimit-Remaining": "0", "Retry-After": str(reset)}
                return _detail(429, f"Rate limit exceeded. Maximum {limit} notifications per hour.", headers)
            if len(self._notification_counts) > 50_000:
                current = bucket[2]
                self._notification_counts = {k: v for k, v in self._notification_counts.items() if k[2] == current}
            self._notification_counts[bucket] = sent + 1
            headers["X-RateLimit-Remaining"] = str(limit - sent - 1)
        self._store.add_notification(app_id, uid, message, now)
        if self.on_notification is not None:
            stamp = iso_utc(datetime.fromtimestamp(now, UTC))
            self.on_notification({"app_id": app_id, "uid": uid, "message": message, "created_at": stamp})
        return json_response({"status": "Ok"}, headers=headers)

    # --- admin routes -----------------------------------------------------------------------------------------

    async def _admin_create_app(self, request: web.Request) -> web.Response:
        payload = await _admin_body(request, AdminAppIn, empty_ok=True)
        app = self.create_app(payload.name, payload.capabilities, payload.setup_completed_url)
        return json_response({"app_id": app.app_id, "api_key": app.api_key})

    async def _admin_delete_app(self, request: web.Request) -> web.Response:
        self.delete_app(request.match_info["app_id"])
        return json_response({})

    async def _admin_mint_key(self, request: web.Request) -> web.Response:
        return json_response({"api_key": self.mint_key(request.match_info["app_id"])})

    async def _admin_capabilities(self, request: web.Request) -> web.Response:
        payload = await _admin_body(request, AdminCapabilitiesIn)
        app_id = request.match_info["app_id"]
        self.set_capabilities(app_id, payload.capabilities)
        return json_response({"app_id": app_id, "capabilities": list(self._require_app(app_id).capabilities)})

    async def _admin_enable(self, request: web.Request) -> web.Response:
        payload = await _admin_body(request, AdminUidIn)
        if await self.enable_checked(request.match_info["app_id"], payload.uid):
            return json_response({})
        return _detail(400, SETUP_NOT_COMPLETED_DETAIL)

    async def _admin_disable(self, request: web.Request) -> web.Response:
        payload = await _admin_body(request, AdminUidIn)
        self.disable(request.match_info["app_id"], payload.uid)
        return json_response({})

    async def _admin_add_fault(self, request: web.Request) -> web.Response:
        fields = (await _admin_body(request, AdminFaultIn)).model_dump()
        self.add_fault(fields.pop("route"), **fields)
        return json_response({})

    async def _admin_clear_faults(self, request: web.Request) -> web.Response:
        self.clear_faults()
        return json_response({})

    async def _admin_limits(self, request: web.Request) -> web.Response:
        payload = await _admin_body(request, AdminLimitsIn, empty_ok=True)
        return json_response(self.set_limits(**payload.model_dump()))

    async def _admin_notifications(self, request: web.Request) -> web.Response:
        return json_response({"notifications": self.notifications(request.query.get("uid"))})

    async def _admin_conversations(self, request: web.Request) -> web.Response:
        query, errors = validate_query(request.query, UID_QUERY)
        if errors:
            return validation_response(errors)
        return json_response({"conversations": self.conversations(query["uid"])})

    async def _admin_memories(self, request: web.Request) -> web.Response:
        query, errors = validate_query(request.query, UID_QUERY)
        if errors:
            return validation_response(errors)
        return json_response({"memories": self.memories(query["uid"])})

    async def _admin_add_memory(self, request: web.Request) -> web.Response:
        payload = await _admin_body(request, AdminMemoryIn)
        memory = self.add_manual_memory(
            payload.uid, payload.content, payload.tags, manually_added=payload.manually_added
        )
        return json_response(memory)

    async def _admin_requests(self, request: web.Request) -> web.Response:
        return json_response({"requests": self.requests()})

    def _now(self) -> datetime:
        return datetime.fromtimestamp(self._clock(), UTC)


# --- module helpers ---------------------------------------------------------------------------------------------


def _memory_body(
    uid: str, content: str, tags: list[str], *, category: str, app_id: str | None, manual: bool = False
) -> dict[str, Any]:
    """A MemoryItem (§3.2) without its timestamps, which `_put_memories` sets; `None`s left out as Omi does."""
    memory_id = derive.memory_id(content)
    body: dict[str, Any] = {
        "id": memory_id,
        "uid": uid,
        "content": content,
        "category": category,
        "visibility": "private",
        "tags": tags,
        "created_at": None,
        "updated_at": None,
        "memory_id": memory_id,
        "reviewed": manual,
        "manually_added": manual,
        "edited": False,
        "scoring": None,
        "app_id": app_id,
        "data_protection_level": "standard",
        "is_locked": False,
        "kg_extracted": False,
    }
    if manual:
        body["user_review"] = True
    return {key: value for key, value in body.items() if value is not None or key in _STAMPED}


_STAMPED = ("created_at", "updated_at", "scoring")


async def _admin_body(request: web.Request, model: type[Any], *, empty_ok: bool = False) -> Any:
    body = await read_body(request)
    payload, errors = validate_body(model, {} if body is None and empty_ok else body)
    if errors:
        raise BodyRejected(validation_response(errors))
    return payload


def admin_route(
    handler: Callable[[web.Request], Awaitable[web.Response]],
) -> Callable[[web.Request], Awaitable[web.Response]]:
    """An admin handler: loopback clients only (it mints keys and sees every user's data), misuse in plain words
    (bad body → 422 list, unknown app → 404, bad value → 400).

    A wrapper rather than a path-prefix middleware, so the check holds wherever `web_app` is mounted.
    """

    async def run(request: web.Request) -> web.Response:
        if not _is_loopback(request.remote):
            return _detail(403, "The sandbox admin routes answer loopback clients only")
        try:
            return await handler(request)
        except BodyRejected as exc:
            return exc.response
        except LookupError:
            return _detail(404, NOT_FOUND_DETAIL)
        except ValueError as exc:
            return _detail(400, str(exc))

    return run


def _date_bounds(start: str | None, end: str | None) -> tuple[datetime | None, datetime | None] | web.Response:
    try:
        start_at = parse_date_filter(start, end=False)
    except ValueError:
        return _detail(400, bad_date_detail("start_date"))
    try:
        end_at = parse_date_filter(end, end=True)
    except ValueError:
        return _detail(400, bad_date_detail("end_date"))
    return start_at, end_at


def _matches(conversation: dict[str, Any], words: list[str]) -> bool:
    if not words:
        return True
    structured = conversation.get("structured") or {}
    external = conversation.get("external_data") or {}
    haystack = " ".join(
        str(part or "") for part in (structured.get("title"), structured.get("overview"), external.get("text"))
    ).lower()
    return all(word in haystack for word in words)


def _default_fault_detail(route: str, status: int, retry_after: float | None) -> str:
    if status == HTTPStatus.TOO_MANY_REQUESTS:
        if route == "notification":
            return "Rate limit exceeded. Maximum 10 notifications per hour."
        if retry_after is not None:
            return f"Rate limit exceeded. Try again in {math.ceil(retry_after)}s."
        return "Rate limit exceeded."
    if status == HTTPStatus.INTERNAL_SERVER_ERROR and route == "create_conversation":
        return "Error processing conversation, please try again later"
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def _dropped(request: web.Request) -> web.Response:
    """Close the connection without an answer; aiohttp then skips writing the (unused) response quietly."""
    if request.transport is not None:
        request.transport.abort()
    return web.Response(status=HTTPStatus.INTERNAL_SERVER_ERROR)


async def _setup_completed(url: str, uid: str) -> bool:
    """Omi's enable check: `GET {url}{?|&}uid=` must answer 200 and a JSON object with a truthy `is_setup_completed`."""
    separator = "&" if "?" in url else "?"
    try:
        async with httpx.AsyncClient(timeout=SETUP_CHECK_TIMEOUT_SECONDS, trust_env=False) as client:
            response = await client.get(f"{url}{separator}uid={uid}")
        body = response.json() if response.status_code == HTTPStatus.OK else None
    except (httpx.HTTPError, ValueError):
        return False
    return isinstance(body, dict) and bool(body.get("is_setup_completed"))
