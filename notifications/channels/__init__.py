"""Channels: each sends one rendered message over its real protocol and says what the provider
answered (its id for the message), or raises ``SendFailed`` (retried) / ``Undeliverable``
(given up at once: a bad address)."""
