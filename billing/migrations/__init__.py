"""Billing migrations (``NNNN_name.sql``), applied after the engine's as ``billing:NNNN``."""
