"""Link previews (SPEC §11): the address rule is an SSRF boundary, so most of these tests try to reach 127.0.0.1
and prove, with a recording server on it, that nothing ever did. 127.0.0.2 stands for "a public address"."""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from bot.previews import Preview, allow_any, extract_links, is_public, preview, render
from bot.previews import fetch as fetch_module
from bot.previews.addresses import GuardedResolver, RefusedAddress, guarded_socket_factory
from tests.fake_web import FakeWeb, og_page, start_pair

PUBLIC = "127.0.0.2"


def only_public(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """The injected rule: 127.0.0.2 is "public", everything else private."""
    return ip == ipaddress.ip_address(PUBLIC)


class Dns:
    """A getaddrinfo stub: each lookup of a name gets the next answer of its script (the last one repeats)."""

    def __init__(self, **script: list[list[str]]) -> None:
        self.script = {name.replace("_", "."): answers for name, answers in script.items()}
        self.lookups: list[str] = []

    async def __call__(self, host: str, port: int, **_: Any) -> list[tuple[Any, ...]]:
        answers = self.script[host]
        index = sum(1 for seen in self.lookups if seen == host)
        self.lookups.append(host)
        addresses = answers[min(index, len(answers) - 1)]
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port)) for address in addresses]


@pytest.fixture
async def servers() -> AsyncIterator[tuple[FakeWeb, FakeWeb]]:
    public, private = await start_pair()
    private.html("/og", og_page("PRIVATE", "reached the private address"))
    yield public, private
    await public.stop()
    await private.stop()


async def fetch(url: str, **kwargs: Any) -> Preview | None:
    kwargs.setdefault("allow", only_public)
    kwargs.setdefault("timeout", 3.0)
    return await preview(url, **kwargs)


# --- pages ----------------------------------------------------------------------------------------------


async def test_opengraph_page(servers: tuple[FakeWeb, FakeWeb]) -> None:
    public, private = servers
    public.html("/og", og_page("Omi &amp; friends", "A wearable  that\nremembers"))
    found = await fetch(public.url("/og"))
    assert found == Preview("Omi & friends", "A wearable that remembers", public.url("/og"))
    assert render(found) == "↳ Omi & friends — A wearable that remembers"
    assert private.requests == []


async def test_title_and_meta_description_fallback(servers: tuple[FakeWeb, FakeWeb]) -> None:
    public, _ = servers
    public.html(
        "/plain",
        "<html><head><title> Plain &eacute;t&eacute; </title>"
        '<meta name="Description" content="caf&#233; notes"></head><body><h1>x</h1></body></html>',
    )
    assert await fetch(public.url("/plain")) == Preview("Plain été", "café notes", public.url("/plain"))


async def test_page_without_title_or_description(servers: tuple[FakeWeb, FakeWeb]) -> None:
    public, _ = servers
    public.html("/bare", "<html><body><p>nothing</p></body></html>")
    assert await fetch(public.url("/bare")) is None


@pytest.mark.parametrize(
    ("content_type", "body", "title"),
    [
        ("text/html; charset=windows-1252", b"<title>caf\xe9 \x93quoted\x94</title>", "café “quoted”"),
        ("text/html", '<meta charset="iso-8859-1"><title>na\xefve</title>'.encode("latin-1"), "naïve"),
        ("text/html", b"<title>bad \xff byte</title>", "bad \ufffd byte"),
        ("text/html", b"\xef\xbb\xbf<title>bom \xc3\xa9</title>", "bom é"),
    ],
)
async def test_charset(servers: tuple[FakeWeb, FakeWeb], content_type: str, body: bytes, title: str) -> None:
    public, _ = servers
    public.html("/cs", body, content_type)
    found = await fetch(public.url("/cs"))
    assert found is not None
    assert found.title == title


@pytest.mark.parametrize("content_type", ["application/json", "image/png", "text/plain", "application/xhtml+xml"])
async def test_non_html_gives_nothing(servers: tuple[FakeWeb, FakeWeb], content_type: str) -> None:
    public, _ = servers
    public.html("/file", og_page("a", "b"), content_type)
    assert await fetch(public.url("/file")) is None
    assert [seen.path for seen in public.requests] == ["/file"]  # fetched, then refused for its type


@pytest.mark.parametrize("status", [201, 204, 304, 404, 500])
async def test_status_other_than_200(servers: tuple[FakeWeb, FakeWeb], status: int) -> None:
    public, _ = servers
    public.status("/s", status)
    assert await fetch(public.url("/s")) is None


