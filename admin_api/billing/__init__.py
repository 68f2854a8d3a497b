"""Billing in the admin API: the catalogue (bill plans, tax labels, discounts, DIDs, one-time
charges, billing settings) and invoices, on ``billing``'s adapters.

Writes need a billing admin (``tenant_admin`` or ``finance``), reads a billing reader (those and
``ops``); ``billing.errors`` become problems in ``admin_api.domain_errors``.
"""
