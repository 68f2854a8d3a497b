"""Outbound webhooks to each tenant's accounting: an outbox written in the transaction of the
change, a dispatcher that signs (Standard Webhooks) and delivers at least once, the log."""
