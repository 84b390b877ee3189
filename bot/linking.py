"""Linking with verification (SPEC §5): the uid Omi passes is unsigned, so a chat account is only trusted
with a uid after its user types back a code that Omi showed in that uid's own app."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import secrets
from collections.abc import Coroutine
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from bot.clock import Clock
from bot.events import Address, Platform, Reply
from bot.instance import instance_name
from bot.omi import words
from bot.omi.client import OmiClient
from bot.omi.errors import (
    ForbiddenReason,
    OmiError,
    OmiForbidden,
    OmiNotFound,
    OmiRateLimited,
    OmiUnauthorized,
    OmiValidationError,
)
from bot.outbound import Outbound
from bot.store import Outbox, Store
from bot.store.claims import Claims
from bot.store.code_sends import CodeSend, CodeSends
from bot.store.database import Conn, DatabaseUnavailable
from bot.texts import cmd

log = logging.getLogger(__name__)

TOKEN_TTL_SECONDS = 15 * 60
MAX_OPEN_TOKENS = 5
CODE_TTL_SECONDS = 30 * 60
MAX_CODES_PER_HOUR = 3
MAX_WRONG_CODES = 5
#: While Omi says the app is not installed yet: every 5 s for 2 min, then every 30 s up to 15 min.
FAST_RETRY_SECONDS, FAST_RETRY_FOR = 5.0, 120.0
SLOW_RETRY_SECONDS, GIVE_UP_AFTER = 30.0, 15 * 60.0
#: A code send's claim covers one attempt this long (the database's clock), plus the wait before the next.
CODE_CLAIM_SECONDS = 120.0
#: How often code sends left by a stopped instance are looked for (real time: claims are on the database's clock).
CODE_LOOK_SECONDS = 20.0


def hash_secret(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def new_token() -> str:
    """144 random bits as `[A-Za-z0-9_-]{24}`: fits Telegram's `start` parameter (≤ 64 of those characters)."""
    return secrets.token_urlsafe(18)


def code_message(code: str, platform: Platform) -> str:
    # Fixed text: no user-supplied words, and no other run of six digits.
    return (
        f"omi-bridge code {code} for linking your {platform.title} account. Never share it."
        " Ignore this if it wasn't you."
    )


class ClaimOutcome(StrEnum):
    CLAIMED = "claimed"
    BAD_TOKEN = "bad_token"  # noqa: S105 - an outcome name, not a secret


class VerifyOutcome(StrEnum):
    VERIFIED = "verified"
    WRONG = "wrong"
    VOIDED = "voided"
    EXPIRED = "expired"
    NO_CLAIM = "no_claim"
    NO_CODE = "no_code"


class CodeOutcome(StrEnum):
    ISSUED = "issued"
    NO_CLAIM = "no_claim"
    TOO_MANY = "too_many"  # MAX_CODES_PER_HOUR reached for the uid


@dataclass(frozen=True)
class NewCode:
    outcome: CodeOutcome
    uid: str = ""
    code: str = ""
    next_allowed_at: float = 0.0  # TOO_MANY: when the next code may be sent


@dataclass(frozen=True)
class VerifyResult:
    outcome: VerifyOutcome
    released: int = 0  # held items now on their way
    attempts_left: int = 0


