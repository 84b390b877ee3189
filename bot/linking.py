"""Linking with verification (SPEC §5): the uid Omi passes is unsigned, so a chat account is only trusted
with a uid after its user types back a code that Omi showed in that uid's own app."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import secrets
from dataclasses import dataclass
from enum import StrEnum

from bot.clock import Clock
from bot.events import Address, Platform, Reply
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
from bot.store.database import Conn
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
    def __init__(self, store: Store, omi: OmiClient, clock: Clock, outbound: Outbound) -> None:
        self._store = store
        self._omi = omi
        self._clock = clock
        self._outbound = outbound
        self._senders: dict[str, asyncio.Task[None]] = {}

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
        """Send the code through Omi in the background (retrying while the app is not installed yet)."""
        previous = self._senders.pop(account, None)
        if previous is not None:
            previous.cancel()
        task = asyncio.create_task(self._deliver_code(account, uid, code, address), name=f"code:{account}")
        self._senders[account] = task
        task.add_done_callback(lambda t, a=account: self._senders.pop(a, None) if self._senders.get(a) is t else None)

    async def _deliver_code(self, account: str, uid: str, code: str, address: Address) -> None:
        started = self._clock.now()
        message = code_message(code, address.platform)
        while True:
            try:
                await self._omi.send_notification(uid, message)
            except OmiRateLimited as exc:
                # Omi lets 9 notifications an hour through; Retry-After can be 0 at the window's end.
                wait = max(exc.retry_after, 1.0) if exc.retry_after is not None else SLOW_RETRY_SECONDS
            except OmiNotFound as exc:
                # A private Omi app answers 404 to anyone but its owner and testers: retrying cannot help.
                log.warning(
                    "linking: Omi answered 404 %r to a code notification: the Omi app is private and this user is"
                    " not a tester; add them as a tester in the Omi app, or publish it",
                    exc.detail if isinstance(exc.detail, str) else "App not found",
                )
                await self._say(address, words.code_refused(exc))
                return
            except OmiForbidden as exc:
                if exc.reason not in (ForbiddenReason.NOT_INSTALLED, ForbiddenReason.NOT_ENABLED):
                    await self._say(address, words.code_refused(exc))
                    return
                elapsed = self._clock.now() - started
                wait = FAST_RETRY_SECONDS if elapsed < FAST_RETRY_FOR else SLOW_RETRY_SECONDS
            except (OmiUnauthorized, OmiValidationError) as exc:
                await self._say(address, words.code_refused(exc))
                return
            except OmiError as exc:
                log.info("linking: sending a code failed (%s); retrying", type(exc).__name__)
                wait = SLOW_RETRY_SECONDS
            else:
                await self._say(
                    address,
                    f"I sent a 6-digit code to your Omi app. Type it here: {cmd(address.platform, 'verify')} CODE",
                )
                return
            if self._clock.now() + wait - started > GIVE_UP_AFTER:
                await self._say(
                    address,
                    "I could not deliver the code: Omi still says omi-bridge is not installed for your account."
                    f" Finish installing it in the Omi app, then send {cmd(address.platform, 'verify')} to get a"
                    " new code.",
                )
                return
            await self._clock.sleep_until(self._clock.now() + wait)

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
                await self._store.db.write(lambda conn: Claims.void(conn, account))
                return VerifyResult(VerifyOutcome.VOIDED)
            return VerifyResult(VerifyOutcome.WRONG, attempts_left=MAX_WRONG_CODES - wrong)
        uid = claim.uid

        def promote(conn: Conn) -> int:
            Claims.promote(conn, account, now)
            return Outbox.release_held(conn, account, uid, now)

        released = await self._store.db.write(promote)
        sender = self._senders.pop(account, None)
        if sender is not None:
            sender.cancel()
        return VerifyResult(VerifyOutcome.VERIFIED, released=released)

    async def stop(self) -> None:
        tasks = list(self._senders.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._senders.clear()

    async def _say(self, address: Address, text: str) -> None:
        await self._outbound.send(Reply(address, text=text, ephemeral=False))
