"""What a preview shows, read from an HTML page with a real HTML parser (BeautifulSoup over the stdlib parser)."""

from __future__ import annotations

import codecs
from dataclasses import dataclass

from bs4 import BeautifulSoup
from bs4.dammit import EncodingDetector


@dataclass(frozen=True)
class Preview:
    title: str
    description: str
    url: str


def _clean(text: str | None) -> str:
    return " ".join((text or "").split())


def _codec(name: str | None) -> str | None:
    if not name:
        return None
    try:
        return codecs.lookup(name.strip().strip("\"'")).name
    except (LookupError, ValueError):
        return None


def decode(body: bytes, header_charset: str | None) -> str:
    """Bytes to text: a byte-order mark, else the Content-Type charset, else a `<meta charset>`, else UTF-8;
    undecodable bytes become U+FFFD (a page cut at the size limit may end mid-character)."""
    stripped, bom_encoding = EncodingDetector.strip_byte_order_mark(body)
    encoding = _codec(bom_encoding) or _codec(header_charset)
    if encoding is None:
        declared = EncodingDetector.find_declared_encoding(stripped[:4096], is_html=True, search_entire_document=False)
        encoding = _codec(declared)
        if encoding is not None and encoding.startswith("utf-16"):
            encoding = "utf-8"  # as the HTML standard says: an ASCII-readable meta cannot be UTF-16
    return stripped.decode(encoding or "utf-8", errors="replace")


def _meta(soup: BeautifulSoup, attribute: str, value: str) -> str:
    for tag in soup.find_all("meta"):
        key = tag.get(attribute)
        if isinstance(key, str) and key.strip().lower() == value:
            content = tag.get("content")
            if isinstance(content, str) and _clean(content):
                return _clean(content)
    return ""


def parse(html: str, url: str) -> Preview | None:
    """OpenGraph `og:title`/`og:description` first, else `<title>` and `<meta name="description">`; None when the
    page offers neither a title nor a description."""
    soup = BeautifulSoup(html, "html.parser")
    title = _meta(soup, "property", "og:title") or _meta(soup, "name", "og:title")
    if not title and soup.title is not None:
        title = _clean(soup.title.get_text())
    description = (
        _meta(soup, "property", "og:description")
        or _meta(soup, "name", "og:description")
        or _meta(soup, "name", "description")
    )
    if not title and not description:
        return None
    return Preview(title=title, description=description, url=url)
