"""One command registry for every platform: ids, metadata and the handler (mautrix's command decorator)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Literal

from bot import texts
from bot.commands.context import CommandContext
from bot.events import InboundMessage
from bot.store import Link

Handler = Callable[[CommandContext], Awaitable[None]]
#: What the caller must have: nothing; a link, claimed or verified (writes are held until verified);
#: a verified link (reads: only a verified link may see Omi data).
Needs = Literal["nothing", "link", "verified"]


class UsageError(Exception):
    """Bad arguments: the router answers with the command's usage line (plus this message, if any)."""


@dataclass(frozen=True)
class CommandSpec:
    name: str
    handler: Handler
    help: str
    usage: str
    needs: Needs
    private_only: bool  # answered only in a private chat (it shows or changes someone's data)
    hidden: bool  # not listed in /help (e.g. button callbacks)
    aliases: tuple[str, ...]

    def refusal(self, message: InboundMessage, link: Link | None, claim: Link | None) -> Refusal | None:
        """Why this caller may not run the command here (mautrix's `get_permission_error`), or None."""
        if self.private_only and message.chat_kind != "private":
            return Refusal(texts.PRIVATE_ONLY)
        if self.needs == "verified" and link is None:
            return Refusal(texts.needs_verify(message.platform) if claim else texts.not_linked(message.platform))
        if self.needs == "link" and link is None and claim is None:
            return Refusal(texts.not_linked(message.platform))
        return None


@dataclass(frozen=True)
class Refusal:
    """A command the caller may not run: the answer, always in their private chat."""

    text: str


class CommandRegistry:
    def __init__(self) -> None:
        self._by_name: dict[str, CommandSpec] = {}
        self._ordered: list[CommandSpec] = []

    def command(
        self,
        name: str,
        *,
        help: str,
        usage: str = "",
        needs: Needs = "nothing",
        private_only: bool = False,
        hidden: bool = False,
        aliases: tuple[str, ...] = (),
    ) -> Callable[[Handler], Handler]:
        def register(handler: Handler) -> Handler:
            spec = CommandSpec(name, handler, help, usage or f"/{name}", needs, private_only, hidden, aliases)
            for key in (name, *aliases):
                if key in self._by_name:  # Hubot's alias-collision check, at import time
                    raise ValueError(f"command {key!r} registered twice")
                self._by_name[key] = spec
            self._ordered.append(spec)
            return handler

        return register

    def get(self, name: str) -> CommandSpec | None:
        return self._by_name.get(name.lower())

    def listed(self) -> list[CommandSpec]:
        return [spec for spec in self._ordered if not spec.hidden]


#: The registry every adapter is served from.
REGISTRY = CommandRegistry()
