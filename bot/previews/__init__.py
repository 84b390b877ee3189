"""Link previews (SPEC §11): `extract_links` finds up to 3 http(s) links in a message, `preview` fetches one page
under the address rule (SSRF boundary), `render` gives the `↳ Title — description` line."""

from bot.previews.addresses import allow_any, is_public
from bot.previews.fetch import preview
from bot.previews.page import Preview
from bot.previews.text import extract_links, render

__all__ = ["Preview", "allow_any", "extract_links", "is_public", "preview", "render"]
