"""A Slack channel's past through the Web API (SPEC §10): every page of `conversations.history` and of each
thread's `conversations.replies`, rate limits waited out, authors named via `users.info` once per run, text
rendered as the live bridge renders it (convert.py) — handed out oldest first, each thread right after its parent.

Slack pages a channel newest first and an import wants it oldest first. Rather than hold the channel in memory,
every rendered message goes to a `MessageSpool` (a private temporary SQLite file) and comes back out sorted once
the channel has been read: memory stays at one page plus SQLite's page cache, the disk holds the channel's text
(deleted when done), Slack is asked for each page once, and every API error surfaces before the first message.
export.py orders a workspace export with the same spool and the same rendering."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_async_handlers import AsyncConnectionErrorRetryHandler
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.web.async_slack_response import AsyncSlackResponse

from adapters.slack.channels import ChannelDirectory
from adapters.slack.client import BAD_TOKEN_ERRORS, CALL_ERRORS, TIMEOUT_SECONDS, api_error
from adapters.slack.convert import UnreadableJob, channel_message, parse_ts, ts_sequence, ts_time
from adapters.slack.jobs import as_dict, as_str
from adapters.slack.people import Directory, SlackPerson, person_from_user
from adapters.slack.threads import THREAD_SUBTYPES
from bot.importing.model import EXIT_FAILED, EXIT_USAGE, ChatInfo, ImportedMessage, ImportRefused

PAGE_SIZE = 200  # Slack's recommended page size (apps under the 2025 limits get at most 15 a page anyway)
#: 429s in a row for one call before the import gives up (each wait is as long as Slack's Retry-After says).
MAX_WAITS = 30
#: Slack always sends Retry-After with a 429; without one, a minute is its coarsest rate-limit window.
DEFAULT_RETRY_SECONDS = 60.0
#: users.info answers for an id it cannot show; the author keeps the name on the message (or the id).
UNKNOWN_USER_ERRORS = ("user_not_found", "user_not_visible", "users_not_found")

Sleep = Callable[[float], Awaitable[None]]


def import_client(token: str, base_url: str) -> AsyncWebClient:
    """A Web API client for imports: connection errors retried, 429s left to `read_channel` (which waits with
    the sleep it is given). The bridge's `client.web_client` also retries 429s itself, sleeping for real."""
    return AsyncWebClient(
        token=token,
        base_url=base_url if base_url.endswith("/") else base_url + "/",
        timeout=TIMEOUT_SECONDS,
        retry_handlers=[AsyncConnectionErrorRetryHandler()],
    )


# --- shared with export.py: the order, and a message as an import shows it ----------------------------------


class MessageSpool:
    """Messages kept on disk until all are read, then out in thread order: by time, each thread's replies (by
    time) right after their parent; a reply whose parent is not there comes at its own time. A message seen
    twice (a broadcast reply is in the history and in its thread) is kept once. Memory: SQLite's page cache."""

    def __init__(self, source: str, chat: str) -> None:
        self._source = source
        self._chat = chat
        # "": a private temporary file, deleted on close. Used by one reader at a time, but perhaps from a worker
        # thread per `next()` (asyncio.to_thread), hence any thread.
        self._db = sqlite3.connect("", check_same_thread=False)
        self._db.execute("PRAGMA journal_mode = OFF")
        self._db.execute("PRAGMA synchronous = OFF")
        self._db.execute(
            "CREATE TABLE message (ts TEXT PRIMARY KEY, seq INTEGER NOT NULL, thread TEXT,"
            " author TEXT NOT NULL, text TEXT NOT NULL)"
        )
        self.count = 0

    def add(self, ts: str, thread_ts: str | None, author: str, text: str) -> None:
        """`ts` and `thread_ts` as `parse_ts` gives them; a parent's `thread_ts` is its own `ts`."""
        thread = thread_ts if thread_ts and thread_ts != ts else None
        row = (ts, ts_sequence(ts), thread, author, text)
        self.count += self._db.execute("INSERT OR IGNORE INTO message VALUES (?, ?, ?, ?, ?)", row).rowcount

    def __iter__(self) -> Iterator[ImportedMessage]:
        rows = self._db.execute(
            "SELECT m.ts, m.author, m.text FROM message AS m LEFT JOIN message AS parent ON parent.ts = m.thread"
            " ORDER BY COALESCE(parent.seq, m.seq), COALESCE(parent.ts, m.ts), m.seq, m.ts"
        )
        for ts, author, text in rows:
            yield ImportedMessage(self._source, self._chat, ts, author, text, ts_time(ts))

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> MessageSpool:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class KnownPeople(Directory):
    """The `Directory` convert.py renders with, asking `find` once per person for the whole run."""

    def __init__(self, find: Callable[[str, str | None], Awaitable[SlackPerson]]) -> None:
        self._find = find
        self._found: dict[str, SlackPerson] = {}

    def known(self, user_id: str) -> SlackPerson | None:
        return self._found.get(user_id)

    async def person(self, user_id: str, fallback_name: str | None = None) -> SlackPerson:
        if user_id not in self._found:
            self._found[user_id] = await self._find(user_id, fallback_name)
        return self._found[user_id]


