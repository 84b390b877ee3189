"""One named lease an instance wants to hold (Telegram polling, a periodic job): taken when free or expired,
renewed while held, given back when done. The lease itself and its clock are the database's (`bot.store.leases`)."""

from __future__ import annotations

from bot.store.database import Database
from bot.store.leases import Lease, Leases


class HeldLease:
    def __init__(self, db: Database, name: str, owner: str, seconds: float) -> None:
        self._db = db
        self.name = name
        self.owner = owner
        self.seconds = seconds
        self.lease: Lease | None = None

    @property
    def held(self) -> bool:
        """As far as this instance knows: true from a successful take or renewal until a failed one."""
        return self.lease is not None

    async def take(self) -> bool:
        """Take the lease (or extend it, if already ours); False while another instance holds it."""
        now_sql = self._db.now_sql
        self.lease = await self._db.write(lambda conn: Leases.take(conn, now_sql, self.name, self.owner, self.seconds))
        return self.lease is not None

    async def renew(self) -> bool:
        """Extend the lease we hold; False (and no longer held) when it expired and another instance took it."""
        lease = self.lease
        if lease is None:
            return False
        now_sql = self._db.now_sql
        if not await self._db.write(lambda conn: Leases.renew(conn, now_sql, lease, self.seconds)):
            self.lease = None
        return self.lease is not None

    async def release(self) -> None:
        """Give the lease back, so another instance need not wait for it to expire."""
        lease, self.lease = self.lease, None
        if lease is not None:
            await self._db.write(lambda conn: Leases.release(conn, lease))
