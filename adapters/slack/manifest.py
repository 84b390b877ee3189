"""`omi-bridge slack-manifest`: the packaged Slack app manifest with this deployment's public URL filled in."""

from __future__ import annotations

from importlib import resources

PLACEHOLDER = "https://YOUR_PUBLIC_URL"
SOCKET_MODE_OFF = "socket_mode_enabled: false"


def manifest_template() -> str:
    """The packaged copy of the repository's `slack-manifest.yml` (a test keeps the two identical)."""
    return resources.files("adapters.slack").joinpath("slack-manifest.yml").read_text(encoding="utf-8")


def render_manifest(public_url: str | None, *, socket_mode: bool = False) -> str:
    """With `public_url` None the placeholder stays, for the user to replace (Slack needs https URLs)."""
    text = manifest_template()
    if public_url:
        text = text.replace(PLACEHOLDER, public_url.rstrip("/"))
    if socket_mode:
        text = text.replace(SOCKET_MODE_OFF, "socket_mode_enabled: true")
    return text
