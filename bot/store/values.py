"""Values the bridge keeps between starts, by key."""

from __future__ import annotations

from bot.store.database import Conn, Database


class StoredValues:
    """Values the bridge keeps between starts (a key/value table): the generated webhook secret, the Telegram
    polling offset, the health probe. Not to be confused with `bot.settings.Settings`, read from the environment."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def get(self, key: str) -> str | None:
        row = await self._db.fetchone("SELECT value FROM stored_values WHERE key = ?", (key,))
        return row["value"] if row else None

    async def set(self, key: str, value: str) -> None:
        await self._db.write(lambda conn: self.put(conn, key, value))

    @staticmethod
    def put(conn: Conn, key: str, value: str) -> None:
        """Inside the caller's transaction (e.g. the Telegram offset with the batch it confirms)."""
        conn.execute(
            "INSERT INTO stored_values (key, value) VALUES (?, ?)"
            " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (key, value),
        )

    async def raise_to(self, key: str, value: int) -> int:
        """Store the integer `value` under `key` unless a larger one is stored already (one statement, so two
        instances racing cannot lower it); the stored value after."""

        def raise_(conn: Conn) -> None:
            conn.execute(
                "INSERT INTO stored_values (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET"
                " value = excluded.value WHERE CAST(stored_values.value AS BIGINT) < CAST(excluded.value AS BIGINT)",
                (key, str(value)),
            )

        await self._db.write(raise_)
        stored = await self.get(key)
        return int(stored) if stored is not None else value

    async def get_or_create(self, key: str, make: object) -> str:
        """Read `key`, or store `make()` under it once (e.g. a generated secret)."""
        existing = await self.get(key)
        if existing is not None:
            return existing
        value = make() if callable(make) else str(make)
        await self._db.write(
            lambda conn: conn.execute(
                "INSERT INTO stored_values (key, value) VALUES (?, ?) ON CONFLICT (key) DO NOTHING", (key, value)
            )
        )
        stored = await self.get(key)
        return stored if stored is not None else value