class KnownChannels(ChannelDirectory):
    """The `ChannelDirectory` convert.py renders `<#C123>` with, asking `find` once per channel for the run."""

    def __init__(self, find: Callable[[str], Awaitable[str | None]]) -> None:
        self._find = find
        self._found: dict[str, str | None] = {}

    async def name(self, channel_id: str) -> str | None:
        if channel_id not in self._found:
            self._found[channel_id] = await self._find(channel_id)
        return self._found[channel_id]


def file_placeholders(message: dict[str, Any]) -> list[str]:
    """`[file report.pdf]` for each file the message carries (`[file]` for a deleted or hidden one)."""
    listed = message.get("files")
    files = [as_dict(item) for item in listed] if isinstance(listed, list) else []
    if not files and isinstance(message.get("file"), dict):  # exports from before 2019: one `file`
        files = [message["file"]]
    shown = []
    for item in files:
        hidden = item.get("mode") in ("tombstone", "hidden_by_limit")
        name = "" if hidden else as_str(item.get("name")) or as_str(item.get("title"))
        shown.append(f"[file {name}]" if name else "[file]")
    return shown


async def render_message(
    message: dict[str, Any], chat: str, people: Directory, channels: ChannelDirectory | None
) -> tuple[str, str] | None:
    """(author, text) of a message as an import shows it, or None for what nobody wrote (joins, topic changes,
    "This message was deleted." tombstones) and for a message with nothing to show. Text as the live bridge
    renders it (`@Real Name`, `#channel`, `label (url)`, shared messages), file placeholders first; a message
    that only shares another is `Poster (shared from Author)`."""
    if message.get("subtype") not in THREAD_SUBTYPES or message.get("hidden"):
        return None
    try:
        inbound = await channel_message(message, chat, people, channels)
    except UnreadableJob:
        return None
    text = "\n".join(part for part in [*file_placeholders(message), inbound.text.strip()] if part)
    if not text:
        return None
    author, origin = inbound.sender_name, inbound.forward_origin
    if origin is not None and origin.name != author:
        author = f"{author} (shared from {origin.name})"
    return author, text


# --- reading a channel through the Web API ------------------------------------------------------------------


def retry_after(response: Any) -> float:
    """Seconds Slack asks to wait (the `Retry-After` header of a 429)."""
    headers = getattr(response, "headers", None) or {}
    for key, value in headers.items():
        if str(key).lower() == "retry-after":
            try:
                return max(0.0, float(value))
            except (TypeError, ValueError):
                break
    return DEFAULT_RETRY_SECONDS


