"""`omi-bridge doctor` for Telegram: the token via getMe, the webhook registration via getWebhookInfo."""

from __future__ import annotations

from adapters.telegram.doctor import check_telegram
from tests.telegram.conftest import telegram_settings

URL = "https://bridge.example.com/telegram/webhook"


async def lines(settings) -> list[str]:
    return [finding.line() for finding in await check_telegram(settings)]


async def test_a_good_token_in_polling_mode_is_all_ok(fake_api):
    assert await lines(telegram_settings(fake_api)) == [
        "OK telegram: bot token accepted: @omibridge_bot",
        "OK telegram: polling mode; 0 update(s) waiting at Telegram",
    ]


async def test_a_rejected_token_fails_with_the_fix_and_never_shows_the_token(fake_api):
    settings = telegram_settings(fake_api, TELEGRAM_BOT_TOKEN="999:not-the-right-token")

    [finding] = await check_telegram(settings)

    assert finding.level == "FAIL"
    assert finding.line() == (
        "FAIL telegram: Telegram rejected the bot token → copy the token from @BotFather into TELEGRAM_BOT_TOKEN"
    )


async def test_an_unreachable_bot_api_fails_naming_the_setting(fake_api):
    await fake_api.stop()

    [finding] = await check_telegram(telegram_settings(fake_api))

    assert finding.level == "FAIL" and "cannot reach the Bot API at 127.0.0.1" in finding.finding
    assert finding.fix == "check TELEGRAM_API_BASE_URL and the network"
    assert fake_api.token not in finding.line()


async def test_polling_mode_warns_about_a_webhook_left_set(fake_api):
    fake_api.webhook["url"] = URL

    token, webhook = await check_telegram(telegram_settings(fake_api))

    assert token.level == "OK"
    assert webhook.level == "WARN" and URL in webhook.finding and "deletes the webhook" in webhook.fix


async def test_webhook_mode_warns_when_telegram_has_another_url_or_delivery_errors(fake_api):
    settings = telegram_settings(fake_api, TELEGRAM_WEBHOOK_URL=URL)
    fake_api.webhook["url"] = "https://old.example.com/telegram/webhook"

    _, mismatch = await check_telegram(settings)
    assert mismatch.level == "WARN" and "old.example.com" in mismatch.finding

    fake_api.webhook.update(url=URL, last_error_message="Wrong response from the webhook: 503 Service Unavailable")
    _, failing = await check_telegram(settings)
    assert failing.level == "WARN" and "503 Service Unavailable" in failing.finding

    fake_api.webhook["last_error_message"] = None
    _, fine = await check_telegram(settings)
    assert fine.line() == f"OK telegram: webhook registered at {URL}; 0 update(s) waiting"
