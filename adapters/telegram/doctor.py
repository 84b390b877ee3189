"""`omi-bridge doctor` for Telegram: the token (`getMe`) and the webhook registration (`getWebhookInfo`)."""

from __future__ import annotations

from urllib.parse import urlsplit

from telegram.error import InvalidToken, NetworkError, TelegramError

from adapters.telegram.bot_api import make_bot
from adapters.telegram.webhook import PATH
from bot.checks import Finding
from bot.settings import Settings

PART = "telegram"


async def check_telegram(settings: Settings) -> list[Finding]:
    token = settings.TELEGRAM_BOT_TOKEN.get_secret_value() if settings.TELEGRAM_BOT_TOKEN else ""
    host = urlsplit(settings.TELEGRAM_API_BASE_URL).netloc
    bot = make_bot(settings)
    try:
        try:
            await bot.initialize()
        except InvalidToken:
            fix = "copy the token from @BotFather into TELEGRAM_BOT_TOKEN"
            return [Finding("FAIL", PART, "Telegram rejected the bot token", fix)]
        except NetworkError as exc:
            return [
                Finding(
                    "FAIL",
                    PART,
                    f"cannot reach the Bot API at {host} ({_safe(exc, token)})",
                    "check TELEGRAM_API_BASE_URL and the network",
                )
            ]
        findings = [Finding("OK", PART, f"bot token accepted: @{bot.username}")]
        try:
            info = await bot.get_webhook_info()
        except TelegramError as exc:
            findings.append(Finding("WARN", PART, f"getWebhookInfo failed ({_safe(exc, token)})", "run doctor again"))
            return findings
        findings.append(_webhook_finding(settings, info.url, info.last_error_message, info.pending_update_count))
        return findings
    finally:
        await bot.shutdown()


def _webhook_finding(settings: Settings, registered: str, last_error: str | None, pending: int) -> Finding:
    wanted = settings.TELEGRAM_WEBHOOK_URL
    if wanted is None:
        if registered:
            return Finding(
                "WARN",
                PART,
                f"polling mode, but a webhook is still set ({registered}); getUpdates fails while it is",
                "start `omi-bridge serve` (it deletes the webhook, keeps pending updates) or set TELEGRAM_WEBHOOK_URL",
            )
        return Finding("OK", PART, f"polling mode; {pending} update(s) waiting at Telegram")
    if registered != wanted:
        return Finding(
            "WARN",
            PART,
            f"Telegram's webhook is {registered or 'not set'}, not TELEGRAM_WEBHOOK_URL {wanted}",
            "start `omi-bridge serve`: it registers the webhook with its secret",
        )
    if last_error:
        return Finding(
            "WARN",
            PART,
            f"Telegram's last webhook delivery failed: {last_error}",
            f"make sure {wanted} reaches this server's {PATH} over https",
        )
    if not urlsplit(wanted).path.endswith(PATH):
        return Finding("WARN", PART, f"webhook {wanted} does not end in {PATH}", f"set it to PUBLIC_URL{PATH}")
    return Finding("OK", PART, f"webhook registered at {wanted}; {pending} update(s) waiting")


def _safe(exc: Exception, token: str) -> str:
    text = f"{type(exc).__name__}: {exc}"
    return text.replace(token, "[redacted]") if token else text
