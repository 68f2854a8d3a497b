"""Notification migrations (``NNNN_name.sql``), applied after billing's as
``notifications:NNNN``."""
