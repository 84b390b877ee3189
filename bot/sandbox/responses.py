"""Omi's integration routes over HTTP: one wrapper runs the shared prelude, each handler only its route's own work.

The wrapper, for every route: an injected fault (before anything, or after the work for `after_write` ones), the
load balancer's cap per key, the flavor's validation (422 before auth), Omi's check order (`checks.CheckOrder`),
then the handler; an `OmiError` raised anywhere becomes its answer; every request goes to the request log.
"""

from __future__ import annotations

import asyncio
import logging
import math
import uuid
from collections import deque
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from http import HTTPStatus
from typing import Any

from aiohttp import web

from bot.sandbox import derive, records
from bot.sandbox.apps import AppRegistry
from bot.sandbox.checks import CheckOrder
from bot.sandbox.exceptions import EMPTY_MEMORIES_DETAIL, OmiError
from bot.sandbox.faults import Fault, FaultBook, fault_response
from bot.sandbox.flavors import Flavor
from bot.sandbox.limits import RateLimits
from bot.sandbox.store import SandboxStore
from bot.sandbox.validation import BodyRejected, Call, json_response

log = logging.getLogger("bot.sandbox")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
#: Called with (uid, conversation) after a create stored it: Omi's `trigger_external_integrations` (which only
#: starts the webhook deliveries: the create's answer never waits for them).
ConversationCreated = Callable[[str, records.Record], None]


