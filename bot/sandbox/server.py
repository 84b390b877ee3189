"""The Omi sandbox's lifecycle and public API: `Sandbox`, an aiohttp server answering like Omi's integration API.

How it is put together (moto's layout): `store` keeps state in SQLite; `apps` holds apps, keys and users; `checks`
runs Omi's order of checks; `limits` and `faults` misbehave on purpose; `records` builds what Omi stores; `flavors`
says what differs between Omi's FastAPI server and the staged API core; `responses` serves the integration routes
behind one wrapper, `admin` the loopback-only `/_sandbox/` routes; `webhooks` is what Omi sends to apps.
"""

from __future__ import annotations

import logging
import os
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from bot.sandbox import records, webhooks
from bot.sandbox.admin import AdminRoutes
from bot.sandbox.apps import ALL_CAPABILITIES, AppRegistry, SandboxApp
from bot.sandbox.faults import Fault, FaultBook, make_fault
from bot.sandbox.flavors import Flavor, flavor_named
from bot.sandbox.limits import RateLimits
from bot.sandbox.responses import IntegrationRoutes, fastapi_not_found
from bot.sandbox.store import SandboxStore
from bot.sandbox.urls import ADMIN_PATHS, INTEGRATION_PATHS

log = logging.getLogger("bot.sandbox")

REQUEST_LOG_SIZE = 100_000
MAX_BODY_BYTES = 64 * 1024**2


