"""The billing catalogue in Postgres: what a tenant bills with, before any invoice exists.

One module per concept, each a thin adapter over its table (no HTTP): ``plans`` (bill plans),
``taxes`` (tax labels), ``discounts``, ``dids`` (numbers with setup and monthly fees),
``one_time`` (charges added to an account's next invoice) and ``settings`` (a tenant's
numbering, finalization and presentation); ``lookups`` holds what they share. Money is integer
ISO 4217 minor units of the plan's or account's currency (DID inbound rates: engine micros);
every refusal is a ``billing.errors`` class, and every function works on the caller's
connection, so a route can write its audit record in the same transaction.
"""