class IntegrationRoutes:
    """The six integration handlers of one sandbox, each behind `route()`."""

    def __init__(
        self,
        *,
        store: SandboxStore,
        apps: AppRegistry,
        limits: RateLimits,
        faults: FaultBook,
        flavor: Flavor,
        clock: Callable[[], float],
        request_log: deque[dict[str, Any]],
        on_notification: Callable[[dict[str, Any]], None],
        on_conversation: ConversationCreated,
    ) -> None:
        self._store = store
        self._limits = limits
        self._faults = faults
        self._flavor = flavor
        self._clock = clock
        self._request_log = request_log
        self._on_notification = on_notification
        self._on_conversation = on_conversation
        self._checks = CheckOrder(
            apps,
            limits,
            flavor.guards,
            early_create_limits=flavor.early_create_limits,
            notification_off_by_one=flavor.notification_off_by_one,
        )

    def handlers(self) -> dict[str, Handler]:
        """Route name → aiohttp handler, every one wrapped by `route()`."""
        own_work: dict[str, Callable[[Call], Awaitable[web.Response]]] = {
            "create_conversation": self._create_conversation,
            "create_memories": self._create_memories,
            "read_conversations": self._read_conversations,
            "read_memories": self._read_memories,
            "notification": self._notification,
            "search_conversations": self._search,
        }
        return {name: self.route(name, handler) for name, handler in own_work.items()}

    # --- the shared prelude -----------------------------------------------------------------------------------

    def route(self, name: str, handler: Callable[[Call], Awaitable[web.Response]]) -> Handler:
        async def serve(request: web.Request) -> web.StreamResponse:
            fault = self._faults.take(name)
            if fault is not None and fault.delay > 0:
                await asyncio.sleep(fault.delay)
            response: web.Response | None
            if fault is not None and fault.answers and not fault.after_write:
                response = self._fault_answer(fault)
            else:
                response = await self._answer(name, handler, request)
                if fault is not None and fault.after_write:
                    response = self._fault_answer(fault)
            status = None if response is None else response.status
            self._request_log.append(
                {
                    "route": name,
                    "method": request.method,
                    "uid": request.query.get("uid"),
                    "status": status,
                    "at": self._clock(),
                }
            )
            log.debug("sandbox %s %s -> %s", request.method, name, status)
            return _dropped(request) if response is None else response

        return serve

    async def _answer(
        self, name: str, handler: Callable[[Call], Awaitable[web.Response]], request: web.Request
    ) -> web.Response:
        authorization = request.headers.get("Authorization")
        try:
            self._limits.count_key_minute(authorization)
            call = await self._flavor.validate(name, request)
            self._checks.authorize(call, authorization)
            response = await handler(call)
        except BodyRejected as exc:
            return exc.response
        except OmiError as exc:
            return exc.response()
        response.headers.update(call.headers)
        return response

    def _fault_answer(self, fault: Fault) -> web.Response | None:
        if fault.drop:
            return None
        policy = self._flavor.guards[fault.route].rate_policy
        limit = self._limits.limit(policy) if policy else 0
        return fault_response(fault, plain_infrastructure_errors=self._flavor.plain_infrastructure_errors, limit=limit)

    # --- each route's own work --------------------------------------------------------------------------------

    async def _create_conversation(self, call: Call) -> web.Response:
        created_us, item = self._flavor.build_conversation(call.app_id, call.payload, self._now())
        self._store.add_conversation(call.uid, created_us, item)
        self._on_conversation(call.uid, item)
        return json_response({})

    async def _create_memories(self, call: Call) -> web.Response:
        payload = call.payload
        has_text = bool(payload.text and payload.text.strip())
        if not has_text and not payload.memories:
            raise OmiError(422, EMPTY_MEMORIES_DETAIL)

        def body(content: str, tags: list[str], category: str) -> records.Record:
            memory_id = None if self._flavor.content_hash_memory_ids else str(uuid.uuid4())
            return records.memory_body(
                call.uid, content, tags, category=category, app_id=call.app_id, memory_id=memory_id
            )

        bodies = [body(item.content, item.tags or [], "system") for item in payload.memories or []]
        # `source_id` is provenance only: every call extracts again (§9.2); only identical content collapses.
        if has_text:
            bodies += [body(content, [], "interesting") for content in derive.extract_memories(payload.text)]
        records.put_memories(self._store, call.uid, bodies, self._now())
        return json_response({})

    async def _read_conversations(self, call: Call) -> web.Response:
        query = call.query
        start, end = records.date_bounds(query["start_date"], query["end_date"])
        conversations = self._store.conversations(
            call.uid,
            include_discarded=query["include_discarded"],
            statuses=query["statuses"],
            start_us=None if start is None else records.micros(start),
            end_us=None if end is None else records.micros(end),
            limit=query["limit"],
            offset=query["offset"],
        )
        segments = query["max_transcript_segments"]
        return json_response({"conversations": [records.for_read(c, segments) for c in conversations]})

    async def _read_memories(self, call: Call) -> web.Response:
        memories = self._store.memories(
            call.uid,
            limit=call.query["limit"],
            offset=call.query["offset"],
            newest_updated_first=self._flavor.memories_newest_updated_first,
        )
        return json_response({"memories": memories})

    async def _search(self, call: Call) -> web.Response:
        payload = call.payload
        start, end = records.date_bounds(payload.start_date, payload.end_date)
        # Omi's search index keeps whole seconds: compare at that precision.
        start_us = None if start is None else int(start.timestamp()) * 1_000_000
        end_us = None if end is None else int(end.timestamp()) * 1_000_000 + 999_999
        page = max(1, payload.page or 1)
        per_page = max(1, payload.per_page or 10)
        include_discarded = True if payload.include_discarded is None else payload.include_discarded
        words = [word.lower() for word in payload.query.split() if word != "*"]
        found = self._store.conversations(
            call.uid,
            include_discarded=include_discarded,
            statuses=getattr(payload, "statuses", None) or (),
            start_us=start_us,
            end_us=end_us,
        )
        matches = [
            records.for_read(c, call.query["max_transcript_segments"]) for c in found if records.matches(c, words)
        ]
        return json_response(
            {
                "conversations": matches[(page - 1) * per_page : page * per_page],
                "total_pages": math.ceil(len(matches) / per_page),
                "current_page": page,
                "per_page": per_page,
            }
        )

    async def _notification(self, call: Call) -> web.Response:
        now = self._clock()
        message = call.query["message"]
        self._store.add_notification(call.app_id, call.uid, message, now)
        stamp = records.iso_utc(datetime.fromtimestamp(now, UTC))
        self._on_notification({"app_id": call.app_id, "uid": call.uid, "message": message, "created_at": stamp})
        return json_response({"status": "Ok"})

    def _now(self) -> datetime:
        return datetime.fromtimestamp(self._clock(), UTC)


@web.middleware
async def fastapi_not_found(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Unknown paths and wrong methods answer as FastAPI does (JSON `detail`), e.g. the removed `/user/facts`."""
    try:
        return await handler(request)
    except web.HTTPMethodNotAllowed as exc:
        return json_response({"detail": "Method Not Allowed"}, 405, {"Allow": ", ".join(sorted(exc.allowed_methods))})
    except web.HTTPNotFound:
        return json_response({"detail": "Not Found"}, 404)


def _dropped(request: web.Request) -> web.Response:
    """Close the connection without an answer; aiohttp then skips writing the (unused) response quietly."""
    if request.transport is not None:
        request.transport.abort()
    return web.Response(status=HTTPStatus.INTERNAL_SERVER_ERROR)
