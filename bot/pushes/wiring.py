"""Omi → chat wired into a running bridge (SPEC §12): the webhook route on the web server, and the console's
`/device TEXT` with the embedded sandbox."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from typing import TYPE_CHECKING

from bot.bridge import Bridge
from bot.logs import mask_secret
from bot.metrics import Metrics
from bot.pushes.route import OmiWebhookRoute
from bot.pushes.secret import PATH, webhook_secrets, webhook_url
from bot.settings import Settings
from bot.web.server import WebServer

if TYPE_CHECKING:
    from bot.sandbox import Sandbox


async def add_omi_webhook(settings: Settings, bridge: Bridge, web: WebServer) -> None:
    """`POST /omi/webhook/<secret>` (SPEC §12), its secret set or generated once and stored (shared by instances)."""
    accepted = await webhook_secrets(settings.OMI_WEBHOOK_SECRET, bridge.store.values)
    for secret in accepted:  # a generated one is in no setting: the log filter learns it here
        mask_secret(secret)
    route = OmiWebhookRoute(bridge.store.pushes, accepted, bridge.clock, bridge.pushes.wake)
    web.app.router.add_post(PATH + "/{secret}", route.handle)


async def device_in_console(
    settings: Settings,
    bridge: Bridge,
    sandbox: Sandbox,
    app_id: str,
    uid: str,
    say: Callable[[str, str], None],
    stack: AsyncExitStack,
) -> Callable[[str], Awaitable[None]]:
    """`/device TEXT` with the embedded sandbox: the sandbox records TEXT as if the wearable had and POSTs it to the
    app's webhook — this console's own web server on 127.0.0.1 — as Omi does; it comes back like on any platform."""
    web = WebServer(bridge, Metrics())
    await add_omi_webhook(settings, bridge, web)
    url = await web.start("127.0.0.1", 0)
    stack.push_async_callback(web.stop)
    secret = (await webhook_secrets(settings.OMI_WEBHOOK_SECRET, bridge.store.values))[0]
    sandbox.set_webhook(app_id, webhook_url(url, secret))

    async def device(text: str) -> None:
        await bridge.processor.wait_idle()  # a /notify typed just before counts
        conversation = await sandbox.device_conversation(app_id, uid, text)
        title = (conversation.get("structured") or {}).get("title") or "a conversation"
        say("omi", f"your wearable recorded “{title}” (it comes here if /notify is on)")
        await sandbox.webhooks_idle()
        await bridge.pushes.run_once()

    return device
