"""The two Omi implementations the sandbox can imitate: the FastAPI server, and the staged "API core" (§9.6)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from aiohttp import web

from bot.sandbox import records
from bot.sandbox.api_core import validate_api_core
from bot.sandbox.checks import API_CORE_GUARDS, FASTAPI_GUARDS, Guard
from bot.sandbox.validation import Call, validate_fastapi


@dataclass(frozen=True)
class Flavor:
    """What differs between the implementations; everything else (routes, check order, shapes) is shared."""

    name: str
    guards: dict[str, Guard]
    validate: Callable[[str, web.Request], Awaitable[Call]]
    build_conversation: Callable[[str, Any, datetime], tuple[int, records.Record]]
    #: FastAPI limits creates right after the key check and counts every request that got that far.
    early_create_limits: bool
    #: FastAPI's notification counter starts at 1 before it is incremented: one send fewer than its maximum passes.
    notification_off_by_one: bool
    notifications_per_hour: int
    #: API core answers its 5xx as `{"error": …}`.
    plain_infrastructure_errors: bool
    content_hash_memory_ids: bool
    memories_newest_updated_first: bool


FASTAPI = Flavor(
    name="fastapi",
    guards=FASTAPI_GUARDS,
    validate=validate_fastapi,
    build_conversation=records.fastapi_conversation,
    early_create_limits=True,
    notification_off_by_one=True,
    notifications_per_hour=9,
    plain_infrastructure_errors=False,
    content_hash_memory_ids=True,
    memories_newest_updated_first=False,
)

API_CORE = Flavor(
    name="api-core",
    guards=API_CORE_GUARDS,
    validate=validate_api_core,
    build_conversation=records.api_core_conversation,
    early_create_limits=False,
    notification_off_by_one=False,
    notifications_per_hour=10,
    plain_infrastructure_errors=True,
    content_hash_memory_ids=False,
    memories_newest_updated_first=True,
)

FLAVORS: dict[str, Flavor] = {flavor.name: flavor for flavor in (FASTAPI, API_CORE)}


def flavor_named(name: str) -> Flavor:
    try:
        return FLAVORS[name]
    except KeyError:
        raise ValueError(f"unknown sandbox flavor {name!r}; flavors: {', '.join(FLAVORS)}") from None
