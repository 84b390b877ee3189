"""Which process this is among several sharing one database (SPEC §13): named once per start."""

from __future__ import annotations

import os
import secrets
import socket


def instance_name() -> str:
    """Host, pid and a random part: a restart is a new instance, so a lease of the previous run is never its own."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"