def _scope(method: str, channel: str) -> str:
    """The scope `method` needs here, for a `missing_scope` answer that does not name it (`needed`)."""
    if method == "users.info":
        return "users:read"
    if method == "conversations.info":
        return "channels:read (groups:read for a private channel)"
    if channel.startswith("D"):
        return "im:history"
    if channel.startswith("G"):
        return "groups:history"
    return "channels:history (groups:history for a private channel)"


def _has_replies(message: dict[str, Any]) -> bool:
    count = message.get("reply_count")
    if isinstance(count, int) and not isinstance(count, bool):
        return count > 0
    return message.get("thread_ts") == message.get("ts") and bool(message.get("latest_reply"))


class _ChannelReader:
    """One channel's read: the calls (each 429 waited out), the names, and what Slack's refusals mean."""

    def __init__(self, client: AsyncWebClient, channel: str, sleep: Sleep) -> None:
        self._client = client
        self._channel = channel
        self._sleep = sleep
        self._method = "auth.test"
        self._bot = "omi-bridge"
        self.people = KnownPeople(self._person)
        self.channels = KnownChannels(self._channel_name)

    async def call(self, method: str, **args: Any) -> AsyncSlackResponse:
        self._method = method
        call = getattr(self._client, method.replace(".", "_"))
        waits = 0
        while True:
            try:
                return await call(**args)
            except SlackApiError as exc:
                if exc.response.status_code != 429 or waits == MAX_WAITS:
                    raise
                waits += 1
                await self._sleep(retry_after(exc.response))

    async def identify(self) -> None:
        """The token is checked first, and the bot's name learnt for the `/invite @name` advice."""
        answer = await self.call("auth.test")
        self._bot = as_str(answer.get("user")) or self._bot

    async def _person(self, user_id: str, fallback_name: str | None) -> SlackPerson:
        try:
            answer = await self.call("users.info", user=user_id)
        except SlackApiError as exc:
            if api_error(exc) in UNKNOWN_USER_ERRORS:
                return SlackPerson(user_id, fallback_name or user_id)
            raise
        user = answer.get("user")
        return person_from_user(user if isinstance(user, dict) else {}, user_id)

    async def _channel_name(self, channel_id: str) -> str | None:
        """A channel's name for a mention without one; shown by its id when Slack won't say."""
        try:
            answer = await self.call("conversations.info", channel=channel_id)
        except CALL_ERRORS:
            return None
        name = as_dict(answer.get("channel")).get("name")
        return name if isinstance(name, str) and name else None

    async def pages(self, method: str, **args: Any) -> AsyncIterator[list[dict[str, Any]]]:
        cursor: str | None = None
        while True:
            page = await self.call(method, channel=self._channel, cursor=cursor, limit=PAGE_SIZE, **args)
            listed = page.get("messages")
            yield [item for item in listed if isinstance(item, dict)] if isinstance(listed, list) else []
            following = as_str(as_dict(page.get("response_metadata")).get("next_cursor")) or None
            if following is None or following == cursor:  # the last page (or a cursor that goes nowhere)
                return
            cursor = following

    async def keep(self, spool: MessageSpool, message: dict[str, Any], window: tuple[float, float]) -> None:
        ts = parse_ts(message.get("ts"))
        if ts is None or not window[0] <= float(ts) <= window[1]:
            return
        rendered = await render_message(message, self._channel, self.people, self.channels)
        if rendered is not None:
            spool.add(ts, parse_ts(message.get("thread_ts")), *rendered)

    async def refusal(self, exc: BaseException) -> ImportRefused:
        """What the user is told (and the exit code) when Slack refused `self._method` or could not be reached."""
        error, method = api_error(exc), self._method
        if error in BAD_TOKEN_ERRORS:
            return ImportRefused(
                f"Slack refused the bot token ({error}): check SLACK_BOT_TOKEN (the app's Bot User OAuth Token,"
                " xoxb-…) and that the app is still installed in the workspace",
                EXIT_FAILED,
            )
        if error == "missing_scope":
            needed = exc.response.get("needed") if isinstance(exc, SlackApiError) else None
            scope = as_str(needed) or _scope(method, self._channel)
            return ImportRefused(
                f"the Slack app lacks the {scope} scope that {method} needs: add it to the app (slack-manifest.yml"
                " lists it), reinstall the app to the workspace, then import again",
                EXIT_FAILED,
            )
        if error == "not_in_channel":
            where = await self._where()
            return ImportRefused(
                f"the bot is not in {where}: type /invite @{self._bot} in the channel, then import again",
                EXIT_FAILED,
            )
        if error == "channel_not_found":
            return ImportRefused(
                f"Slack has no channel {self._channel} that the bot can see: check the id (the channel's details"
                f" show it, at the bottom of About); for a private channel, /invite @{self._bot} first",
                EXIT_USAGE,
            )
        if error == "ratelimited":
            return ImportRefused(
                f"Slack kept answering {method} with 'rate limited' ({MAX_WAITS} waits in a row); try again later"
                " (messages already imported are never sent twice)",
                EXIT_FAILED,
            )
        if not isinstance(exc, SlackApiError):
            return ImportRefused(f"could not reach Slack ({error}); check the network and try again", EXIT_FAILED)
        return ImportRefused(f"Slack refused {method} for {self._channel} ({error})", EXIT_FAILED)

    async def _where(self) -> str:
        if self._channel.startswith("D"):
            return "this direct message"
        name = await self._channel_name(self._channel)
        return f"#{name}" if name else self._channel