class Sandbox:
    """Omi's integration API on 127.0.0.1, backed by SQLite (SPEC §8).

    `flavor` is "fastapi" (Omi's server today) or "api-core" (the staged second implementation, §9.6).
    `notifications_per_hour` is how many notifications pass per clock hour: by default 9 on FastAPI (its off-by-one
    under a maximum of 10) and 10 on API core. 0 turns any limit off. `webhook_retry_delays` are the seconds
    between the tries of a webhook delivery that met a connection error or a 5xx (three tries by default).
    """

    def __init__(
        self,
        db_path: str | os.PathLike[str] = ":memory:",
        *,
        conversations_per_hour: int = 10,
        memories_per_hour: int = 60,
        notifications_per_hour: int | None = None,
        requests_per_minute: int = 0,
        flavor: str = "fastapi",
        clock: Callable[[], float] = time.time,
        webhook_retry_delays: Sequence[float] = webhooks.RETRY_DELAYS,
    ) -> None:
        self._flavor: Flavor = flavor_named(flavor)
        self._store = SandboxStore(str(db_path))
        self._clock = clock
        self._apps = AppRegistry(self._store, clock)
        self._limits = RateLimits(
            clock,
            conversations_per_hour=conversations_per_hour,
            memories_per_hour=memories_per_hour,
            notifications_per_hour=(
                self._flavor.notifications_per_hour if notifications_per_hour is None else notifications_per_hour
            ),
            requests_per_minute=requests_per_minute,
        )
        self._faults = FaultBook()
        self._requests: deque[dict[str, Any]] = deque(maxlen=REQUEST_LOG_SIZE)
        self._webhooks = webhooks.Webhooks(clock, webhook_retry_delays)
        #: Called with each stored notification (the console prints them as they arrive).
        self.on_notification: Callable[[dict[str, Any]], None] | None = None
        self.web_app = self._build_app()
        self.base_url: str | None = None
        self._runner: web.AppRunner | None = None

    @property
    def flavor(self) -> str:
        return self._flavor.name

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
        log.info("Omi sandbox (%s) listening on %s", self._flavor.name, self.base_url)
        return self.base_url

    async def stop(self) -> None:
        """Stop serving and cancel webhook deliveries in flight; the store stays readable (`close()` releases it)."""
        await self._webhooks.close()
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
        *,
        private: bool = False,
        owner: str | None = None,
        webhook_url: str | None = None,
    ) -> SandboxApp:
        """A new app and its first key. A `private` app exists, for the notification route, only to its `owner`
        and testers (`add_tester`); everyone else gets 404 `App not found` there (§9.1). `webhook_url`: see
        `set_webhook`."""
        webhook_url = webhooks.check_webhook_url(webhook_url)
        return self._apps.create(
            name, capabilities, setup_completed_url, private=private, owner=owner, webhook_url=webhook_url
        )

    def mint_key(self, app_id: str) -> str:
        """A new `sk_` + 32 hex key; only its hash is stored, and the app's older keys keep working."""
        return self._apps.mint_key(app_id)

    def delete_app(self, app_id: str) -> None:
        """Drop the app's record but keep its keys: the next call with such a key reaches 404 `App not found`."""
        self._apps.delete(app_id)

    def set_capabilities(self, app_id: str, capabilities: Iterable[str]) -> None:
        self._apps.set_capabilities(app_id, capabilities)

    def app_capabilities(self, app_id: str) -> list[str]:
        return list(self._apps.require(app_id).capabilities)

    def set_setup_completed_url(self, app_id: str, url: str | None) -> None:
        """Point the app at a bridge's `/omi/setup-completed` (Omi asks it before enabling)."""
        self._apps.set_setup_completed_url(app_id, url)

    def set_webhook(self, app_id: str, url: str | None) -> None:
        """The app's memory-creation webhook (None: none): every new conversation of a user who enabled the app is
        POSTed there with `?uid=` (or `&uid=`), whichever app or device created it. An absolute http(s) url
        (ValueError otherwise); LookupError for an unknown app."""
        self._apps.set_webhook_url(app_id, webhooks.check_webhook_url(url))

    set_webhook_url = set_webhook

    def add_tester(self, app_id: str, uid: str) -> None:
        self._apps.set_tester(app_id, uid, True)

    def remove_tester(self, app_id: str, uid: str) -> None:
        self._apps.set_tester(app_id, uid, False)

    def enable(self, app_id: str, uid: str) -> None:
        """Enable the app for `uid` without asking its `setup_completed_url` (see `enable_checked`)."""
        self._apps.enable(app_id, uid)

    def disable(self, app_id: str, uid: str) -> None:
        self._apps.disable(app_id, uid)

    async def enable_checked(self, app_id: str, uid: str) -> bool:
        """Enable as Omi's `POST /v1/apps/enable` does: the app's `setup_completed_url`, if any, must say done."""
        app = self._apps.require(app_id)
        if app.setup_completed_url and not await webhooks.setup_completed(app.setup_completed_url, uid):
            return False
        self._apps.enable(app_id, uid)
        return True

    def ensure_default(self, uid: str | None = None) -> tuple[str, str, str]:
        """(app_id, a new api_key, test uid) of the default app, created once per database, enabled for the uid."""
        return self._apps.ensure_default(uid)

    # --- limits and faults ------------------------------------------------------------------------------------

    def set_limits(
        self,
        *,
        conversations_per_hour: int | None = None,
        memories_per_hour: int | None = None,
        notifications_per_hour: int | None = None,
        requests_per_minute: int | None = None,
    ) -> dict[str, int]:
        """Change any of the limits (0 turns one off); returns them all.

        `requests_per_minute` is the load balancer's cap per Authorization header (§9.4), off unless set.
        """
        return self._limits.set(
            conversations_per_hour=conversations_per_hour,
            memories_per_hour=memories_per_hour,
            notifications_per_hour=notifications_per_hour,
            requests_per_minute=requests_per_minute,
        )

    def limits(self) -> dict[str, int]:
        return self._limits.as_dict()

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
        kind: str | None = None,
        body: Any = None,
    ) -> Fault:
        """Misbehave on `route`: see `bot.sandbox.faults` for `kind` (Omi's real error shapes) and `body`."""
        fault = make_fault(
            route,
            status=status,
            detail=detail,
            delay=delay,
            drop=drop,
            after_write=after_write,
            retry_after=retry_after,
            times=times,
            kind=kind,
            body=body,
        )
        return self._faults.add(fault)

    def clear_faults(self) -> None:
        self._faults.clear()

    # --- inspection -------------------------------------------------------------------------------------------

    def conversations(self, uid: str) -> list[dict[str, Any]]:
        """Everything stored for `uid` (discarded too), newest first, in the GET response shape."""
        return self._store.conversations(uid)

    def conversation_texts(self, uid: str) -> list[str]:
        """The text of each of `uid`'s conversations, newest first, whatever the flavor (see `conversation_text`)."""
        return [records.conversation_text(record) for record in self._store.conversations(uid)]

    conversation_text = staticmethod(records.conversation_text)

    def memories(self, uid: str) -> list[dict[str, Any]]:
        """Everything stored for `uid`, in the flavor's read order."""
        return self._store.memories(uid, newest_updated_first=self._flavor.memories_newest_updated_first)

    def notifications(self, uid: str | None = None) -> list[dict[str, Any]]:
        """Oldest first: {"app_id", "uid", "message", "created_at" (ISO, UTC, `Z`)}."""
        return [
            {**notification, "created_at": records.iso_utc(datetime.fromtimestamp(notification["created_at"], UTC))}
            for notification in self._store.notifications(uid)
        ]

    def requests(self) -> list[dict[str, Any]]:
        """Every integration-route request: route, method, uid, status (None when the connection was dropped), at."""
        return list(self._requests)

    def webhook_deliveries(self) -> list[dict[str, Any]]:
        """Every webhook POST the sandbox made (each try), oldest first (see `Webhooks.deliveries`)."""
        return self._webhooks.deliveries()

    async def webhooks_idle(self) -> None:
        """Wait until no webhook delivery is in flight (retries included); wrap it in a timeout in tests."""
        await self._webhooks.idle()

    def add_manual_memory(
        self, uid: str, content: str, tags: Iterable[str] = (), *, manually_added: bool = True
    ) -> dict[str, Any]:
        """A memory as the user would add it in the Omi app (category `manual`, sorted before the rest)."""
        body = records.memory_body(uid, content, list(tags), category="manual", app_id=None, manual=manually_added)
        return records.put_memories(self._store, uid, [body], self._now())[0]

    async def device_conversation(
        self,
        app_id: str,
        uid: str,
        text: str,
        *,
        started_at: datetime | None = None,
        finished_at: datetime | None = None,
        language: str = "en",
        deliveries: int = 1,
    ) -> dict[str, Any]:
        """A conversation as if `uid`'s Omi device recorded `text` (source "omi", no app, title, overview, emoji and
        action items derived as for an audio transcript), stored in `app_id`'s sandbox and returned as a read
        returns it; then, in the background, POSTed to every app with a webhook that `uid` enabled.

        LookupError for an unknown app, ValueError for a blank text or a finish before the start. A discarded
        (trivial) conversation is stored but not delivered, as Omi skips those. `deliveries` > 1 POSTs it again
        after each delivery with the same Idempotency-Key, as Omi's at-least-once delivery may.
        """
        self._apps.require(app_id)
        if not text or not text.strip():
            raise ValueError("text is required")
        if deliveries < 1:
            raise ValueError("deliveries must be at least 1")
        started = started_at or self._now()
        if finished_at is not None and records.as_utc(finished_at) < records.as_utc(started):
            raise ValueError("finished_at is before started_at")
        created_us, item = records.wearable_conversation(text, started=started, finished=finished_at, language=language)
        self._store.add_conversation(uid, created_us, item)
        self._webhooks.fire(self._apps.enabled_apps(uid), uid, item, times=deliveries)
        return item

    # --- wiring -----------------------------------------------------------------------------------------------

    def _build_app(self) -> web.Application:
        app = web.Application(middlewares=[fastapi_not_found], client_max_size=MAX_BODY_BYTES)
        integration = IntegrationRoutes(
            store=self._store,
            apps=self._apps,
            limits=self._limits,
            faults=self._faults,
            flavor=self._flavor,
            clock=self._clock,
            request_log=self._requests,
            on_notification=self._notified,
            on_conversation=self._conversation_created,
        )
        for name, handler in integration.handlers().items():
            method, path = INTEGRATION_PATHS[name]
            app.router.add_route(method, path, handler)
        for name, handler in AdminRoutes(self).handlers().items():
            method, path = ADMIN_PATHS[name]
            app.router.add_route(method, path, handler)
        return app

    def _notified(self, notification: dict[str, Any]) -> None:
        if self.on_notification is not None:
            self.on_notification(notification)

    def _conversation_created(self, uid: str, conversation: dict[str, Any]) -> None:
        """Omi's `trigger_external_integrations`: every enabled app with a webhook hears it, the creator included."""
        self._webhooks.fire(self._apps.enabled_apps(uid), uid, conversation)

    def _now(self) -> datetime:
        return datetime.fromtimestamp(self._clock(), UTC)
