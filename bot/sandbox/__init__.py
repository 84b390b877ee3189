"""The Omi sandbox: a local server that answers like Omi's integration (Data Import) API (SPEC §8)."""

from bot.sandbox.apps import ALL_CAPABILITIES, SandboxApp
from bot.sandbox.faults import FAULT_KINDS, Fault
from bot.sandbox.flavors import FLAVORS
from bot.sandbox.records import conversation_text
from bot.sandbox.server import Sandbox
from bot.sandbox.urls import ROUTES

__all__ = [
    "ALL_CAPABILITIES",
    "FAULT_KINDS",
    "FLAVORS",
    "ROUTES",
    "Fault",
    "Sandbox",
    "SandboxApp",
    "conversation_text",
]
