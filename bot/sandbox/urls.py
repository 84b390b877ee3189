"""The sandbox's paths: Omi's integration routes by name, and the loopback-only `/_sandbox/` admin routes."""

from __future__ import annotations

INTEGRATION_PREFIX = "/v2/integrations/{app_id}"

#: Route name → (method, path). The names are what faults and the request log use.
INTEGRATION_PATHS: dict[str, tuple[str, str]] = {
    "create_conversation": ("POST", INTEGRATION_PREFIX + "/user/conversations"),
    "create_memories": ("POST", INTEGRATION_PREFIX + "/user/memories"),
    "read_conversations": ("GET", INTEGRATION_PREFIX + "/conversations"),
    "read_memories": ("GET", INTEGRATION_PREFIX + "/memories"),
    "notification": ("POST", INTEGRATION_PREFIX + "/notification"),
    "search_conversations": ("POST", INTEGRATION_PREFIX + "/search/conversations"),
}

#: Route names, for faults and the request log.
ROUTES: tuple[str, ...] = tuple(INTEGRATION_PATHS)

CREATE_ROUTES = ("create_conversation", "create_memories")

#: Admin route name → (method, path); the handlers live in `bot.sandbox.admin`.
ADMIN_PATHS: dict[str, tuple[str, str]] = {
    "create_app": ("POST", "/_sandbox/apps"),
    "delete_app": ("DELETE", "/_sandbox/apps/{app_id}"),
    "mint_key": ("POST", "/_sandbox/apps/{app_id}/keys"),
    "capabilities": ("PUT", "/_sandbox/apps/{app_id}/capabilities"),
    "enable": ("POST", "/_sandbox/apps/{app_id}/enable"),
    "disable": ("POST", "/_sandbox/apps/{app_id}/disable"),
    "add_tester": ("POST", "/_sandbox/apps/{app_id}/testers"),
    "remove_tester": ("DELETE", "/_sandbox/apps/{app_id}/testers"),
    "webhook": ("PUT", "/_sandbox/apps/{app_id}/webhook"),
    "setup_completed_url": ("PUT", "/_sandbox/apps/{app_id}/setup-completed-url"),
    "device_conversation": ("POST", "/_sandbox/apps/{app_id}/device-conversations"),
    "add_fault": ("POST", "/_sandbox/faults"),
    "clear_faults": ("DELETE", "/_sandbox/faults"),
    "limits": ("PUT", "/_sandbox/limits"),
    "notifications": ("GET", "/_sandbox/notifications"),
    "conversations": ("GET", "/_sandbox/conversations"),
    "memories": ("GET", "/_sandbox/memories"),
    "add_memory": ("POST", "/_sandbox/memories"),
    "requests": ("GET", "/_sandbox/requests"),
    "webhook_deliveries": ("GET", "/_sandbox/webhook-deliveries"),
}
