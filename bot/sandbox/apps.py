"""Integration apps and their keys: ids, `sk_` keys stored hashed, capabilities, private apps and who may use them."""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from bot.sandbox.store import AppRecord, SandboxStore

ALL_CAPABILITIES: tuple[str, ...] = (
    "create_conversation",
    "create_memories",
    "read_conversations",
    "read_memories",
    "read_tasks",
)
#: Omi's app store and `ActionType` only offer these older names; the server accepts them as the same actions.
CAPABILITY_ALIASES = {"create_facts": "create_memories", "read_facts": "read_memories"}
KNOWN_CAPABILITIES = frozenset(ALL_CAPABILITIES) | frozenset(CAPABILITY_ALIASES)

DEFAULT_APP_NAME = "omi-bridge sandbox"


@dataclass(frozen=True)
class SandboxApp:
    """An integration app and one of its keys (the key is kept out of reprs)."""

    app_id: str
    api_key: str = field(repr=False)


def key_hash(api_key: str) -> str:
    """Omi's `_lookup_api_key`: sha256 of the key without its optional `sk_` prefix."""
    secret = api_key[3:] if api_key.startswith("sk_") else api_key
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def new_app_id(now: float) -> str:
    """A ULID, the shape of Omi's app ids (48-bit milliseconds + 80 random bits, Crockford base32)."""
    alphabet = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
    value = (int(now * 1000) << 80) | secrets.randbits(80)
    return "".join(alphabet[(value >> shift) & 31] for shift in range(125, -1, -5))


def normalise_capabilities(capabilities: Iterable[str]) -> tuple[str, ...]:
    if isinstance(capabilities, str):
        raise ValueError("capabilities must be a list of names, not one string")
    names = tuple(dict.fromkeys(capabilities))
    unknown = [name for name in names if name not in KNOWN_CAPABILITIES]
    if unknown:
        raise ValueError(f"unknown capabilities {unknown}; known: {sorted(KNOWN_CAPABILITIES)}")
    return names


def has_capability(app: AppRecord, capability: str) -> bool:
    return any(CAPABILITY_ALIASES.get(name, name) == capability for name in app.capabilities)


class AppRegistry:
    """Apps, keys, enabled uids and testers, over the sandbox store. Unknown app ids raise LookupError."""

    def __init__(self, store: SandboxStore, clock: Callable[[], float]) -> None:
        self._store = store
        self._clock = clock

    def create(
        self,
        name: str,
        capabilities: Iterable[str],
        setup_completed_url: str | None = None,
        *,
        private: bool = False,
        owner: str | None = None,
        webhook_url: str | None = None,
    ) -> SandboxApp:
        record = AppRecord(
            new_app_id(self._clock()),
            name,
            normalise_capabilities(capabilities),
            setup_completed_url,
            private=private,
            owner=owner,
            webhook_url=webhook_url,
        )
        self._store.add_app(record, self._clock())
        return SandboxApp(record.app_id, self.mint_key(record.app_id))

    def mint_key(self, app_id: str) -> str:
        """A new `sk_` + 32 hex key; only its hash is stored, and the app's older keys keep working."""
        self.require(app_id)
        api_key = "sk_" + secrets.token_hex(16)
        self._store.add_key(app_id, key_hash(api_key), self._clock())
        return api_key

    def get(self, app_id: str) -> AppRecord | None:
        return self._store.app(app_id)

    def require(self, app_id: str) -> AppRecord:
        app = self._store.app(app_id)
        if app is None:
            raise LookupError(f"no sandbox app {app_id!r}")
        return app

    def delete(self, app_id: str) -> None:
        """Drop the app's record but keep its keys: the next call with such a key reaches 404 `App not found`."""
        self.require(app_id)
        self._store.delete_app(app_id)

    def set_capabilities(self, app_id: str, capabilities: Iterable[str]) -> None:
        self.require(app_id)
        self._store.set_capabilities(app_id, normalise_capabilities(capabilities))

    def set_setup_completed_url(self, app_id: str, url: str | None) -> None:
        self.require(app_id)
        self._store.set_setup_completed_url(app_id, url)

    def set_webhook_url(self, app_id: str, url: str | None) -> None:
        self.require(app_id)
        self._store.set_webhook_url(app_id, url)

    def key_matches(self, app_id: str, api_key: str) -> bool:
        return self._store.key_matches(app_id, key_hash(api_key))

    def enable(self, app_id: str, uid: str) -> None:
        self.require(app_id)
        self._store.set_enabled(app_id, uid, True)

    def disable(self, app_id: str, uid: str) -> None:
        self._store.set_enabled(app_id, uid, False)

    def is_enabled(self, app_id: str, uid: str) -> bool:
        return self._store.is_enabled(app_id, uid)

    def enabled_apps(self, uid: str) -> list[AppRecord]:
        return self._store.enabled_apps(uid)

    def set_tester(self, app_id: str, uid: str, tester: bool) -> None:
        self.require(app_id)
        self._store.set_tester(app_id, uid, tester)

    def available_to(self, app: AppRecord, uid: str) -> bool:
        """Omi's `get_available_app_by_id(app_id, uid)`: a private app exists only for its owner and testers."""
        return not app.private or uid == app.owner or self._store.is_tester(app.app_id, uid)

    def ensure_default(self, uid: str | None = None) -> tuple[str, str, str]:
        """(app_id, a new api_key, test uid) of the default app, created once per database, enabled for the uid."""
        app_id = self._store.meta("default_app_id")
        if app_id is None or self._store.app(app_id) is None:
            app_id = self.create(DEFAULT_APP_NAME, ALL_CAPABILITIES).app_id
            self._store.set_meta("default_app_id", app_id)
        else:
            self._store.set_capabilities(app_id, ALL_CAPABILITIES)
        uid = uid or self._store.meta("default_uid") or f"sandbox-user-{secrets.token_hex(4)}"
        self._store.set_meta("default_uid", uid)
        self._store.set_enabled(app_id, uid, True)
        return app_id, self.mint_key(app_id), uid
