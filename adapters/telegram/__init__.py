"""The Telegram adapter: Bot API updates → neutral messages, neutral replies → Bot API calls, and its transports."""
