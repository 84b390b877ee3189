"""Verification codes on their way to a user's Omi app (SPEC §5, §13): retried while the app is not installed yet,
by whichever instance holds the row's claim, so a code survives the instance that issued it.

One row per account (a new code replaces the old). The row's claim (`owner`, `claim_until` on the database's clock)
says which instance sends it: taken when free or lapsed, extended before every attempt (which checks it is still
ours) and over each wait for the next, so it lapses soon after its instance dies. The retry timing (`started_at`,
`next_attempt_at`, `expires_at`) is the bridge's clock. The code is a secret kept here in clear only because it must
be sent: the row goes once it is sent, refused, given up or expired, and no log line ever shows it."""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from typing import Any

from bot.events import Address
from bot.store.database import Conn, Database

_COLUMNS = "account, send_id, uid, address, code, started_at, attempts, next_attempt_at, expires_at"


@dataclass(frozen=True, slots=True)
class CodeSend:
    account: str
    #: This delivery (a new code for the account is a new one): every write after the claim names it.
    send_id: str
    uid: str
    address: Address
    code: str
    started_at: float
    attempts: int
    next_attempt_at: float
    expires_at: float

    def __repr__(self) -> str:  # never the code
        return f"CodeSend(account={self.account!r}, send_id={self.send_id!r}, attempts={self.attempts})"


def _send(row: Any) -> CodeSend:
    return CodeSend(
        account=row["account"],
        send_id=row["send_id"],
        uid=row["uid"],
        address=Address.from_dict(json.loads(row["address"])),
        code=row["code"],
        started_at=float(row["started_at"]),
        attempts=int(row["attempts"]),
        next_attempt_at=float(row["next_attempt_at"]),
        expires_at=float(row["expires_at"]),
    )


class CodeSends:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def put(
        self,
        account: str,
        uid: str,
        code: str,
        address: Address,
        now: float,
        expires_at: float,
        owner: str,
        claim: float,
    ) -> CodeSend:
        """A code to send for `account` (replacing one still on its way), claimed by `owner` for `claim` seconds."""
        send = CodeSend(account, secrets.token_hex(8), uid, address, code, now, 0, now, expires_at)
        values = (account, send.send_id, uid, json.dumps(address.to_dict(), separators=(",", ":")), code, now, 0, now)
        now_sql = self._db.now_sql

        def put(conn: Conn) -> None:
            conn.execute("DELETE FROM code_sends WHERE account = ?", (account,))
            conn.execute(
                f"INSERT INTO code_sends ({_COLUMNS}, owner, claim_until)"  # noqa: S608 - our own SQL
                f" VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, {now_sql} + ?)",
                (*values, expires_at, owner, claim),
            )

        await self._db.write(put)
        return send

    async def get(self, account: str) -> CodeSend | None:
        row = await self._db.fetchone(f"SELECT {_COLUMNS} FROM code_sends WHERE account = ?", (account,))  # noqa: S608
        return _send(row) if row is not None else None

    async def hold(self, send: CodeSend, owner: str, claim: float) -> bool:
        """Before an attempt: True if the send is still there and ours (its claim extended by `claim` seconds, the
        attempt's longest), else False — it was sent, replaced, dropped at verification, or taken over by another
        instance after our claim lapsed."""
        now_sql = self._db.now_sql
        return await self._db.write(
            lambda conn: bool(
                conn.execute(
                    f"UPDATE code_sends SET claim_until = {now_sql} + ?"  # noqa: S608
                    " WHERE account = ? AND send_id = ? AND owner = ?",
                    (claim, send.account, send.send_id, owner),
                ).rowcount
            )
        )

    async def retry_at(self, send: CodeSend, owner: str, next_attempt_at: float, wait: float, claim: float) -> bool:
        """Record a failed attempt and when the next is due, `wait` seconds from now: the claim covers the wait
        and the next attempt's `claim` (if the send is still ours). An instance that dies meanwhile lets it lapse."""
        now_sql = self._db.now_sql
        return await self._db.write(
            lambda conn: bool(
                conn.execute(
                    f"UPDATE code_sends SET attempts = attempts + 1, next_attempt_at = ?,"  # noqa: S608
                    f" claim_until = {now_sql} + ? WHERE account = ? AND send_id = ? AND owner = ?",
                    (next_attempt_at, wait + claim, send.account, send.send_id, owner),
                ).rowcount
            )
        )

    async def finish(self, send: CodeSend) -> bool:
        """Sent, refused or given up: the code leaves the database. False if it had gone already (verified, or a
        new code replaced it): what the attempt would say is of no use then."""
        return await self._db.write(
            lambda conn: bool(
                conn.execute(
                    "DELETE FROM code_sends WHERE account = ? AND send_id = ?", (send.account, send.send_id)
                ).rowcount
            )
        )

    async def take_lapsed(self, owner: str, claim: float, now: float, limit: int = 100) -> list[CodeSend]:
        """Claim sends nobody holds any more (their instance stopped or died) whose code has not expired."""
        now_sql = self._db.now_sql

        def take(conn: Conn) -> list[CodeSend]:
            CodeSends.purge(conn, now)
            # A guarded update per row: of two instances looking at once, one takes it (the other's update finds
            # the claim no longer lapsed and changes nothing).
            lapsed = conn.execute(
                f"SELECT account, send_id FROM code_sends WHERE expires_at > ?"  # noqa: S608
                f" AND (owner IS NULL OR claim_until IS NULL OR claim_until <= {now_sql})"
                " ORDER BY next_attempt_at LIMIT ?",
                (now, limit),
            ).fetchall()
            taken = []
            for account, send_id in lapsed:
                row = conn.execute(
                    f"UPDATE code_sends SET owner = ?, claim_until = {now_sql} + ?"  # noqa: S608
                    f" WHERE account = ? AND send_id = ? AND (owner IS NULL OR claim_until IS NULL"
                    f" OR claim_until <= {now_sql}) RETURNING {_COLUMNS}",
                    (owner, claim, account, send_id),
                ).fetchone()
                if row is not None:
                    taken.append(_send(row))
            return taken

        return await self._db.write(take)

    async def release(self, owner: str) -> None:
        """An instance stopping: its sends are free for another at once."""
        await self._db.write(
            lambda conn: conn.execute(
                "UPDATE code_sends SET owner = NULL, claim_until = NULL WHERE owner = ?", (owner,)
            )
        )

    async def release_all(self) -> None:
        """Only when this process is the database's only user (SQLite's worker lock): a previous run's claims."""
        await self._db.write(lambda conn: conn.execute("UPDATE code_sends SET owner = NULL, claim_until = NULL"))

    @staticmethod
    def drop(conn: Conn, account: str) -> None:
        """Verified or voided: a code still on its way is of no use any more."""
        conn.execute("DELETE FROM code_sends WHERE account = ?", (account,))

    @staticmethod
    def purge(conn: Conn, now: float) -> int:
        """Housekeeping (and each look for lapsed sends): a code past its expiry is never sent."""
        return conn.execute("DELETE FROM code_sends WHERE expires_at <= ?", (now,)).rowcount
