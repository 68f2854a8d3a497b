"""Notifications: the adapters that carry a message to a subscriber (SMS first).

This package sends nothing on its own and decides nothing: whether, when and what to tell a
subscriber is decided elsewhere. A channel here only translates a message into its wire
protocol and reports what the network answered, so that the caller's outbox can retry.
"""
