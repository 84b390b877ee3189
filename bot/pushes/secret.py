"""The Omi webhook's secret path segment (SPEC §12): `OMI_WEBHOOK_SECRET` when set ("new,old" while rotating),
else generated once (`secrets.token_urlsafe`, 256 bits) and stored, the same for every instance on the database."""

from __future__ import annotations

import hmac
import secrets

from pydantic import SecretStr

from bot.store.values import StoredValues

SECRET_KEY = "omi_webhook_secret"  # noqa: S105 - the name it is stored under
PATH = "/omi/webhook"


async def webhook_secrets(configured: SecretStr | None, values: StoredValues) -> list[str]:
    """The secrets accepted now, the one to hand out first (`new` of "new,old")."""
    if configured is not None:
        return [part for part in configured.get_secret_value().split(",") if part]
    return [await values.get_or_create(SECRET_KEY, lambda: secrets.token_urlsafe(32))]


def matches(given: str, accepted: list[str]) -> bool:
    """Constant time, against every accepted secret (each compared, whatever the first said)."""
    found = False
    for secret in accepted:
        found |= hmac.compare_digest(given.encode(), secret.encode())
    return found


def webhook_url(public_url: str, secret: str) -> str:
    """What the operator pastes as the Omi app's webhook URL (Memory creation)."""
    return f"{public_url.rstrip('/')}{PATH}/{secret}"
