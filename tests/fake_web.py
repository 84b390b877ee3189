"""A fake web server for link previews: pages, redirects, hanging and endless pages, on a chosen 127.0.0.x.

`FakeWeb` records every request it receives (path, Host and Authorization headers), so a test can prove that no
connection reached an address: start one on 127.0.0.1 next to the "public" one on 127.0.0.2 (same port, see
`start_pair`) and assert its `requests` stays empty.
"""

from __future__ import annotations

import asyncio
import errno
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiohttp import web

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True)
class Seen:
    path: str
    host: str | None
    authorization: str | None


def og_page(title: str, description: str) -> str:
    return (
        "<!doctype html><html><head>"
        f'<meta property="og:title" content="{title}">'
        f'<meta property="og:description" content="{description}">'
        "<title>not the og title</title></head><body>body</body></html>"
    )


class FakeWeb:
    def __init__(self, host: str = "127.0.0.2") -> None:
        self.host = host
        self.port = 0
        self.requests: list[Seen] = []
        self.streamed = 0  # bytes written by endless pages
        self._pages: dict[str, Handler] = {}
        self._release = asyncio.Event()
        self._runner: web.AppRunner | None = None

    # --- life cycle -------------------------------------------------------------------------------------
    async def start(self, port: int = 0) -> FakeWeb:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._dispatch)
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.2)
        await runner.setup()
        try:
            await web.TCPSite(runner, self.host, port).start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        self.port = runner.addresses[0][1]
        return self

    async def stop(self) -> None:
        self._release.set()
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()

    def url(self, path: str = "/", host: str | None = None) -> str:
        return f"http://{host or self.host}:{self.port}{path}"

    # --- pages ------------------------------------------------------------------------------------------
    def page(self, path: str, handler: Handler) -> None:
        self._pages[path] = handler

    def html(self, path: str, body: str | bytes, content_type: str = "text/html; charset=utf-8") -> None:
        data = body.encode() if isinstance(body, str) else body

        async def handler(request: web.Request) -> web.StreamResponse:
            return web.Response(body=data, headers={"Content-Type": content_type})

        self.page(path, handler)

    def status(self, path: str, status: int) -> None:
        async def handler(request: web.Request) -> web.StreamResponse:
            return web.Response(status=status, text=og_page("error", "page"), content_type="text/html")

        self.page(path, handler)

    def redirect(self, path: str, location: str, status: int = 302) -> None:
        async def handler(request: web.Request) -> web.StreamResponse:
            return web.Response(status=status, headers={"Location": location})

        self.page(path, handler)

    def hang(self, path: str) -> None:
        """Accepts the request and never answers (until the server stops)."""

        async def handler(request: web.Request) -> web.StreamResponse:
            await self._release.wait()
            return web.Response(text="late")

        self.page(path, handler)

    def endless(self, path: str, head: bytes, limit: int = 64 * 1024 * 1024) -> None:
        """`head`, then filler for as long as the client reads (at most `limit` bytes)."""

        async def handler(request: web.Request) -> web.StreamResponse:
            response = web.StreamResponse(headers={"Content-Type": "text/html; charset=utf-8"})
            await response.prepare(request)
            filler = b"<p>" + b"x" * 16 * 1024 + b"</p>\n"
            try:
                await response.write(head)
                self.streamed += len(head)
                while self.streamed < limit and not self._release.is_set():
                    await response.write(filler)
                    self.streamed += len(filler)
            except (ConnectionError, asyncio.CancelledError):
                pass
            return response

        self.page(path, handler)

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        self.requests.append(Seen(request.path, request.headers.get("Host"), request.headers.get("Authorization")))
        handler = self._pages.get(request.path)
        if handler is None:
            # An unknown path still looks like a page worth previewing, so a request that should never have
            # arrived would also produce a preview (and make the test fail twice over).
            return web.Response(text=og_page("recorded", "should not be reached"), content_type="text/html")
        return await handler(request)


async def start_pair(public: str = "127.0.0.2", private: str = "127.0.0.1") -> tuple[FakeWeb, FakeWeb]:
    """Two servers on the same port, one per address: a connection sent to the wrong address lands on the other."""
    for _ in range(50):
        first = await FakeWeb(public).start()
        try:
            second = await FakeWeb(private).start(first.port)
        except OSError as error:
            await first.stop()
            if error.errno != errno.EADDRINUSE:
                raise
            continue
        return first, second
    raise RuntimeError("no port free on both addresses")