async def test_credentials_in_a_link_are_not_sent(servers: tuple[FakeWeb, FakeWeb]) -> None:
    public, _ = servers
    public.html("/og", og_page("t", "d"))
    assert await fetch(public.url("/og").replace("http://", "http://user:pw@")) is not None
    assert public.requests[0].authorization is None


# --- the address rule -----------------------------------------------------------------------------------


async def test_ip_literal_refused(servers: tuple[FakeWeb, FakeWeb]) -> None:
    public, private = servers
    assert await fetch(private.url("/og")) is None
    assert await fetch(public.url("/og", host="[::ffff:127.0.0.1]")) is None
    assert private.requests == []


async def test_the_rule_is_what_allows_the_private_address(servers: tuple[FakeWeb, FakeWeb]) -> None:
    """The control for the refusals above: with `allow_any` (LINK_PREVIEWS_ALLOW_PRIVATE) 127.0.0.1 is fetched."""
    _, private = servers
    found = await fetch(private.url("/og"), allow=allow_any)
    assert found is not None
    assert found.title == "PRIVATE"


async def test_redirect_to_a_private_address_refused(servers: tuple[FakeWeb, FakeWeb]) -> None:
    public, private = servers
    public.redirect("/go", private.url("/og"))
    assert await fetch(public.url("/go")) is None
    assert [seen.path for seen in public.requests] == ["/go"]
    assert private.requests == []


async def test_redirect_to_a_name_resolving_private_refused(servers: tuple[FakeWeb, FakeWeb]) -> None:
    public, private = servers
    dns = Dns(inside_test=[["127.0.0.1"]])
    public.redirect("/go", f"http://inside.test:{public.port}/og")
    assert await fetch(public.url("/go"), getaddrinfo=dns) is None
    assert dns.lookups == ["inside.test"]
    assert private.requests == []


async def test_name_resolving_public_then_private_connects_to_the_checked_address(
    servers: tuple[FakeWeb, FakeWeb],
) -> None:
    """DNS rebinding: the answer that was checked is the one connected to; there is no second lookup to win."""
    public, private = servers
    public.html("/og", og_page("PUBLIC", "the checked address"))
    dns = Dns(rebind_test=[[PUBLIC], ["127.0.0.1"]])
    found = await fetch(f"http://rebind.test:{public.port}/og", getaddrinfo=dns)
    assert found is not None
    assert found.title == "PUBLIC"
    assert dns.lookups == ["rebind.test"]
    assert public.requests[0].host == f"rebind.test:{public.port}"  # Host header of the name, IP of the check
    assert private.requests == []


async def test_name_rebinding_to_private_on_the_next_hop_refused(servers: tuple[FakeWeb, FakeWeb]) -> None:
    public, private = servers
    dns = Dns(rebind_test=[[PUBLIC], ["127.0.0.1"]])
    public.redirect("/start", f"http://rebind.test:{public.port}/og")
    assert await fetch(f"http://rebind.test:{public.port}/start", getaddrinfo=dns) is None
    assert dns.lookups == ["rebind.test", "rebind.test"]  # every hop resolves (and is checked) afresh
    assert [seen.path for seen in public.requests] == ["/start"]
    assert private.requests == []


async def test_mixed_answer_uses_only_the_allowed_address(servers: tuple[FakeWeb, FakeWeb]) -> None:
    public, private = servers
    public.html("/og", og_page("PUBLIC", "allowed one"))
    dns = Dns(mixed_test=[["127.0.0.1", PUBLIC]])
    found = await fetch(f"http://mixed.test:{public.port}/og", getaddrinfo=dns)
    assert found is not None
    assert found.title == "PUBLIC"
    assert private.requests == []


async def test_system_resolver_answer_is_checked(servers: tuple[FakeWeb, FakeWeb]) -> None:
    """The default path (the event loop's getaddrinfo): `localhost` resolves to loopback only, so is refused."""
    _, private = servers
    assert await fetch(private.url("/og", host="localhost")) is None
    assert private.requests == []
    found = await fetch(private.url("/og", host="localhost"), allow=allow_any)  # the control
    assert found is not None
    assert found.title == "PRIVATE"


async def test_environment_proxy_ignored(servers: tuple[FakeWeb, FakeWeb], monkeypatch: pytest.MonkeyPatch) -> None:
    public, private = servers
    public.html("/og", og_page("direct", "no proxy"))
    for name in ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "ALL_PROXY"):
        monkeypatch.setenv(name, private.url("/"))
    monkeypatch.setenv("NO_PROXY", "")
    found = await fetch(public.url("/og"))
    assert found is not None
    assert found.title == "direct"
    assert private.requests == []


