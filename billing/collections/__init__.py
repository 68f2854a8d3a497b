"""Collection agents: pickups and renewals assigned to agents in the field, their visits, and
the payments they collect (through the receivables use case, exactly once).

``rules`` is the pure core (presets, task states, the assignment rule, the renewal quote); the
other modules are its Postgres adapters. The receipt SMS is not sent here: a collection writes
``collection.recorded`` to billing's event log in its own transaction, and the notifications
package turns it into the receipt.
"""
