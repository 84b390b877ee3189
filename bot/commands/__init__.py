"""The command registry and every command, registered on import."""

from bot.commands import core, imports, linking, notify, reads  # noqa: F401 - registration by import
from bot.commands.registry import REGISTRY, CommandRegistry, CommandSpec, UsageError

__all__ = ["REGISTRY", "CommandRegistry", "CommandSpec", "UsageError"]