@pytest.fixture(params=["resolver alone", "socket check alone"])
def one_layer(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Each layer of the rule must hold by itself: switch the other one off."""
    if request.param == "resolver alone":
        monkeypatch.setattr(fetch_module, "guarded_socket_factory", lambda rule: guarded_socket_factory(allow_any))
    else:
        monkeypatch.setattr(fetch_module, "GuardedResolver", lambda rule, gai: GuardedResolver(allow_any, gai))
        monkeypatch.setattr(fetch_module, "allowed", lambda rule, host: True)  # the early IP-literal check too
    return request.param


async def test_each_layer_alone_keeps_the_private_address_unreached(
    servers: tuple[FakeWeb, FakeWeb], one_layer: str
) -> None:
    public, private = servers
    public.redirect("/to-name", f"http://rebind.test:{public.port}/og")
    dns = Dns(rebind_test=[[PUBLIC], ["127.0.0.1"]], inside_test=[["127.0.0.1", PUBLIC]])
    assert await fetch(f"http://rebind.test:{public.port}/to-name", getaddrinfo=dns) is None
    found = await fetch(f"http://inside.test:{public.port}/og", getaddrinfo=dns)
    assert found is None or found.title != "PRIVATE"
    if one_layer == "resolver alone":  # an IP literal never reaches the resolver: the other checks cover it
        assert private.requests == []
        return
    public.redirect("/to-ip", private.url("/og"))
    assert await fetch(public.url("/to-ip")) is None
    assert await fetch(private.url("/og")) is None
    assert private.requests == []


async def test_socket_factory_checks_the_exact_address() -> None:
    factory = guarded_socket_factory(only_public)
    with pytest.raises(RefusedAddress):
        factory((socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", 80)))
    sock = factory((socket.AF_INET, socket.SOCK_STREAM, 6, "", (PUBLIC, 80)))
    sock.close()


async def test_resolver_keeps_only_allowed_answers() -> None:
    dns = Dns(dark_test=[["127.0.0.1", "10.0.0.1"]], ok_test=[["10.0.0.1", PUBLIC]])
    with pytest.raises(RefusedAddress):
        await GuardedResolver(only_public, dns).resolve("dark.test", 80)
    assert [found["host"] for found in await GuardedResolver(only_public, dns).resolve("ok.test", 80)] == [PUBLIC]


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1", "10.1.2.3", "172.16.0.1", "192.168.1.1", "169.254.169.254", "100.64.0.1", "0.0.0.0",  # noqa: S104
        "224.0.0.1", "239.255.255.250", "255.255.255.255", "240.0.0.1", "192.0.2.1", "198.18.0.1",
        "::1", "::", "fe80::1", "fc00::1", "fd12::1", "fec0::1", "ff02::1", "2001:db8::1",
        "::ffff:127.0.0.1", "::ffff:10.0.0.1", "::ffff:169.254.169.254", "::127.0.0.1",
        "64:ff9b::7f00:1", "64:ff9b::a00:1", "64:ff9b::a9fe:a9fe", "64:ff9b:1::808:808",
        "2002:7f00:1::1", "2002:a00:1::1", "2001:0:4136:e378:8000:63bf:3fff:fdd2", "100::1",
    ],
)  # fmt: skip
def test_is_public_refuses(address: str) -> None:
    assert not is_public(ipaddress.ip_address(address))


@pytest.mark.parametrize(
    "address",
    ["8.8.8.8", "1.1.1.1", "93.184.216.34", "2606:4700:4700::1111", "::ffff:8.8.8.8", "64:ff9b::808:808",
     "2002:808:808::1"],
)  # fmt: skip
def test_is_public_allows(address: str) -> None:
    assert is_public(ipaddress.ip_address(address))


# --- limits ---------------------------------------------------------------------------------------------


async def test_three_redirects_followed_four_refused(servers: tuple[FakeWeb, FakeWeb]) -> None:
    public, _ = servers
    public.html("/end", og_page("end", "of the chain"))
    for hop in range(1, 5):
        public.redirect(f"/r{hop}", "/end" if hop == 1 else f"/r{hop - 1}", status=(301, 302, 307, 308)[hop - 1])
    found = await fetch(public.url("/r3"))
    assert found is not None
    assert found.url == public.url("/end")
    assert await fetch(public.url("/r4")) is None
    assert [seen.path for seen in public.requests][-4:] == ["/r4", "/r3", "/r2", "/r1"]  # /end never fetched


async def test_redirect_to_another_scheme_refused(servers: tuple[FakeWeb, FakeWeb]) -> None:
    public, _ = servers
    public.redirect("/ftp", f"ftp://{PUBLIC}:{public.port}/og")
    public.redirect("/file", "file:///etc/passwd")
    assert await fetch(public.url("/ftp")) is None
    assert await fetch(public.url("/file")) is None


async def test_hanging_page_gives_up_within_the_budget(servers: tuple[FakeWeb, FakeWeb]) -> None:
    public, _ = servers
    public.hang("/hang")
    started = time.monotonic()
    async with asyncio.timeout(3):  # the test's own bound, should the budget not hold
        assert await fetch(public.url("/hang"), timeout=0.5) is None
    assert 0.4 < time.monotonic() - started < 2.0


async def test_hanging_dns_counts_in_the_budget() -> None:
    never = asyncio.Event()

    async def hanging(*_: Any, **__: Any) -> list[tuple[Any, ...]]:
        await never.wait()
        return []

    started = time.monotonic()
    async with asyncio.timeout(3):
        assert await fetch("http://slow.test/", timeout=0.5, getaddrinfo=hanging) is None
    assert time.monotonic() - started < 2.0


async def test_huge_page_read_only_to_the_limit(servers: tuple[FakeWeb, FakeWeb]) -> None:
    public, _ = servers
    public.endless("/huge", b"<html><head><title>big one</title></head><body>")
    found = await fetch(public.url("/huge"), max_bytes=64 * 1024, timeout=5.0)
    assert found is not None
    assert found.title == "big one"
    assert public.streamed < 16 * 1024 * 1024  # stopped long before the 64 MB the page would have sent


async def test_title_beyond_the_limit_is_not_seen(servers: tuple[FakeWeb, FakeWeb]) -> None:
    public, _ = servers
    public.html("/late", b"<html><head>" + b"<!--" + b"x" * 8192 + b"--><title>late</title></head></html>")
    assert await fetch(public.url("/late"), max_bytes=4096) is None
    assert await fetch(public.url("/late"), max_bytes=16384) is not None


async def test_log_line_names_no_path_query_or_content(
    servers: tuple[FakeWeb, FakeWeb], caplog: pytest.LogCaptureFixture
) -> None:
    public, _ = servers
    public.html("/doc", '{"secret": "page-content-42"}', "application/json")
    with caplog.at_level(logging.INFO, logger="bot.previews"):
        assert await fetch(public.url("/doc?token=tok-secret-99")) is None
    lines = [record.getMessage() for record in caplog.records]
    assert len(lines) == 1
    assert PUBLIC in lines[0]
    assert "not text/html" in lines[0]
    assert "tok-secret-99" not in lines[0]
    assert "page-content-42" not in lines[0]
    assert "/doc" not in lines[0]


@pytest.mark.parametrize("url", ["not a url", "http://", "javascript:alert(1)", "http://[::1", ""])
async def test_bad_urls_give_nothing(url: str) -> None:
    assert await fetch(url) is None


# --- links and rendering --------------------------------------------------------------------------------


def test_extract_links_limit_order_and_dedupe() -> None:
    text = (
        "see https://a.example/x, and [docs](https://b.example/p_(1)) or <http://c.example/y>.\n"
        "again https://a.example/x and https://d.example/ and https://e.example/"
    )
    assert extract_links(text) == ["https://a.example/x", "https://b.example/p_(1)", "http://c.example/y"]
    assert extract_links(text, limit=5) == [
        "https://a.example/x",
        "https://b.example/p_(1)",
        "http://c.example/y",
        "https://d.example/",
        "https://e.example/",
    ]


def test_extract_links_ignores_other_schemes() -> None:
    text = "ftp://f.example/a mailto:x@y.example javascript:alert(1) file:///etc/passwd www.example.com xhttp://z/"
    assert extract_links(text) == []
    assert extract_links("(https://a.example/q?x=1&y=2)!") == ["https://a.example/q?x=1&y=2"]
    assert extract_links("HTTPS://UP.example/") == ["HTTPS://UP.example/"]
    assert extract_links("https://:80/ https://a.example:99999/") == []


def test_render_is_one_trimmed_line() -> None:
    assert render(Preview("Title", "", "u")) == "↳ Title"
    assert render(Preview("", "Only a description", "u")) == "↳ Only a description"
    assert render(Preview("", "", "u")) == ""
    long = render(Preview("T " * 200, "word " * 200, "u"))
    assert len(long) <= 200
    assert "\n" not in long
    assert long.startswith("↳ T T")
    assert " — word" in long
    assert long.endswith("…")
