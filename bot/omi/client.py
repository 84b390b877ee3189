"""Async client for Omi's integration (Data Import) API: one shared httpx pool, typed errors."""

from __future__ import annotations

import email.utils
import logging
import re
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar

import httpx
from pydantic import BaseModel, SecretStr, ValidationError

from bot.omi.errors import (
    READBACK_UNAVAILABLE,
    ForbiddenReason,
    OmiError,
    OmiForbidden,
    OmiNotFound,
    OmiRateLimited,
    OmiServerError,
    OmiUnauthorized,
    OmiUnavailable,
    OmiUnknownOutcome,
    OmiValidationError,
    forbidden_reason,
    rate_limit_scope,
)
from bot.omi.models import Conversation, Memory, NewConversation, NewMemories, SearchPage, utc_query
from bot.omi.pacing import RequestPacer

log = logging.getLogger(__name__)

#: Omi's server gives up on a create after 120 s (504); wait longer than that so its answer reaches us.
CREATE_TIMEOUT_SECONDS = 150.0
READ_TIMEOUT_SECONDS = 30.0
CONNECT_TIMEOUT_SECONDS = 10.0

#: Called after every request with (route, status or failure kind, seconds): the metrics hook.
RequestObserver = Callable[[str, str, float], None]

ItemT = TypeVar("ItemT", bound=BaseModel)

_TRY_AGAIN_IN = re.compile(r"Try again in (\d+)s")


_MAXIMUM = re.compile(r"Maximum (\d+) ")


def parse_limit(response: httpx.Response) -> int | None:
    """How many creates a 429's window allows: `X-RateLimit-Limit` (FastAPI), else the staged implementation's
    text `Rate limit exceeded. Maximum N requests per hour.`; None when neither says."""
    header = response.headers.get("x-ratelimit-limit", "")
    found = header if header.strip().isdigit() else None
    if found is None and (match := _MAXIMUM.search(response.text)):
        found = match.group(1)
    return int(found) if found is not None and int(found) > 0 else None


def parse_retry_after(response: httpx.Response) -> float | None:
    """Seconds from `Retry-After` (delta or HTTP date), else from the 429 text, else None."""
    header = response.headers.get("retry-after")
    if header:
        header = header.strip()
        try:
            return max(0.0, float(header))
        except ValueError:
            try:
                parsed = email.utils.parsedate_to_datetime(header)
            except (TypeError, ValueError):  # neither seconds nor an HTTP date: fall back to the text
                parsed = None
            if parsed is not None:
                if parsed.tzinfo is None:
                    parsed = parsed.replace(tzinfo=UTC)
                return max(0.0, (parsed - datetime.now(UTC)).total_seconds())
    match = _TRY_AGAIN_IN.search(response.text or "")
    return float(match.group(1)) if match else None


