"""The terminal console: one line from stdin is one message; replies and Omi notifications are printed."""

from __future__ import annotations

import asyncio
import getpass
import json
import sys
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import TextIO

from bot.events import Command, InboundMessage, Platform, Reply
from bot.store import Arrival, InboxRow

CHAT_ID = "terminal"
USER_ID = "local"
ACCOUNT = f"{Platform.CONSOLE.value}:{USER_ID}"


def parse_command(text: str) -> Command | None:
    """`/name args` (also `/name@bot args`, as Telegram writes it) → Command; anything else is a message."""
    if not text.startswith("/") or len(text) < 2 or text[1].isspace():
        return None
    head, _, args = text[1:].partition(" ")
    name = head.split("@", 1)[0].lower()
    if not name or not all(c.isalnum() or c == "_" for c in name):
        return None
    return Command(name=name, args=args.strip())


class ConsoleAdapter:
    """Reads lines, accepts each through the bridge, prints what the bridge answers."""

    platform = Platform.CONSOLE

    def __init__(
        self,
        accept: Callable[[Arrival], object],
        *,
        stdin: TextIO | None = None,
        stdout: TextIO | None = None,
        user_name: str | None = None,
    ) -> None:
        self._accept = accept
        self._stdin = stdin or sys.stdin
        self._stdout = stdout or sys.stdout
        self._user_name = user_name or _login_name()
        self._sequence = int(datetime.now(UTC).timestamp() * 1000)
        #: With the embedded sandbox: `/device TEXT` records TEXT as if the wearable had (SPEC §6 "Console").
        self.device: Callable[[str], Awaitable[None]] | None = None

    # --- inbound --------------------------------------------------------------------------------------

    async def read_lines(self) -> None:
        """Until EOF: every non-empty line is accepted (committed) before the next one is read."""
        while True:
            line = await asyncio.to_thread(self._stdin.readline)
            if not line:
                return
            text = line.rstrip("\r\n")
            if not text.strip():
                continue
            if text.split(maxsplit=1)[0] == "/device":
                await self._device(text.removeprefix("/device").strip())
                continue
            self._sequence += 1
            at = datetime.now(UTC).isoformat()
            payload = {"seq": self._sequence, "text": text, "at": at, "name": self._user_name}
            await self._accept(Arrival(Platform.CONSOLE.value, "line", json.dumps(payload)))  # type: ignore[misc]

    async def _device(self, text: str) -> None:
        if self.device is None:
            self.print("bot", "/device works only with the embedded Omi sandbox (no OMI_API_KEY set).")
        elif not text:
            self.print("bot", "Usage: /device TEXT — a conversation as if your Omi wearable had recorded it.")
        else:
            await self.device(text)

    async def parse(self, row: InboxRow) -> InboundMessage | None:
        data = json.loads(row.payload)
        text = str(data.get("text", ""))
        command = parse_command(text)
        return InboundMessage(
            platform=Platform.CONSOLE,
            chat_id=CHAT_ID,
            sender_id=USER_ID,
            sender_name=str(data.get("name") or "You"),
            message_id=str(data["seq"]),
            sequence=int(data["seq"]),
            sent_at=datetime.fromisoformat(data["at"]),
            text="" if command else text,
            command=command,
        )

    # --- outbound -------------------------------------------------------------------------------------

    async def send(self, reply: Reply) -> None:
        text = reply.text
        if reply.reaction and text:
            text = f"{reply.reaction} {text}"
        elif reply.reaction:
            text = reply.reaction
        for button in reply.buttons:
            text += f"\n  [{button.label}: type /{button.data}]"
        self.print("bot", text)

    def print(self, who: str, text: str) -> None:
        lines = text.splitlines() or [""]
        pad = " " * (len(who) + 2)
        self._stdout.write(f"{who}> {lines[0]}\n" + "".join(f"{pad}{line}\n" for line in lines[1:]))
        self._stdout.flush()


def _login_name() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "You"
