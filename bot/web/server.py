"""The one web server of `serve` (SPEC §4): health, metrics, Omi's setup pages; adapters add their routes."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2
from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.log import server_logger

from bot.bridge import Bridge
from bot.linking import TOKEN_TTL_SECONDS
from bot.metrics import Metrics

log = logging.getLogger(__name__)

HERE = Path(__file__).parent
#: Nothing from other sites, no inline script or style: the pages' own CSS and JS only.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self'; connect-src 'none';"
    " base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
MAX_UID_LENGTH = 128
STATIC_FILES = {"style.css": "text/css", "setup.js": "text/javascript", "icon.svg": "image/svg+xml"}

ComponentCheck = Callable[[], Awaitable[str]]


@dataclass
class SetupOptions:
    """What the setup page offers; adapters fill it in at start (the bot username comes from `getMe`)."""

    telegram_username: str | None = None
    slack: bool = False


class ServerLog(logging.LoggerAdapter[logging.Logger]):
    """aiohttp's `aiohttp.server` logger for our web server. A request that is not valid HTTP (an over-long request
    line or header, a bad header, garbage) is answered 400 by aiohttp, which logs it as an ERROR with a traceback:
    anyone could flood the log that way. Here it is one WARN line that names the error's kind only (its text
    quotes the request, and a request line can hold a secret path). Every other error is logged as aiohttp does."""

    def __init__(self, logger: logging.Logger = server_logger) -> None:
        super().__init__(logger, {})

    def process(self, msg: Any, kwargs: MutableMapping[str, Any]) -> tuple[Any, MutableMapping[str, Any]]:
        return msg, kwargs  # no `extra` of our own: records stay as aiohttp makes them

    def exception(self, msg: object, *args: object, exc_info: Any = True, **kwargs: Any) -> None:
        if isinstance(exc_info, HttpProcessingError):
            remote = args[0] if args else "a client"
            self.logger.warning("malformed HTTP request from %s refused (%s)", remote, type(exc_info).__name__)
            return
        super().exception(msg, *args, exc_info=exc_info, **kwargs)

    def debug(self, msg: object, *args: object, **kwargs: Any) -> None:
        # aiohttp logs non-HTTP bytes as the first request (TLS to a plain HTTP port, scanners) at DEBUG: one line.
        if isinstance(kwargs.get("exc_info"), HttpProcessingError):
            kwargs["exc_info"] = None
        super().debug(msg, *args, **kwargs)


def _lock_down(response: web.Response) -> web.Response:
    """The pages' headers: only their own CSS and JS, nothing cached (a page holds a fresh link token)."""
    response.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "no-referrer"
    return response