class Linking:
    def __init__(
        self, store: Store, omi: OmiClient, clock: Clock, outbound: Outbound, *, instance: str | None = None
    ) -> None:
        self._store = store
        self._omi = omi
        self._clock = clock
        self._outbound = outbound
        self.instance = instance or instance_name()
        self._senders: dict[str, asyncio.Task[None]] = {}  # account -> its code send run by this instance
        self._send_ids: dict[str, str] = {}  # account -> the send its task runs (once stored)
        self._looker: asyncio.Task[None] | None = None
        self._stopped = False

    async def start(self) -> None:
        """Take up code sends a stopped instance left on their way, now and every `CODE_LOOK_SECONDS`."""
        if self._store.db.engine == "sqlite":
            # SQLite's worker lock makes this process the database's only user: a previous run's claims are stale.
            await self._store.code_sends.release_all()
        self._look_for_lapsed()

    # --- the setup page -----------------------------------------------------------------------------------

    async def issue_token(self, uid: str) -> str:
        token = new_token()
        await self._store.claims.add_token(
            hash_secret(token), uid, self._clock.now(), TOKEN_TTL_SECONDS, MAX_OPEN_TOKENS
        )
        return token

    async def setup_completed(self, uid: str) -> bool:
        """True once the uid has a claimed or verified link: Omi may enable the app then (the code needs it)."""
        return await self._store.claims.uid_has_link(uid)

    # --- claim ----------------------------------------------------------------------------------------------

    async def claim(self, account: str, token: str, *, handle_hint: str) -> ClaimOutcome:
        """Spend the token and open a claim; the caller answers, then calls `send_code`."""
        if not (1 <= len(token) <= 64) or not all(c.isalnum() or c in "-_" for c in token):
            return ClaimOutcome.BAD_TOKEN
        now = self._clock.now()
        token_hash = hash_secret(token)

        def claim(conn: Conn) -> bool:
            uid = Claims.use_token(conn, token_hash, now)
            if uid is not None:
                Claims.put(conn, account, uid, handle_hint, now)
            return uid is not None

        return ClaimOutcome.CLAIMED if await self._store.db.write(claim) else ClaimOutcome.BAD_TOKEN

    # --- codes ----------------------------------------------------------------------------------------------

    async def new_code(self, account: str) -> NewCode:
        """A new code for the account's claim, voiding the old — or why there is none."""
        claim = await self._store.claims.get(account)
        if claim is None:
            return NewCode(CodeOutcome.NO_CLAIM)
        now = self._clock.now()
        sent = await self._store.claims.codes_sent_since(claim.uid, now - 3600)
        if len(sent) >= MAX_CODES_PER_HOUR:
            return NewCode(CodeOutcome.TOO_MANY, next_allowed_at=sent[0] + 3600)
        code = f"{secrets.randbelow(1_000_000):06d}"
        await self._store.claims.set_code(account, hash_secret(code), now + CODE_TTL_SECONDS, claim.uid, now)
        return NewCode(CodeOutcome.ISSUED, uid=claim.uid, code=code)

    def deliver_code(self, account: str, uid: str, code: str, address: Address) -> None:
        """Send the code through Omi in the background (retrying while the app is not installed yet). The send is
        kept in the database until it is done: another instance finishes it if this one stops."""
        self._spawn(account, self._first_send(account, uid, code, address))
        self._look_for_lapsed()

    async def recover(self) -> int:
        """Claim the code sends nobody holds any more (their instance stopped or died) and run them here."""
        now = self._clock.now()
        taken = await self._store.code_sends.take_lapsed(self.instance, CODE_CLAIM_SECONDS, now)
        for send in taken:
            running = self._senders.get(send.account)
            # A task of ours still on it (our claim had lapsed while the database was away) goes on; one for an
            # older send of the account gives way. One that has not stored its send yet stores a newer one.
            if running is None or running.done() or self._send_ids.get(send.account, send.send_id) != send.send_id:
                self._spawn(send.account, self._run(send))
        if taken:
            log.info("linking: took up %d code send(s) left by a stopped instance", len(taken))
        return len(taken)

    def _spawn(self, account: str, work: Coroutine[Any, Any, None]) -> None:
        previous = self._senders.pop(account, None)
        self._send_ids.pop(account, None)
        if previous is not None:
            previous.cancel()
        task = asyncio.create_task(work, name=f"code:{account}")
        self._senders[account] = task
        task.add_done_callback(lambda t, a=account: self._forget(a, t))

    def _forget(self, account: str, task: asyncio.Task[None]) -> None:
        if self._senders.get(account) is task:
            del self._senders[account]
            self._send_ids.pop(account, None)

    def _look_for_lapsed(self) -> None:
        if self._looker is None and not self._stopped:
            self._looker = asyncio.create_task(self._look_loop(), name="code-sends")

    async def _look_loop(self) -> None:
        while True:
            try:
                await self.recover()
            except Exception as exc:
                log.warning(
                    "linking: looking for code sends left by a stopped instance failed (%s)", type(exc).__name__
                )
            await asyncio.sleep(CODE_LOOK_SECONDS)

    async def _first_send(self, account: str, uid: str, code: str, address: Address) -> None:
        now = self._clock.now()
        try:
            send = await self._store.code_sends.put(
                account, uid, code, address, now, now + CODE_TTL_SECONDS, self.instance, CODE_CLAIM_SECONDS
            )
        except DatabaseUnavailable:
            log.warning("linking: the database is unavailable; a code could not be sent")
            await self._say(
                address, f"I could not send the code just now; send {cmd(address.platform, 'verify')} to get a new one."
            )
            return
        await self._run(send)

    async def _run(self, send: CodeSend) -> None:
        """Attempts under the send's claim, until sent, refused, given up — or no longer ours to send."""
        sends, address = self._store.code_sends, send.address
        self._send_ids[send.account] = send.send_id
        message = code_message(send.code, address.platform)
        await self._clock.sleep_until(send.next_attempt_at)
        while True:
            try:
                if not await sends.hold(send, self.instance, CODE_CLAIM_SECONDS):
                    return  # verified, replaced by a new code, or taken over by another instance
                wait = await self._attempt(send, message)
                if wait is None:
                    return
                if self._clock.now() + wait - send.started_at > GIVE_UP_AFTER:
                    await self._finish(
                        send,
                        "I could not deliver the code: Omi still says omi-bridge is not installed for your account."
                        f" Finish installing it in the Omi app, then send {cmd(address.platform, 'verify')} to get"
                        " a new code.",
                    )
                    return
                next_at = self._clock.now() + wait
                if not await sends.retry_at(send, self.instance, next_at, wait, CODE_CLAIM_SECONDS):
                    return
            except DatabaseUnavailable:
                if self._clock.now() - send.started_at > GIVE_UP_AFTER:
                    return  # the row expires with its code
                log.info("linking: the database is unavailable; the code send is tried again later")
                next_at = self._clock.now() + SLOW_RETRY_SECONDS
            await self._clock.sleep_until(next_at)

    async def _attempt(self, send: CodeSend, message: str) -> float | None:
        """One notification: None when the send is over (sent or refused), else the seconds until the next try."""
        try:
            await self._omi.send_notification(send.uid, message)
        except OmiRateLimited as exc:
            # Omi lets 9 notifications an hour through; Retry-After can be 0 at the window's end.
            return max(exc.retry_after, 1.0) if exc.retry_after is not None else SLOW_RETRY_SECONDS
        except OmiNotFound as exc:
            # A private Omi app answers 404 to anyone but its owner and testers: retrying cannot help.
            log.warning(
                "linking: Omi answered 404 %r to a code notification: the Omi app is private and this user is"
                " not a tester; add them as a tester in the Omi app, or publish it",
                exc.detail if isinstance(exc.detail, str) else "App not found",
            )
            await self._finish(send, words.code_refused(exc))
            return None
        except OmiForbidden as exc:
            if exc.reason not in (ForbiddenReason.NOT_INSTALLED, ForbiddenReason.NOT_ENABLED):
                await self._finish(send, words.code_refused(exc))
                return None
            elapsed = self._clock.now() - send.started_at
            return FAST_RETRY_SECONDS if elapsed < FAST_RETRY_FOR else SLOW_RETRY_SECONDS
        except (OmiUnauthorized, OmiValidationError) as exc:
            await self._finish(send, words.code_refused(exc))
            return None
        except OmiError as exc:
            log.info("linking: sending a code failed (%s); retrying", type(exc).__name__)
            return SLOW_RETRY_SECONDS
        await self._finish(
            send, f"I sent a 6-digit code to your Omi app. Type it here: {cmd(send.address.platform, 'verify')} CODE"
        )
        return None

    async def _finish(self, send: CodeSend, text: str) -> None:
        """The send is over: the code leaves the database, then the user is told — unless it had gone already
        (verified meanwhile, or replaced by a new code), when what this send would say is of no use."""
        try:
            if not await self._store.code_sends.finish(send):
                return
        except DatabaseUnavailable:
            log.info("linking: the database is unavailable; a finished code send may be made again")
        await self._say(send.address, text)

    async def verify(self, account: str, code: str) -> VerifyResult:
        claim = await self._store.claims.get(account)
        if claim is None:
            return VerifyResult(VerifyOutcome.NO_CLAIM)
        if claim.code_hash is None:
            return VerifyResult(VerifyOutcome.NO_CODE)
        now = self._clock.now()
        if claim.code_expires_at is not None and now > claim.code_expires_at:
            return VerifyResult(VerifyOutcome.EXPIRED)
        if not hmac.compare_digest(claim.code_hash, hash_secret(code.strip())):
            wrong = await self._store.claims.wrong_code(account)
            if wrong >= MAX_WRONG_CODES:

                def void(conn: Conn) -> None:
                    Claims.void(conn, account)
                    CodeSends.drop(conn, account)

                await self._store.db.write(void)
                self._cancel(account)
                return VerifyResult(VerifyOutcome.VOIDED)
            return VerifyResult(VerifyOutcome.WRONG, attempts_left=MAX_WRONG_CODES - wrong)
        uid = claim.uid

        def promote(conn: Conn) -> int:
            Claims.promote(conn, account, now)
            CodeSends.drop(conn, account)
            return Outbox.release_held(conn, account, uid, now)

        released = await self._store.db.write(promote)
        self._cancel(account)
        return VerifyResult(VerifyOutcome.VERIFIED, released=released)

    def _cancel(self, account: str) -> None:
        sender = self._senders.pop(account, None)
        self._send_ids.pop(account, None)
        if sender is not None:
            sender.cancel()

    async def stop(self) -> None:
        """Stop sending codes; the sends still on their way are given back for another instance to finish."""
        self._stopped = True
        tasks = list(self._senders.values())
        if self._looker is not None:
            tasks.append(self._looker)
            self._looker = None
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._senders.clear()
        self._send_ids.clear()
        try:
            await self._store.code_sends.release(self.instance)
        except Exception as exc:  # the database is away (or gone): stopping goes on
            log.info(
                "linking: could not give back the code sends on their way (%s); their claims lapse on their own",
                type(exc).__name__,
            )

    async def _say(self, address: Address, text: str) -> None:
        await self._outbound.send(Reply(address, text=text, ephemeral=False))
