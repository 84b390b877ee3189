"""The Omi pages in a real browser: Debian's Chromium driven by Playwright, at phone width."""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import pytest

CHROMIUM = "/usr/bin/chromium"
PHONE = {"width": 390, "height": 844}
#: As root, in a closed network: no sandbox, and nothing that phones home at start.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def _require_chromium() -> None:
    missing = []
    if not (os.path.exists(CHROMIUM) or shutil.which("chromium")):
        missing.append("Debian's chromium (apt-get install -y chromium)")
    try:
        import playwright.async_api  # noqa: F401
    except ImportError:
        missing.append("the playwright package (pip install -e '.[test]')")
    if missing:
        reason = "browser tests need " + " and ".join(missing)
        if os.environ.get("CI") == "true":
            pytest.fail(reason)  # CI installs both: a missing browser there is a broken pipeline, not a skip
        pytest.skip(reason)


@pytest.fixture
async def browser():
    _require_chromium()
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        chromium = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        await chromium.close()


@pytest.fixture
async def phone(browser, web):
    """A phone-sized page that records console errors (CSP violations are console errors)."""
    context = await browser.new_context(
        viewport=PHONE, base_url=str(web.base_url), permissions=["clipboard-read", "clipboard-write"]
    )
    page = await context.new_page()
    page.errors = []  # type: ignore[attr-defined]
    page.on("console", lambda message: page.errors.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda error: page.errors.append(str(error)))
    yield page
    await context.close()


async def no_horizontal_scroll(page) -> bool:
    return await page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")


async def test_setup_page_on_a_phone_and_its_deep_link_token_links(env, phone, tmp_path: Path):
    await phone.goto("/omi/setup?uid=uid-phone")
    await phone.screenshot(path=tmp_path / "setup.png", full_page=True)
    assert (tmp_path / "setup.png").stat().st_size > 0
    assert await phone.locator("#telegram-link").is_visible()
    assert await phone.locator("#slack-command").is_visible()
    assert await no_horizontal_scroll(phone)
    assert phone.errors == []
    href = await phone.locator("#telegram-link").get_attribute("href")
    token = re.fullmatch(r"https://t\.me/omibridge_bot\?start=([A-Za-z0-9_-]+)", href).group(1)

    user = env.user(user_id="9090")
    await user.command("start", token)
    assert "Almost linked" in await user.reply_text()


async def test_copy_button_copies_the_slack_command(phone):
    await phone.goto("/omi/setup?uid=uid-copy")
    command = await phone.locator("#slack-command").text_content()
    assert re.fullmatch(r"/omi link [A-Za-z0-9_-]{24}", command)
    await phone.locator("#copy-slack").click()
    await phone.locator("#copy-status", has_text="Copied.").wait_for()
    assert await phone.evaluate("navigator.clipboard.readText()") == command
    assert phone.errors == []


async def test_home_page_shows_the_linked_account_masked(env, phone, tmp_path: Path):
    await env.linked_user(user_id="5550042", name="Private Person")
    await phone.goto(f"/omi/home?uid={env.uid}")
    await phone.screenshot(path=tmp_path / "home.png", full_page=True)
    text = await phone.locator("main").inner_text()
    assert "Telegram ••42" in text and "verified" in text
    assert "5550042" not in text and "Private Person" not in text
    assert await no_horizontal_scroll(phone)
    assert phone.errors == []


async def test_missing_uid_page_reads_well_on_a_phone(phone, tmp_path: Path):
    response = await phone.goto("/omi/setup")
    assert response.status == 400
    await phone.screenshot(path=tmp_path / "missing-uid.png")
    assert "Open this page from the Omi app" in await phone.locator("h1").inner_text()
    assert await no_horizontal_scroll(phone)
