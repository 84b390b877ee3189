"""The loopback-only `/_sandbox/` admin routes: apps, keys, users, testers, webhooks, faults, limits and listings.

Each handler is a thin HTTP face of one `Sandbox` method; `admin_route` guards them all and turns misuse into plain
answers (bad body → 422 list, unknown app → 404, bad value → 400).
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
from collections.abc import Awaitable, Callable, Iterable
from datetime import datetime
from typing import Any, Protocol

from aiohttp import web
from pydantic import AliasChoices, BaseModel, Field

from bot.sandbox.apps import ALL_CAPABILITIES, SandboxApp
from bot.sandbox.exceptions import NOT_FOUND_DETAIL, SETUP_NOT_COMPLETED_DETAIL, detail_response
from bot.sandbox.faults import Fault
from bot.sandbox.urls import ADMIN_PATHS
from bot.sandbox.validation import UID_QUERY, BodyRejected, json_response, read_body, validate_body, validate_query

AdminHandler = Callable[[web.Request], Awaitable[web.Response]]

#: The longest `GET /_sandbox/webhook-deliveries?wait=1` waits for the deliveries in flight.
DELIVERIES_WAIT_SECONDS = 30.0


class SandboxAdmin(Protocol):
    """What the admin routes need of the sandbox (its public Python API)."""

    def create_app(
        self,
        name: str = ...,
        capabilities: Iterable[str] = ...,
        setup_completed_url: str | None = ...,
        *,
        private: bool = ...,
        owner: str | None = ...,
        webhook_url: str | None = ...,
    ) -> SandboxApp: ...
    def delete_app(self, app_id: str) -> None: ...
    def mint_key(self, app_id: str) -> str: ...
    def set_capabilities(self, app_id: str, capabilities: Iterable[str]) -> None: ...
    def app_capabilities(self, app_id: str) -> list[str]: ...
    async def enable_checked(self, app_id: str, uid: str) -> bool: ...
    def disable(self, app_id: str, uid: str) -> None: ...
    def add_tester(self, app_id: str, uid: str) -> None: ...
    def remove_tester(self, app_id: str, uid: str) -> None: ...
    def set_webhook(self, app_id: str, url: str | None) -> None: ...
    def set_setup_completed_url(self, app_id: str, url: str | None) -> None: ...
    async def device_conversation(
        self,
        app_id: str,
        uid: str,
        text: str,
        *,
        started_at: datetime | None = ...,
        finished_at: datetime | None = ...,
        language: str = ...,
        deliveries: int = ...,
    ) -> dict[str, Any]: ...
    def add_fault(self, route: str, **fields: Any) -> Fault: ...
    def clear_faults(self) -> None: ...
    def set_limits(self, **limits: int | None) -> dict[str, int]: ...
    def notifications(self, uid: str | None = ...) -> list[dict[str, Any]]: ...
    def conversations(self, uid: str) -> list[dict[str, Any]]: ...
    def memories(self, uid: str) -> list[dict[str, Any]]: ...
    def add_manual_memory(
        self, uid: str, content: str, tags: Iterable[str] = ..., *, manually_added: bool = ...
    ) -> dict[str, Any]: ...
    def requests(self) -> list[dict[str, Any]]: ...
    def webhook_deliveries(self) -> list[dict[str, Any]]: ...
    async def webhooks_idle(self) -> None: ...


# --- request bodies ----------------------------------------------------------------------------------------------


class AdminAppIn(BaseModel):
    name: str = "omi-bridge"
    capabilities: list[str] = Field(default_factory=lambda: list(ALL_CAPABILITIES))
    setup_completed_url: str | None = None
    private: bool = False
    owner: str | None = None
    webhook_url: str | None = None


class AdminCapabilitiesIn(BaseModel):
    capabilities: list[str]


class AdminUidIn(BaseModel):
    uid: str


class AdminWebhookIn(BaseModel):
    url: str | None = Field(validation_alias=AliasChoices("url", "webhook_url"))  # required; null removes it


class AdminSetupUrlIn(BaseModel):
    setup_completed_url: str | None


class AdminDeviceConversationIn(BaseModel):
    text: str | None = None  # missing or blank: 400 (from `device_conversation`)
    started_at: datetime | None = None
    finished_at: datetime | None = None
    language: str = "en"
    deliveries: int = Field(default=1, ge=1, le=10)


class AdminFaultIn(BaseModel):
    route: str
    status: int | None = None
    detail: Any = None
    delay: float = 0.0
    drop: bool = False
    after_write: bool = False
    retry_after: float | None = None
    times: int | None = 1
    kind: str | None = None
    body: Any = None


class AdminLimitsIn(BaseModel):
    conversations_per_hour: int | None = Field(default=None, ge=0)
    memories_per_hour: int | None = Field(default=None, ge=0)
    notifications_per_hour: int | None = Field(default=None, ge=0)
    requests_per_minute: int | None = Field(default=None, ge=0)


class AdminMemoryIn(BaseModel):
    uid: str
    content: str
    tags: list[str] = Field(default_factory=list)
    manually_added: bool = True


# --- the guard ---------------------------------------------------------------------------------------------------


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


def admin_route(handler: AdminHandler) -> AdminHandler:
    """An admin handler: loopback clients only (it mints keys and sees every user's data), misuse in plain words.

    A wrapper rather than a path-prefix middleware, so the check holds wherever `web_app` is mounted.
    """

    async def run(request: web.Request) -> web.Response:
        if not _is_loopback(request.remote):
            return detail_response(403, "The sandbox admin routes answer loopback clients only")
        try:
            return await handler(request)
        except BodyRejected as exc:
            return exc.response
        except LookupError:
            return detail_response(404, NOT_FOUND_DETAIL)
        except ValueError as exc:
            return detail_response(400, str(exc))

    return run


async def _body(request: web.Request, model: type[Any], *, empty_ok: bool = False) -> Any:
    body = await read_body(request)
    payload, errors = validate_body(model, {} if body is None and empty_ok else body)
    if errors:
        raise BodyRejected(json_response({"detail": errors}, 422))
    return payload


def _uid_query(request: web.Request) -> str:
    query, errors = validate_query(request.query, UID_QUERY)
    if errors:
        raise BodyRejected(json_response({"detail": errors}, 422))
    return str(query["uid"])


# --- the handlers ------------------------------------------------------------------------------------------------


class AdminRoutes:
    """The admin handlers of one sandbox, by the names in `urls.ADMIN_PATHS`."""

    def __init__(self, sandbox: SandboxAdmin) -> None:
        self._sandbox = sandbox

    def handlers(self) -> dict[str, AdminHandler]:
        return {name: admin_route(getattr(self, f"_{name}")) for name in ADMIN_PATHS}

    async def _create_app(self, request: web.Request) -> web.Response:
        payload = await _body(request, AdminAppIn, empty_ok=True)
        app = self._sandbox.create_app(
            payload.name,
            payload.capabilities,
            payload.setup_completed_url,
            private=payload.private,
            owner=payload.owner,
            webhook_url=payload.webhook_url,
        )
        return json_response({"app_id": app.app_id, "api_key": app.api_key})

    async def _delete_app(self, request: web.Request) -> web.Response:
        self._sandbox.delete_app(request.match_info["app_id"])
        return json_response({})

    async def _mint_key(self, request: web.Request) -> web.Response:
        return json_response({"api_key": self._sandbox.mint_key(request.match_info["app_id"])})

    async def _capabilities(self, request: web.Request) -> web.Response:
        payload = await _body(request, AdminCapabilitiesIn)
        app_id = request.match_info["app_id"]
        self._sandbox.set_capabilities(app_id, payload.capabilities)
        return json_response({"app_id": app_id, "capabilities": self._sandbox.app_capabilities(app_id)})

    async def _enable(self, request: web.Request) -> web.Response:
        payload = await _body(request, AdminUidIn)
        if await self._sandbox.enable_checked(request.match_info["app_id"], payload.uid):
            return json_response({})
        return detail_response(400, SETUP_NOT_COMPLETED_DETAIL)

    async def _disable(self, request: web.Request) -> web.Response:
        payload = await _body(request, AdminUidIn)
        self._sandbox.disable(request.match_info["app_id"], payload.uid)
        return json_response({})

    async def _add_tester(self, request: web.Request) -> web.Response:
        payload = await _body(request, AdminUidIn)
        self._sandbox.add_tester(request.match_info["app_id"], payload.uid)
        return json_response({})

    async def _remove_tester(self, request: web.Request) -> web.Response:
        payload = await _body(request, AdminUidIn)
        self._sandbox.remove_tester(request.match_info["app_id"], payload.uid)
        return json_response({})

    async def _webhook(self, request: web.Request) -> web.Response:
        payload = await _body(request, AdminWebhookIn)
        app_id = request.match_info["app_id"]
        self._sandbox.set_webhook(app_id, payload.url)
        return json_response({"app_id": app_id, "url": payload.url})

    async def _setup_completed_url(self, request: web.Request) -> web.Response:
        payload = await _body(request, AdminSetupUrlIn)
        self._sandbox.set_setup_completed_url(request.match_info["app_id"], payload.setup_completed_url)
        return json_response({})

    async def _device_conversation(self, request: web.Request) -> web.Response:
        uid = _uid_query(request)
        payload = await _body(request, AdminDeviceConversationIn)
        conversation = await self._sandbox.device_conversation(
            request.match_info["app_id"],
            uid,
            payload.text or "",
            started_at=payload.started_at,
            finished_at=payload.finished_at,
            language=payload.language,
            deliveries=payload.deliveries,
        )
        return json_response(conversation)

    async def _add_fault(self, request: web.Request) -> web.Response:
        fields = (await _body(request, AdminFaultIn)).model_dump()
        self._sandbox.add_fault(fields.pop("route"), **fields)
        return json_response({})

    async def _clear_faults(self, request: web.Request) -> web.Response:
        self._sandbox.clear_faults()
        return json_response({})

    async def _limits(self, request: web.Request) -> web.Response:
        payload = await _body(request, AdminLimitsIn, empty_ok=True)
        return json_response(self._sandbox.set_limits(**payload.model_dump()))

    async def _notifications(self, request: web.Request) -> web.Response:
        return json_response({"notifications": self._sandbox.notifications(request.query.get("uid"))})

    async def _conversations(self, request: web.Request) -> web.Response:
        return json_response({"conversations": self._sandbox.conversations(_uid_query(request))})

    async def _memories(self, request: web.Request) -> web.Response:
        return json_response({"memories": self._sandbox.memories(_uid_query(request))})

    async def _add_memory(self, request: web.Request) -> web.Response:
        payload = await _body(request, AdminMemoryIn)
        memory = self._sandbox.add_manual_memory(
            payload.uid, payload.content, payload.tags, manually_added=payload.manually_added
        )
        return json_response(memory)

    async def _requests(self, request: web.Request) -> web.Response:
        return json_response({"requests": self._sandbox.requests()})

    async def _webhook_deliveries(self, request: web.Request) -> web.Response:
        """Every attempt so far; `?wait=1` first waits (at most `DELIVERIES_WAIT_SECONDS`) for those in flight."""
        if request.query.get("wait", "").lower() in ("1", "true", "yes"):
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._sandbox.webhooks_idle(), DELIVERIES_WAIT_SECONDS)
        return json_response({"deliveries": self._sandbox.webhook_deliveries()})