async def channel_info(client: AsyncWebClient, channel: str, *, sleep: Sleep = asyncio.sleep) -> ChatInfo:
    """The channel's name and kind (`conversations.info`, needs channels:read / groups:read), e.g. for a
    dry run's heading; refusals as `read_channel` words them."""
    reader = _ChannelReader(client, channel, sleep)
    try:
        found = as_dict((await reader.call("conversations.info", channel=channel)).get("channel"))
    except CALL_ERRORS as exc:
        raise await reader.refusal(exc) from exc
    kind = "dm" if found.get("is_im") else "mpim" if found.get("is_mpim") else "channel"
    if kind == "channel" and found.get("is_private"):
        kind = "private"
    return ChatInfo(id=channel, name=as_str(found.get("name")) or channel, type=kind)


async def read_channel(
    client: AsyncWebClient,
    channel: str,
    *,
    oldest: float | None,
    latest: float | None,
    sleep: Sleep = asyncio.sleep,
    on_page: Callable[[int], None] | None = None,
) -> AsyncIterator[ImportedMessage]:
    """The channel's messages from `oldest` to `latest` (epoch seconds, both included; None: no bound), oldest
    first, each thread's replies (in the window) right after their parent. The whole channel is read before the
    first message comes out (see the module's note), so an `ImportRefused` (exit code in it) is raised by the
    first `__anext__` and never after a message was handed out. `sleep` waits out each 429's Retry-After;
    `on_page` is told how many messages were read so far after each history page. Use `import_client`."""
    reader = _ChannelReader(client, channel, sleep)
    window = (oldest if oldest is not None else 0.0, latest if latest is not None else float("inf"))
    bounds = {
        "oldest": None if oldest is None else f"{oldest:.6f}",
        "latest": None if latest is None else f"{latest:.6f}",
        "inclusive": True,
    }
    with MessageSpool("slack", channel) as spool:
        try:
            await reader.identify()
            async for page in reader.pages("conversations.history", **bounds):
                for message in page:
                    await reader.keep(spool, message, window)
                    parent = parse_ts(message.get("ts"))
                    if parent is None or not _has_replies(message):
                        continue
                    # The thread repeats its parent (and a broadcast reply is in both): the spool keeps each once.
                    async for replies in reader.pages("conversations.replies", ts=parent):
                        for reply in replies:
                            await reader.keep(spool, reply, window)
                if on_page is not None:
                    on_page(spool.count)
        except CALL_ERRORS as exc:
            raise await reader.refusal(exc) from exc
        for imported in spool:
            yield imported
