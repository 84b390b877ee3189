"""The Omi sandbox: a local server that answers like Omi's integration (Data Import) API (SPEC §8)."""

from bot.sandbox.server import ALL_CAPABILITIES, ROUTES, Fault, Sandbox, SandboxApp

__all__ = ["ALL_CAPABILITIES", "ROUTES", "Fault", "Sandbox", "SandboxApp"]
