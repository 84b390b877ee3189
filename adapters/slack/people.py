"""Who a Slack user is (real name, time zone, language), from `users.info`, cached."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import tzinfo
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from slack_sdk.web.async_client import AsyncWebClient

from adapters.slack.client import CALL_ERRORS, api_error
from bot.clock import Clock

log = logging.getLogger(__name__)

#: Names and zones change rarely; an hour keeps users.info calls to one per person per hour.
CACHE_SECONDS = 3600


@dataclass(frozen=True, slots=True)
class SlackPerson:
    id: str
    name: str  # the real name, as SPEC §6 wants senders named
    tz: str | None = None  # IANA name, e.g. "Europe/Berlin"
    locale: str | None = None  # e.g. "en-US"

    @property
    def zone(self) -> tzinfo | None:
        if not self.tz:
            return None
        try:
            return ZoneInfo(self.tz)
        except (ZoneInfoNotFoundError, ValueError):
            return None

    @property
    def language(self) -> str | None:
        """`en-US` → `en`."""
        return self.locale.split("-", 1)[0].lower() if self.locale else None


def person_from_user(user: dict[str, Any], user_id: str = "") -> SlackPerson:
    """A `users.info` user; `user_id`: the id asked about, for an answer that leaves it out."""
    profile = user.get("profile") if isinstance(user.get("profile"), dict) else {}
    person_id = user.get("id") if isinstance(user.get("id"), str) and user.get("id") else user_id
    names = (user.get("real_name"), profile.get("real_name"), profile.get("display_name"), user.get("name"))
    name = next((found for found in names if isinstance(found, str) and found), person_id)
    tz, locale = user.get("tz"), user.get("locale")
    return SlackPerson(
        id=person_id,
        name=name,
        tz=tz if isinstance(tz, str) else None,
        locale=locale if isinstance(locale, str) else None,
    )


class Directory:
    """`users.info` (with the locale) behind a cache; a failed look-up falls back to a name from the payload."""

    def __init__(self, client: AsyncWebClient, clock: Clock) -> None:
        self._client = client
        self._clock = clock
        self._people: dict[str, tuple[SlackPerson, float]] = {}

    def known(self, user_id: str) -> SlackPerson | None:
        """The cached person, without a call (the core's synchronous time-zone hook uses this)."""
        cached = self._people.get(user_id)
        return cached[0] if cached is not None else None

    async def person(self, user_id: str, fallback_name: str | None = None) -> SlackPerson:
        cached = self._people.get(user_id)
        if cached is not None and cached[1] > self._clock.now():
            return cached[0]
        try:
            answer = await self._client.users_info(user=user_id, include_locale=True)
        except CALL_ERRORS as exc:
            log.warning("slack: users.info failed (%s); using the name from the payload", api_error(exc))
            return cached[0] if cached is not None else SlackPerson(user_id, fallback_name or user_id)
        user = answer.get("user")
        person = person_from_user(user if isinstance(user, dict) else {}, user_id)
        self._people[user_id] = (person, self._clock.now() + CACHE_SECONDS)
        return person

    async def names(self, user_ids: set[str]) -> dict[str, str]:
        return {user_id: (await self.person(user_id)).name for user_id in sorted(user_ids)}
