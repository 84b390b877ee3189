"""Importing history (SPEC §10): a Telegram export or a Slack channel becomes Omi conversations."""
