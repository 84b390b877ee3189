"""`python -m bot` is `omi-bridge`."""

from bot.cli import main

raise SystemExit(main())
