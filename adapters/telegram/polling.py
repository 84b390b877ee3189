"""Long polling without losing anything: each `getUpdates` batch is accepted (committed) before the next offset
confirms it to Telegram, and the offset is kept in the database so a restart resumes where it stopped.

Several instances may share one PostgreSQL database (SPEC §13); only the holder of the `telegram:polling` lease
polls. The lease lasts 15 s and a task of its own renews it every 5 s, alongside a long poll of at most 10 s. An
instance that does not hold it tries to take it every 5 s, so a dead holder's lease (run out after 15 s) is taken
within 20 s. A missed renewal (refused, failed, or not done in time to keep the lease) cancels the poll in flight
and stops polling until the lease is held again; so does a 409 `Conflict` (another process polls this bot, or a
webhook is set), after which the lease is given back. With SQLite (one process per file) the lease is simply always
held. Updates fetched just before a lease was lost are still accepted (accepting is idempotent: dedupe keys on the
update id), and the stored offset never moves backwards."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from telegram.error import Conflict, Forbidden, InvalidToken, NetworkError, RetryAfter, TelegramError

from adapters.telegram.bot_api import POLL_TIMEOUT_SECONDS, IntakeBot
from adapters.telegram.intake import ALLOWED_UPDATES, arrival_for
from adapters.telegram.send import retry_seconds
from bot.backoff import Backoff
from bot.leasing import HeldLease
from bot.store import Accepted, Arrival, DatabaseUnavailable
from bot.store.values import StoredValues

log = logging.getLogger(__name__)

OFFSET_KEY = "telegram_offset"
#: The lease whose holder polls (SPEC §13).
LEASE_NAME = "telegram:polling"
LEASE_SECONDS = 15.0
#: The holder renews its lease this often; a renewal not done by `lease - renew` seconds after the last is missed.
RENEW_SECONDS = 5.0
#: An instance that does not hold the lease tries to take it this often.
STANDBY_SECONDS = 5.0

#: `Poller.state`: polling (holds the lease), standby (another instance holds it), paused (holds nothing, because
#: of a conflict or a database that cannot take the lease; `problem` says which), stopped.
STARTING, POLLING, STANDBY, PAUSED, STOPPED = "starting", "polling", "standby", "paused", "stopped"

T = TypeVar("T")


class Poller:
    def __init__(
        self,
        bot: IntakeBot,
        accept: Callable[[Arrival], Awaitable[Accepted]],
        values: StoredValues,
        lease: HeldLease,
        *,
        poll_timeout: int = POLL_TIMEOUT_SECONDS,
        renew_seconds: float = RENEW_SECONDS,
        standby_seconds: float = STANDBY_SECONDS,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        backoff: Backoff | None = None,
    ) -> None:
        if not 0 < renew_seconds < lease.seconds:
            raise ValueError(f"the lease ({lease.seconds} s) must outlast a renewal interval ({renew_seconds} s)")
        self._bot = bot
        self._accept = accept
        self._values = values
        self._lease = lease
        self._poll_timeout = poll_timeout
        self._renew_seconds = renew_seconds
        self._standby_seconds = standby_seconds
        self._sleep = sleep
        self._backoff = backoff or Backoff()
        self._task: asyncio.Task[None] | None = None
        self._taken_at = 0.0  # loop time just before the last successful take
        self._warned: str | None = None  # the last reason logged, until a poll succeeds again
        self._waiters: list[tuple[asyncio.Future[None], Callable[[Poller], bool]]] = []
        self.state = STARTING
        self.problem: str | None = None  # what the health check shows while polling fails

    @property
    def standing_by(self) -> bool:
        """Another instance holds the lease and polls: nothing is wrong here."""
        return self.state == STANDBY

    async def start(self) -> None:
        """Try to take the lease once (so a single instance polls as soon as `start` returns), then run the loop."""
        if self._task is not None:
            return
        held = await self._take()
        self._task = asyncio.create_task(self._run(held), name="telegram-polling")

    async def stop(self) -> None:
        """Ends the loop wherever it is (a batch not yet committed is simply asked for again after a restart) and
        gives the lease back, so another instance takes over at once."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        await self._release()
        self._set(STOPPED)

    async def wait_for(self, predicate: Callable[[Poller], bool], timeout: float = 5.0) -> None:
        """Until `predicate(self)` holds after a change of `state` or `problem` (tests, without sleeping)."""
        if predicate(self):
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        waiter = (future, predicate)
        self._waiters.append(waiter)
        try:
            async with asyncio.timeout(timeout):
                await future
        finally:
            self._waiters.remove(waiter)

    # --- the lease ------------------------------------------------------------------------------------

    async def _run(self, held: bool) -> None:
        while True:
            if held:
                if await self._poll_while_held() == "conflict":
                    await self._release()  # another process polls (or a webhook is set): let the others try too
                    self._set(PAUSED)
                    await self._sleep(self._backoff.next_delay())
                # A missed renewal: take the lease again at once (it may still be ours, the renewal was just slow).
            else:
                await self._sleep(self._standby_seconds)
            held = await self._take()

    async def _take(self) -> bool:
        started = asyncio.get_running_loop().time()
        try:
            held = await self._lease.take()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self._failed(_reason(exc))
            self._set(PAUSED)
            return False
        if held:
            self._taken_at = started
            if self.state != POLLING:
                log.info("telegram polling: this instance holds the polling lease and polls")
            self._set(POLLING)
        else:
            if self.state != STANDBY:
                log.info("telegram polling: standing by, polling runs on another instance")
            self.problem = None  # nothing is wrong here; a conflict is still not logged again (instances take turns)
            self._warned = self._warned if self._warned == _CONFLICT else None
            self._set(STANDBY)
        return held

    async def _release(self) -> None:
        """Give the lease back (bounded: a database that does not answer must not hold up a shutdown)."""
        try:
            async with asyncio.timeout(self._renew_seconds):
                await self._lease.release()
        except TimeoutError:
            why = "the database did not answer in time"
        except Exception as exc:
            why = _reason(exc)
        else:
            return
        log.warning("telegram polling: could not give the polling lease back (%s); it runs out by itself", why)

    async def _poll_while_held(self) -> str:
        """Polls until the lease is lost ("lost") or Telegram answers 409 ("conflict")."""
        lost = asyncio.Event()
        renewer = asyncio.create_task(self._keep_renewing(lost), name="telegram-polling-lease")
        try:
            return await self._poll(lost)
        finally:
            renewer.cancel()
            await asyncio.gather(renewer, return_exceptions=True)

    async def _keep_renewing(self, lost: asyncio.Event) -> None:
        """Renews every `renew_seconds`, whatever the poll is doing. A renewal refused, failed, or not done by
        `lease - renew` seconds after the last one (so the poll in flight ends before the lease can run out and
        another instance start polling) is a missed one: `lost` is set."""
        loop = asyncio.get_running_loop()
        renewed_at = self._taken_at
        while True:
            await self._sleep(self._renew_seconds)
            started = loop.time()
            budget = renewed_at + self._lease.seconds - self._renew_seconds - started
            why = None
            try:
                async with asyncio.timeout(max(budget, 0.0)):
                    if not await self._lease.renew():
                        why = "another instance took it over"
            except TimeoutError:
                why = "the database did not answer in time"
            except Exception as exc:
                why = _reason(exc)
            if why is not None:
                log.warning("telegram polling: lease not renewed (%s); polling stops until it is held again", why)
                lost.set()
                return
            renewed_at = started

    # --- polling ------------------------------------------------------------------------------------

    async def _poll(self, lost: asyncio.Event) -> str:
        offset: int | None = None
        while not lost.is_set():
            try:
                if offset is None:  # read in the loop: a database that is not writable yet is retried too
                    offset = await self._stored_offset()  # another holder may have moved it meanwhile
                updates = await _unless(lost, self._fetch(offset))
                if updates is None:
                    break  # the lease was lost during the poll: its answer is never seen
                offset = await self._commit(updates, offset)
            except asyncio.CancelledError:
                raise
            except Conflict as exc:
                self._failed(_reason(exc))
                return "conflict"
            except RetryAfter as exc:
                self._failed("flood control")
                await _unless(lost, self._sleep(retry_seconds(exc)))
                continue
            except Exception as exc:
                reason = _reason(exc)
                if reason.startswith("unexpected") and reason != self._warned:
                    log.exception("telegram polling: unexpected error")  # once, not on every retry
                self._failed(reason)
                await _unless(lost, self._sleep(self._backoff.next_delay()))
                continue
            self._backoff.reset()
            self._warned = None
            if self.problem is not None:
                self.problem = None
                self._notify()
        return "lost"

    async def _stored_offset(self) -> int:
        return int(await self._values.get(OFFSET_KEY) or 0)

    async def _fetch(self, offset: int) -> list[dict[str, Any]]:
        return await self._bot.get_updates_json(
            offset=offset, timeout=self._poll_timeout, allowed_updates=ALLOWED_UPDATES
        )

    async def _commit(self, updates: list[dict[str, Any]], offset: int) -> int:
        """Accept the whole batch (concurrent accepts share one commit), then store the next offset. Only the
        next getUpdates with that offset tells Telegram it may forget them. The stored offset only grows: a
        former holder's late batch never takes it below what the new holder stored."""
        if not updates:
            return offset
        await asyncio.gather(*(self._accept(arrival_for(update)) for update in updates))
        ids = [update["update_id"] for update in updates if isinstance(update.get("update_id"), int)]
        next_offset = max([offset - 1, *ids]) + 1
        if next_offset == offset:
            return offset
        return max(next_offset, await self._values.raise_to(OFFSET_KEY, next_offset))

    # --- state ----------------------------------------------------------------------------------------

    def _failed(self, reason: str) -> None:
        if self._warned != reason:
            if reason == _CONFLICT:
                log.warning("telegram polling: 409 Conflict, %s; lease given back, retrying with backoff", reason)
            else:
                log.warning("telegram polling: %s; retrying with backoff", reason)
            self._warned = reason
        self.problem = reason
        self._notify()

    def _set(self, state: str) -> None:
        self.state = state
        self._notify()

    def _notify(self) -> None:
        for future, predicate in list(self._waiters):
            if not future.done() and predicate(self):
                future.set_result(None)


async def _unless(lost: asyncio.Event, work: Awaitable[T]) -> T | None:
    """`work`'s result, or None once `lost` is set first (then `work` is cancelled)."""
    task = asyncio.ensure_future(work)
    waiter = asyncio.ensure_future(lost.wait())
    try:
        await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        waiter.cancel()
        if not task.done():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
    return None if task.cancelled() else task.result()


_CONFLICT = "another process polls this bot (getUpdates) or a webhook is set"


def _reason(exc: Exception) -> str:
    if isinstance(exc, DatabaseUnavailable):
        return "the database is not writable, updates stay with Telegram"
    if isinstance(exc, Conflict):
        return _CONFLICT
    if isinstance(exc, InvalidToken | Forbidden):
        return "Telegram refused the bot token"
    if isinstance(exc, NetworkError):
        return f"network error ({type(exc).__name__})"
    if isinstance(exc, TelegramError):
        return f"Telegram error ({type(exc).__name__})"
    return f"unexpected error ({type(exc).__name__})"
