"""Accounts over HTTP: routes and models around the engine's ``charging_engine.accounts``."""
