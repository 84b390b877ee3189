"""The bridge's settings: read from the environment and `.env`, validated once at start (SPEC §3)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]


LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")


class SettingsError(Exception):
    """An invalid setting: the message is one line naming it, fit to print before exiting 2."""


def _got(value: str) -> str:
    """What an error may show of a bad URL: its scheme, never the rest (it may carry a password)."""
    scheme = urlsplit(value).scheme
    return f"got a {scheme}: URL" if scheme else "got no scheme"


def _http_url(value: str, name: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"must be an http(s) URL, {_got(value)}")
    return value


class Settings(BaseSettings):
    """Every setting of SPEC §3. Secrets are `SecretStr`, so a repr or a log line never shows them."""

    # `NAME=` (empty) means "not set", for every setting, in .env and in the environment alike.
    model_config = SettingsConfigDict(
        env_file=".env", env_file_encoding="utf-8", extra="ignore", case_sensitive=True, env_ignore_empty=True
    )

    OMI_APP_ID: str | None = None
    OMI_API_KEY: SecretStr | None = None
    OMI_API_BASE_URL: str = "https://api.omi.me"
    OMI_TEST_UID: str | None = None

    TELEGRAM_BOT_TOKEN: SecretStr | None = None
    TELEGRAM_API_BASE_URL: str = "https://api.telegram.org/bot"
    TELEGRAM_WEBHOOK_URL: str | None = None
    TELEGRAM_WEBHOOK_SECRET: SecretStr | None = None

    SLACK_BOT_TOKEN: SecretStr | None = None
    SLACK_SIGNING_SECRET: SecretStr | None = None
    SLACK_APP_TOKEN: SecretStr | None = None
    SLACK_API_URL: str = "https://slack.com/api/"

    DATABASE_URL: str = "sqlite:///omi-bridge.db"
    HOST: str = "0.0.0.0"  # noqa: S104 - a server meant to be reached from outside
    PORT: int = Field(default=8080, ge=1, le=65535)
    PUBLIC_URL: str | None = None

    BATCH_WINDOW_SECONDS: float = Field(default=2.0, gt=0, le=300)
    DELIVERY_CONCURRENCY: int = Field(default=32, ge=1, le=1000)
    #: Unset: pace by 429s only. Set: every Omi request of the key is spaced to stay under this rate.
    OMI_MAX_REQUESTS_PER_MINUTE: int | None = Field(default=None, ge=1, le=1_000_000)
    #: An OpenAI-compatible speech-to-text API (`…/v1`): set → voice messages are transcribed (SPEC §11).
    TRANSCRIBE_URL: str | None = None
    TRANSCRIBE_API_KEY: SecretStr | None = None
    TRANSCRIBE_MODEL: str = "whisper-1"
    #: The secret path segment of the Omi webhook URL (SPEC §12); "new,old" accepts both while rotating. Unset:
    #: generated once and stored.
    OMI_WEBHOOK_SECRET: SecretStr | None = None
    #: Fetch the title and description of links in saved messages (SPEC §11); off: never fetch anything.
    LINK_PREVIEWS: Literal["on", "off"] = "on"
    #: Tests only: previews may fetch private and loopback addresses. Never in production (SSRF).
    LINK_PREVIEWS_ALLOW_PRIVATE: bool = False
    LOG_LEVEL: LogLevel = "INFO"
    LOG_FORMAT: Literal["text", "json"] = "text"
    #: Test-only: the bridge's clock runs this many times faster than real time (multi-process tests of the 2- and
    #: 10-minute looks); refused unless Omi is on a loopback address. `OMI_BRIDGE_TIME_ORIGIN` (epoch seconds,
    #: default: the start) is the moment it speeds up from, the same for every instance of a test.
    OMI_BRIDGE_TIME_SCALE: float = Field(default=1.0, ge=1, le=1000)
    OMI_BRIDGE_TIME_ORIGIN: float | None = None

    @field_validator(
        "OMI_APP_ID",
        "OMI_API_KEY",
        "OMI_TEST_UID",
        "TELEGRAM_BOT_TOKEN",
        "TELEGRAM_WEBHOOK_URL",
        "TELEGRAM_WEBHOOK_SECRET",
        "SLACK_BOT_TOKEN",
        "SLACK_SIGNING_SECRET",
        "SLACK_APP_TOKEN",
        "PUBLIC_URL",
        "OMI_MAX_REQUESTS_PER_MINUTE",
        "TRANSCRIBE_URL",
        "TRANSCRIBE_API_KEY",
        "OMI_WEBHOOK_SECRET",
        mode="before",
    )
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        # `NAME=` in a .env file means "not set", as in the commented .env.example.
        if isinstance(value, str) and not value.strip():
            return None
        return value.strip() if isinstance(value, str) else value

    @field_validator("LOG_LEVEL", mode="before")
    @classmethod
    def _upper(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

    @field_validator("OMI_API_BASE_URL", "TELEGRAM_API_BASE_URL", "SLACK_API_URL")
    @classmethod
    def _base_url(cls, value: str, info) -> str:
        return _http_url(value.strip(), info.field_name)

    @field_validator("TELEGRAM_WEBHOOK_URL", "PUBLIC_URL", "TRANSCRIBE_URL")
    @classmethod
    def _optional_url(cls, value: str | None, info) -> str | None:
        return None if value is None else _http_url(value, info.field_name).rstrip("/")

    @field_validator("TELEGRAM_WEBHOOK_URL")
    @classmethod
    def _webhook_https(cls, value: str | None) -> str | None:
        # Telegram only calls HTTPS webhooks; loopback http is allowed for local Bot API servers and tests.
        if value and value.startswith("http://") and urlsplit(value).hostname not in ("127.0.0.1", "localhost"):
            raise ValueError("must be an https:// URL (Telegram only calls HTTPS webhooks)")
        return value

    @field_validator("TELEGRAM_WEBHOOK_SECRET")
    @classmethod
    def _webhook_secret(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            raw = value.get_secret_value()
            if not (1 <= len(raw) <= 256) or not all(c.isalnum() or c in "_-" for c in raw):
                raise ValueError("must be 1-256 characters of A-Z, a-z, 0-9, _ and - (Telegram's rule)")
        return value

    @field_validator("OMI_WEBHOOK_SECRET")
    @classmethod
    def _omi_webhook_secret(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            parts = [part.strip() for part in value.get_secret_value().split(",")]
            if not (1 <= len(parts) <= 2) or not all(
                16 <= len(part) <= 128 and all(c.isalnum() or c in "_-" for c in part) for part in parts
            ):
                raise ValueError("must be 16-128 characters of A-Z, a-z, 0-9, _ and - (or two of them: new,old)")
            return SecretStr(",".join(parts))
        return value

    @field_validator("TRANSCRIBE_MODEL")
    @classmethod
    def _model(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must name a model, e.g. whisper-1")
        return value.strip()

    @field_validator("OMI_API_KEY", "TRANSCRIBE_API_KEY")
    @classmethod
    def _api_key(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and any(c.isspace() for c in value.get_secret_value()):
            raise ValueError("must not contain spaces")
        return value

    @field_validator("DATABASE_URL")
    @classmethod
    def _database_url(cls, value: str) -> str:
        if is_postgres_url(value):
            check_postgres_url(value)
        else:
            database_path_of(value)
        return value

    @model_validator(mode="after")
    def _pairs(self) -> Settings:
        if (self.OMI_API_KEY is None) != (self.OMI_APP_ID is None):
            missing = "OMI_APP_ID" if self.OMI_APP_ID is None else "OMI_API_KEY"
            raise ValueError(f"{missing}: must be set together with the other of OMI_APP_ID/OMI_API_KEY")
        loopback = self.OMI_APP_ID is None or urlsplit(self.OMI_API_BASE_URL).hostname in LOOPBACK_HOSTS
        if self.OMI_BRIDGE_TIME_SCALE != 1 and not loopback:
            raise ValueError(
                "OMI_BRIDGE_TIME_SCALE: test-only, refused unless OMI_API_BASE_URL is a loopback address"
                " (a faster clock against the real Omi would break its rate limits and retry rules)"
            )
        return self

    # --- derived values -------------------------------------------------------------------------

    @property
    def database_engine(self) -> str:
        """ "postgresql" or "sqlite"."""
        return "postgresql" if is_postgres_url(self.DATABASE_URL) else "sqlite"

    @property
    def database_path(self) -> str:
        """The SQLite file (or `:memory:`) named by DATABASE_URL; "" on PostgreSQL."""
        return "" if self.database_engine == "postgresql" else database_path_of(self.DATABASE_URL)

    @property
    def database_password(self) -> str | None:
        return urlsplit(self.DATABASE_URL).password if self.database_engine == "postgresql" else None

    @property
    def public_url(self) -> str:
        return self.PUBLIC_URL or f"http://localhost:{self.PORT}"

    @property
    def telegram_enabled(self) -> bool:
        return self.TELEGRAM_BOT_TOKEN is not None

    @property
    def slack_enabled(self) -> bool:
        return self.SLACK_BOT_TOKEN is not None

    @property
    def telegram_file_base_url(self) -> str:
        """File downloads use the Bot API base with its final `/bot` replaced by `/file/bot` (SPEC §3)."""
        base = self.TELEGRAM_API_BASE_URL.rstrip("/")
        if base.endswith("/bot"):
            return base[: -len("/bot")] + "/file/bot"
        return base + "/file/bot"

    def secret_values(self) -> list[str]:
        """Every configured secret, for the log filter that keeps them out of every line."""
        secrets = [
            self.OMI_API_KEY,
            self.TELEGRAM_BOT_TOKEN,
            self.TELEGRAM_WEBHOOK_SECRET,
            self.SLACK_BOT_TOKEN,
            self.SLACK_SIGNING_SECRET,
            self.SLACK_APP_TOKEN,
            self.TRANSCRIBE_API_KEY,
            *(
                SecretStr(part)
                for part in (self.OMI_WEBHOOK_SECRET.get_secret_value() if self.OMI_WEBHOOK_SECRET else "").split(",")
                if part
            ),
        ]
        values = [s.get_secret_value() for s in secrets if s is not None and s.get_secret_value()]
        password = self.database_password
        return values + ([password] if password else [])


def is_postgres_url(url: str) -> bool:
    return url.startswith(("postgresql://", "postgres://"))


def check_postgres_url(url: str) -> None:
    """`postgresql://user:password@host:port/database` (libpq's URL form, query options allowed)."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises for a port that is no number
    except ValueError:
        raise ValueError("must look like postgresql://user:password@host:5432/database") from None
    if not parts.path.strip("/"):
        raise ValueError("must name the database: postgresql://user:password@host:5432/database")


def database_path_of(url: str) -> str:
    """`sqlite:///relative.db`, `sqlite:////absolute.db` or `sqlite:///:memory:` → a path for sqlite3."""
    prefix = "sqlite:///"
    if not url.startswith(prefix) or len(url) == len(prefix):
        raise ValueError(f"must look like sqlite:///path/to/file.db or postgresql://…, {_got(url)}")
    path = url[len(prefix) :]
    if path == ":memory:":
        return path
    return str(Path(path))


def load_settings(**overrides: object) -> Settings:
    """Read and validate the settings; any problem becomes one `SettingsError` line naming the setting."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        error = exc.errors(include_url=False)[0]
        name = ".".join(str(part) for part in error.get("loc", ())) or None
        message = str(error.get("msg", "invalid"))
        message = message.removeprefix("Value error, ")
        if name is None and ":" in message:
            name, _, message = message.partition(":")
        # Never echo the offending input: it may be a secret.
        raise SettingsError(f"invalid setting {name}: {message.strip()}") from None
