"""Omi → chat (SPEC §12): new conversations Omi posts to the app's webhook, pushed back to the people who recorded
them — verified links that turned `/notify` on, each message once, Omi's own copy read back by id."""
