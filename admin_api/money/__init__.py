"""Prepaid money operations (top-up, withdrawal, adjustment) and the ledger history."""
