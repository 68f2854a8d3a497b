"""Accounts: records in Postgres, balances in Redis, kept in step by ``service``."""
