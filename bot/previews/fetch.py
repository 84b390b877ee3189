"""Fetching one page for a preview, never reaching an address the rule refuses (SPEC §11: SSRF is the threat).

One deadline covers everything (DNS, every redirect hop, the body); every hop resolves afresh through
`GuardedResolver` (no DNS cache, no kept-alive connection) and every socket is checked once more by the socket
factory on the exact address it connects to; environment proxies are ignored; at most `max_bytes` are read; only a
200 `text/html` answer is parsed. A bad page gives None and one log line (the host and the reason, never the path,
the query or any page content).
"""

from __future__ import annotations

import asyncio
import logging

import aiohttp
from yarl import URL

from bot.previews.addresses import (
    AddressRule,
    GetAddrInfo,
    GuardedResolver,
    RefusedAddress,
    allowed,
    guarded_socket_factory,
    is_public,
    parse_ip,
)
from bot.previews.page import Preview, decode, parse

log = logging.getLogger(__name__)

TIMEOUT = 5.0
MAX_BYTES = 512 * 1024
MAX_REDIRECTS = 3
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_HEADERS = {
    "User-Agent": "omi-bridge-link-preview/1 (+https://github.com/)",
    "Accept": "text/html",
    "Accept-Language": "*",
}


class _Skip(Exception):
    """Why a page gives no preview (the reason is logged, nothing else)."""


def _checked(url: URL, rule: AddressRule) -> URL:
    if url.scheme not in ("http", "https") or not url.raw_host:
        raise _Skip("not an http(s) URL")
    if url.user is not None or url.password is not None:
        url = url.with_user(None)  # credentials in a link are never sent
    if parse_ip(url.raw_host) is not None and not allowed(rule, url.raw_host):
        raise RefusedAddress("IP literal refused")
    return url.with_fragment(None)


async def _read(response: aiohttp.ClientResponse, max_bytes: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.content.iter_chunked(min(64 * 1024, max_bytes)):
        chunks.append(chunk)
        size += len(chunk)
        if size >= max_bytes:
            break  # leaving the response closes the connection: the rest is never read
    return b"".join(chunks)[:max_bytes]


async def _fetch(
    url: str, rule: AddressRule, timeout: float, max_bytes: int, max_redirects: int, getaddrinfo: GetAddrInfo | None
) -> Preview:
    connector = aiohttp.TCPConnector(
        resolver=GuardedResolver(rule, getaddrinfo),
        use_dns_cache=False,
        ttl_dns_cache=0,
        force_close=True,  # every hop connects (and so resolves and checks) afresh
        socket_factory=guarded_socket_factory(rule),
    )
    async with aiohttp.ClientSession(
        connector=connector,
        trust_env=False,
        cookie_jar=aiohttp.DummyCookieJar(),
        headers=_HEADERS,
        timeout=aiohttp.ClientTimeout(total=timeout),
    ) as session:
        current = URL(url)
        for _ in range(max_redirects + 1):
            current = _checked(current, rule)
            async with session.get(current, allow_redirects=False) as response:
                if response.status in _REDIRECTS:
                    location = response.headers.get("Location")
                    if not location:
                        raise _Skip("redirect without a location")
                    current = current.join(URL(location))
                    continue
                if response.status != 200:
                    raise _Skip(f"status {response.status}")
                if response.content_type != "text/html":
                    raise _Skip("not text/html")
                body = await _read(response, max_bytes)
                found = parse(decode(body, response.charset), str(current))
                if found is None:
                    raise _Skip("no title or description")
                return found
        raise _Skip("too many redirects")


async def preview(
    url: str,
    *,
    allow: AddressRule = is_public,
    timeout: float = TIMEOUT,
    max_bytes: int = MAX_BYTES,
    max_redirects: int = MAX_REDIRECTS,
    getaddrinfo: GetAddrInfo | None = None,
) -> Preview | None:
    """The preview of the page at `url`, or None (never raises for a bad page, a refused address or a timeout).

    `allow` is the address rule (`is_public` in production, `allow_any` for LINK_PREVIEWS_ALLOW_PRIVATE);
    `getaddrinfo` replaces the event loop's resolver (tests only).
    """
    host = "?"
    try:
        host = URL(url).host or "?"
        async with asyncio.timeout(timeout):
            return await _fetch(url, allow, timeout, max_bytes, max_redirects, getaddrinfo)
    except TimeoutError:
        reason = "timed out"
    except _Skip as skip:
        reason = str(skip)
    except RefusedAddress:
        reason = "address refused"
    except aiohttp.ClientConnectorError as error:
        reason = "address refused" if isinstance(error.os_error, RefusedAddress) else "could not connect"
    except (aiohttp.ClientError, OSError, ValueError, UnicodeError) as error:
        reason = type(error).__name__
    except Exception as error:  # a parser or library surprise: still no preview rather than a failed burst
        reason = f"unexpected {type(error).__name__}"
    log.info("link preview skipped for %s: %s", host, reason)
    return None