class WebServer:
    def __init__(self, bridge: Bridge, metrics: Metrics, options: SetupOptions | None = None) -> None:
        self.bridge = bridge
        self.metrics = metrics
        self.options = options or SetupOptions()
        self.components: dict[str, ComponentCheck] = {}
        # No middleware: webhooks are the hot path, and only the pages need their headers (`_lock_down`).
        self.app = web.Application(client_max_size=1024**2)
        self._templates = jinja2.Environment(
            loader=jinja2.FileSystemLoader(HERE / "templates"), autoescape=True, undefined=jinja2.StrictUndefined
        )
        self._runner: web.AppRunner | None = None
        self.url: str | None = None
        routes = self.app.router
        routes.add_get("/healthz", self.healthz)
        routes.add_get("/metrics", self.metrics_page)
        routes.add_get("/omi/setup", self.setup_page)
        routes.add_get("/omi/setup-completed", self.setup_completed)
        routes.add_get("/omi/home", self.home_page)
        routes.add_get("/static/{name}", self.static_file)
        routes.add_get("/favicon.ico", self.favicon)

    # --- life cycle ---------------------------------------------------------------------------------

    async def start(self, host: str, port: int) -> str:
        self._runner = web.AppRunner(self.app, access_log=None, shutdown_timeout=5.0, logger=ServerLog())
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        await site.start()
        bound = self._runner.addresses[0]
        self.url = f"http://{bound[0]}:{bound[1]}" if ":" not in bound[0] else f"http://[{bound[0]}]:{bound[1]}"
        return self.url

    async def stop(self) -> None:
        """Stop taking requests; requests in progress get `shutdown_timeout` to finish."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    # --- operations ---------------------------------------------------------------------------------

    async def healthz(self, request: web.Request) -> web.Response:
        db_ok = await self.bridge.store.db.is_writable()
        components = {"db": "ok" if db_ok else "not writable", "omi": self.metrics.omi_health()}
        for name in ("telegram", "slack"):
            check = self.components.get(name)
            try:
                components[name] = await check() if check is not None else "disabled"
            except Exception as exc:  # a broken check must not break the health page
                components[name] = f"error: {type(exc).__name__}"
        depth = await self.bridge.store.outbox.depth() if db_ok else None
        offset = await self.bridge.check_clock() if db_ok else None
        if offset is not None and self.bridge.clock_off:
            components["clock"] = f"{offset:+.1f} s off the database's (run NTP)"
        body = {
            "status": "ok" if db_ok else "unavailable",
            "instance": self.bridge.worker.instance,  # SPEC §13: which of several answered
            "clock_offset_seconds": round(offset, 3) if offset is not None else None,
            "components": components,
            "queue_depth": depth,
        }
        return web.json_response(body, status=200 if db_ok else 503)

    async def metrics_page(self, request: web.Request) -> web.Response:
        depth = await self.bridge.store.outbox.depth()
        oldest = await self.bridge.store.outbox.oldest_open_created_at()
        age = max(0.0, self.bridge.clock.now() - oldest) if oldest is not None else 0.0
        return web.Response(body=self.metrics.render(depth, age), content_type="text/plain", charset="utf-8")

    async def static_file(self, request: web.Request) -> web.Response:
        return await self._static(request.match_info["name"])

    async def favicon(self, request: web.Request) -> web.Response:
        return await self._static("icon.svg")

    async def _static(self, name: str) -> web.Response:
        if name not in STATIC_FILES:
            raise web.HTTPNotFound()
        return web.Response(
            body=(HERE / "static" / name).read_bytes(),
            content_type=STATIC_FILES[name],
            headers={"Cache-Control": "public, max-age=3600", "X-Content-Type-Options": "nosniff"},
        )

    # --- Omi's pages --------------------------------------------------------------------------------

    def _page(self, template: str, status: int = 200, **context: object) -> web.Response:
        html = self._templates.get_template(template).render(**context)
        return _lock_down(web.Response(text=html, status=status, content_type="text/html"))

    def _uid(self, request: web.Request) -> str | None:
        uid = request.query.get("uid", "").strip()
        return uid if 0 < len(uid) <= MAX_UID_LENGTH else None

    def _missing_uid_page(self) -> web.Response:
        return self._page(
            "error.html",
            status=400,
            title="Open this page from the Omi app",
            message="This page needs your Omi account, which the Omi app adds to the link. Open omi-bridge in the"
            " Omi app and use its setup step.",
        )

    async def setup_page(self, request: web.Request) -> web.Response:
        uid = self._uid(request)
        if uid is None:
            return self._missing_uid_page()
        token = await self.bridge.linking.issue_token(uid)
        username = self.options.telegram_username
        return self._page(
            "setup.html",
            title="Link your chat to Omi",
            minutes=TOKEN_TTL_SECONDS // 60,
            telegram_username=username,
            telegram_link=f"https://t.me/{username}?start={token}" if username else None,
            slack_command=f"/omi link {token}" if self.options.slack else None,
            verify_hint="/verify CODE" if username or not self.options.slack else "/omi verify CODE",
        )

    async def setup_completed(self, request: web.Request) -> web.Response:
        uid = self._uid(request)
        if uid is None:
            return web.json_response({"error": "uid is required"}, status=400)
        return web.json_response({"is_setup_completed": await self.bridge.linking.setup_completed(uid)})

    async def home_page(self, request: web.Request) -> web.Response:
        uid = self._uid(request)
        if uid is None:
            return self._missing_uid_page()
        # The uid is forgeable: show only what is harmless to a stranger — no names, content, tokens or codes.
        links = []
        for link in await self.bridge.store.links.for_uid(uid):
            waiting = len(await self.bridge.store.outbox.open_for_account(link.account))
            platform = link.platform.capitalize()
            links.append(
                {"label": f"{platform} ••{link.handle_hint[-2:]}", "verified": link.verified, "waiting": waiting}
            )
        return self._page("home.html", title="omi-bridge", links=links)