def _body(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


def _detail(body: Any, response: httpx.Response) -> Any:
    if body is None:
        return response.text[:500] or None
    if isinstance(body, dict):
        # Omi's FastAPI server says `detail`; the staged implementation's infrastructure errors say `error`.
        return body.get("detail", body.get("error", body))
    return body


def _error_for(response: httpx.Response, route: str) -> OmiError:
    """The one place an Omi status becomes an exception type."""
    status = response.status_code
    body = _body(response)
    detail = _detail(body, response)
    text = detail if isinstance(detail, str) else f"HTTP {status}"
    kwargs: dict[str, Any] = {"status": status, "detail": detail, "route": route}
    if status in (400, 422):
        if isinstance(detail, list):
            text = (
                "; ".join(
                    f"{'.'.join(str(p) for p in item.get('loc', ()))}: {item.get('msg', '')}"
                    for item in detail
                    if isinstance(item, dict)
                )
                or "validation error"
            )
        return OmiValidationError(text, **kwargs)
    if status == 401:
        return OmiUnauthorized(text, **kwargs)
    if status == 403:
        return OmiForbidden(text, reason=forbidden_reason(detail), **kwargs)
    if status == 404:
        return OmiNotFound(text, **kwargs)
    if status == 429:
        scope = rate_limit_scope(body)
        return OmiRateLimited(
            text, retry_after=parse_retry_after(response), scope=scope, limit=parse_limit(response), **kwargs
        )
    if status == 504:
        return OmiUnknownOutcome("Omi timed out (504); the write may still happen", **kwargs)
    if status == 503 and detail == READBACK_UNAVAILABLE:
        return OmiUnknownOutcome("Omi stored the write but could not read it back (503)", **kwargs)
    if status >= 500:
        return OmiServerError(text if isinstance(detail, str) else f"Omi server error {status}", **kwargs)
    return OmiError(text, **kwargs)


class OmiClient:
    """One integration app's view of Omi. Every method raises a subclass of `OmiError` on failure."""

    def __init__(
        self,
        base_url: str,
        app_id: str,
        api_key: SecretStr | str,
        *,
        max_connections: int = 64,
        create_timeout: float = CREATE_TIMEOUT_SECONDS,
        read_timeout: float = READ_TIMEOUT_SECONDS,
        observer: RequestObserver | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        pacer: RequestPacer | None = None,
    ) -> None:
        self.app_id = app_id
        self._pacer = pacer
        self.pacer = pacer  # shared with other instances once the database is open (bot/runtime.py)
        self._api_key = api_key if isinstance(api_key, SecretStr) else SecretStr(api_key)
        self._create_timeout = httpx.Timeout(create_timeout, connect=CONNECT_TIMEOUT_SECONDS)
        self._read_timeout = httpx.Timeout(read_timeout, connect=CONNECT_TIMEOUT_SECONDS)
        self._observer = observer
        self._http = httpx.AsyncClient(
            base_url=base_url.rstrip("/"),
            limits=httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections),
            transport=transport,
            trust_env=False,
            headers={"User-Agent": "omi-bridge"},
        )

    def __repr__(self) -> str:
        return f"OmiClient(base_url={str(self._http.base_url)!r}, app_id={self.app_id!r})"

    @property
    def base_url(self) -> str:
        return str(self._http.base_url)

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> OmiClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # --- writes -----------------------------------------------------------------------------------

    async def create_conversation(self, uid: str, conversation: NewConversation) -> None:
        await self._request(
            "POST",
            f"/v2/integrations/{self.app_id}/user/conversations",
            route="create_conversation",
            params={"uid": uid},
            json=conversation.body(),
            timeout=self._create_timeout,
        )

    async def create_memories(self, uid: str, memories: NewMemories) -> None:
        await self._request(
            "POST",
            f"/v2/integrations/{self.app_id}/user/memories",
            route="create_memories",
            params={"uid": uid},
            json=memories.body(),
            timeout=self._create_timeout,
        )

    async def send_notification(self, uid: str, message: str) -> None:
        await self._request(
            "POST",
            f"/v2/integrations/{self.app_id}/notification",
            route="notification",
            params={"uid": uid, "message": message},
            timeout=self._read_timeout,
        )

    # --- reads ------------------------------------------------------------------------------------

    async def read_conversations(
        self,
        uid: str,
        *,
        limit: int = 100,
        offset: int = 0,
        include_discarded: bool = False,
        statuses: Sequence[str] = (),
        start_date: datetime | None = None,
        end_date: datetime | None = None,
    ) -> list[Conversation]:
        # A list of pairs, so `statuses` goes out as a repeated key, as the server's List[str] expects.
        params: list[tuple[str, str]] = [
            ("uid", uid),
            ("limit", str(limit)),
            ("offset", str(offset)),
            ("include_discarded", "true" if include_discarded else "false"),
        ]
        params += [("statuses", status) for status in statuses]
        if start_date is not None:
            params.append(("start_date", utc_query(start_date)))
        if end_date is not None:
            params.append(("end_date", utc_query(end_date)))
        body = await self._request(
            "GET",
            f"/v2/integrations/{self.app_id}/conversations",
            route="read_conversations",
            params=params,
            timeout=self._read_timeout,
        )
        return _parse(Conversation, _items(body, "conversations"), route="read_conversations")

    async def read_memories(self, uid: str, *, limit: int = 100, offset: int = 0) -> list[Memory]:
        body = await self._request(
            "GET",
            f"/v2/integrations/{self.app_id}/memories",
            route="read_memories",
            params={"uid": uid, "limit": str(limit), "offset": str(offset)},
            timeout=self._read_timeout,
        )
        return _parse(Memory, _items(body, "memories"), route="read_memories")

    async def search_conversations(
        self,
        uid: str,
        query: str,
        *,
        page: int = 1,
        per_page: int = 10,
        include_discarded: bool = True,
        start_date: datetime | None = None,
        end_date: datetime | None = None,
    ) -> SearchPage:
        payload: dict[str, Any] = {
            "query": query,
            "page": page,
            "per_page": per_page,
            "include_discarded": include_discarded,
        }
        if start_date is not None:
            payload["start_date"] = utc_query(start_date)
        if end_date is not None:
            payload["end_date"] = utc_query(end_date)
        body = await self._request(
            "POST",
            f"/v2/integrations/{self.app_id}/search/conversations",
            route="search_conversations",
            params={"uid": uid},
            json=payload,
            timeout=self._read_timeout,
        )
        body = body if isinstance(body, dict) else {}
        try:
            result = SearchPage.model_validate({**body, "conversations": []})
        except ValidationError:
            raise OmiServerError(
                "Omi answered 200 with a search page that does not parse", route="search_conversations"
            ) from None
        result.conversations = _parse(Conversation, _items(body, "conversations"), route="search_conversations")
        return result

    # --- transport ----------------------------------------------------------------------------------

    async def _request(
        self,
        method: str,
        path: str,
        *,
        route: str,
        params: Any,
        timeout: httpx.Timeout,
        json: Any = None,
    ) -> Any:
        if self._pacer is not None:
            await self._pacer.wait()
        headers = {"Authorization": f"Bearer {self._api_key.get_secret_value()}"}
        started = time.perf_counter()
        outcome = "error"
        try:
            try:
                response = await self._http.request(
                    method, path, params=params, json=json, headers=headers, timeout=timeout
                )
            except (
                httpx.ConnectError,
                httpx.ConnectTimeout,
                httpx.PoolTimeout,
                httpx.UnsupportedProtocol,
                httpx.LocalProtocolError,  # e.g. an empty key makes an illegal header: nothing was sent
            ) as exc:
                outcome = "unreachable"
                raise OmiUnavailable(f"Omi unreachable ({type(exc).__name__})", route=route) from None
            except httpx.TimeoutException as exc:
                outcome = "timeout"
                raise OmiUnknownOutcome(
                    f"no answer from Omi in time ({type(exc).__name__}); the write may still happen", route=route
                ) from None
            except httpx.TransportError as exc:
                outcome = "disconnected"
                raise OmiUnknownOutcome(
                    f"connection to Omi lost after sending ({type(exc).__name__})", route=route
                ) from None
            outcome = str(response.status_code)
            log.debug("omi %s -> %s", route, response.status_code)
            if response.status_code == 200:
                if not response.content:
                    return {}
                try:
                    return response.json()
                except ValueError:
                    raise OmiServerError("Omi answered 200 with a body that is not JSON", route=route) from None
            raise _error_for(response, route)
        finally:
            if self._observer is not None:
                self._observer(route, outcome, time.perf_counter() - started)


def _parse(model: type[ItemT], items: list[dict[str, Any]], *, route: str) -> list[ItemT]:
    """Like Omi itself, skip an item that does not parse rather than fail the whole read."""
    parsed: list[ItemT] = []
    for item in items:
        try:
            parsed.append(model.model_validate(item))
        except ValidationError:
            log.warning("omi %s: skipped an item that does not parse", route)
    return parsed


def _items(body: Any, key: str) -> list[Any]:
    if isinstance(body, dict) and isinstance(body.get(key), list):
        return [item for item in body[key] if isinstance(item, dict)]
    return []


__all__ = [
    "CREATE_TIMEOUT_SECONDS",
    "ForbiddenReason",
    "OmiClient",
    "OmiError",
    "OmiForbidden",
    "OmiNotFound",
    "OmiRateLimited",
    "OmiServerError",
    "OmiUnauthorized",
    "OmiUnavailable",
    "OmiUnknownOutcome",
    "OmiValidationError",
]
