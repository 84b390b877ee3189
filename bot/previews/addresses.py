"""The address rule of link previews (SPEC §11): only global addresses are ever connected to.

The rule is applied where the connection is made, not before: `GuardedResolver` hands aiohttp only the allowed
addresses of a name (so DNS rebinding between a check and the fetch cannot happen: the connector connects to what
the resolver returned), and `guarded_socket_factory` checks the exact socket address once more just before
`connect()` (which also covers IP literals in a URL, for which aiohttp never asks the resolver).
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp.abc import AbstractResolver, ResolveResult

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
AddressRule = Callable[[IPAddress], bool]
GetAddrInfo = Callable[..., Awaitable[list[tuple[Any, ...]]]]

_SHARED = ipaddress.IPv4Network("100.64.0.0/10")  # carrier-grade NAT (RFC 6598)
_GLOBAL_UNICAST_V6 = ipaddress.IPv6Network("2000::/3")
_NAT64_WELL_KNOWN = ipaddress.IPv6Network("64:ff9b::/96")  # RFC 6052: the last 32 bits are the IPv4 address
_NAT64_LOCAL = ipaddress.IPv6Network("64:ff9b:1::/48")  # RFC 8215: local use, embedding not fixed → refused
_TEREDO = ipaddress.IPv6Network("2001::/32")
_SIX_TO_FOUR = ipaddress.IPv6Network("2002::/16")


class RefusedAddress(OSError):
    """A name or address that the address rule does not allow; no connection is made."""


def _public_v4(ip: ipaddress.IPv4Address) -> bool:
    return (
        ip.is_global
        and ip not in _SHARED
        and not (
            ip.is_private
            or ip.is_loopback
            or ip.is_link_local
            or ip.is_multicast
            or ip.is_reserved
            or ip.is_unspecified
        )
    )


def is_public(ip: IPAddress) -> bool:
    """True only for a globally routable unicast address, after unmapping IPv4 carried inside IPv6.

    IPv4-mapped (`::ffff:a.b.c.d`), NAT64 (`64:ff9b::a.b.c.d`) and 6to4 (`2002:AABB:CCDD::`) are judged by the
    IPv4 address they lead to; Teredo, local-use NAT64, IPv4-compatible (`::a.b.c.d`), site-local and anything
    outside 2000::/3 are refused outright (Python 3.11's `is_global` says True for some of those).
    """
    if isinstance(ip, ipaddress.IPv4Address):
        return _public_v4(ip)
    if ip.scope_id:
        return False
    if ip.ipv4_mapped is not None:
        return _public_v4(ip.ipv4_mapped)
    if ip in _NAT64_WELL_KNOWN:
        return _public_v4(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF))
    if ip in _NAT64_LOCAL or ip in _TEREDO or ip not in _GLOBAL_UNICAST_V6:
        return False
    if ip in _SIX_TO_FOUR:
        return ip.sixtofour is not None and _public_v4(ip.sixtofour)
    return ip.is_global and not (
        ip.is_private
        or ip.is_loopback
        or ip.is_link_local
        or ip.is_site_local
        or ip.is_multicast
        or ip.is_reserved
        or ip.is_unspecified
    )


def allow_any(ip: IPAddress) -> bool:
    """The rule for `LINK_PREVIEWS_ALLOW_PRIVATE=true` (black-box tests only, never production)."""
    return True


def parse_ip(text: str) -> IPAddress | None:
    """An IP address from a host or sockaddr string (IPv6 zone kept as scope), or None for a name."""
    try:
        return ipaddress.ip_address(text.strip("[]"))
    except ValueError:
        return None


def allowed(rule: AddressRule, host: str) -> bool:
    ip = parse_ip(host)
    try:
        return ip is not None and bool(rule(ip))
    except Exception:
        return False  # a broken rule refuses


class GuardedResolver(AbstractResolver):
    """Resolves with the event loop's getaddrinfo and returns only the addresses `rule` allows (or refuses)."""

    def __init__(self, rule: AddressRule, getaddrinfo: GetAddrInfo | None = None) -> None:
        self._rule = rule
        self._getaddrinfo = getaddrinfo

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        if self._getaddrinfo is None:
            infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM, family=family)
        else:
            infos = await self._getaddrinfo(host, port, type=socket.SOCK_STREAM, family=family)
        hosts: list[ResolveResult] = []
        for info_family, _, proto, _, sockaddr in infos:
            address = str(sockaddr[0])
            if info_family == socket.AF_INET6 and len(sockaddr) >= 4 and sockaddr[3]:
                continue  # a scoped (link-local) address is never global
            if info_family not in (socket.AF_INET, socket.AF_INET6) or not allowed(self._rule, address):
                continue
            hosts.append(
                ResolveResult(
                    hostname=host,
                    host=address,
                    port=int(sockaddr[1]),
                    family=info_family,
                    proto=proto,
                    flags=socket.AI_NUMERICHOST | socket.AI_NUMERICSERV,
                )
            )
        if not hosts:
            raise RefusedAddress("no allowed address for the name")
        return hosts

    async def close(self) -> None:
        return None


def guarded_socket_factory(rule: AddressRule) -> Callable[[tuple[Any, ...]], socket.socket]:
    """aiohttp's `socket_factory`: the last check, on the exact address the socket is about to connect to."""

    def factory(addr_info: tuple[Any, ...]) -> socket.socket:
        family, type_, proto, _, sockaddr = addr_info
        if family not in (socket.AF_INET, socket.AF_INET6) or not allowed(rule, str(sockaddr[0])):
            raise RefusedAddress("address refused by the link-preview rule")
        if family == socket.AF_INET6 and len(sockaddr) >= 4 and sockaddr[3]:
            raise RefusedAddress("scoped address refused by the link-preview rule")
        return socket.socket(family=family, type=type_, proto=proto)

    return factory
