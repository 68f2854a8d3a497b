"""Balance and status alerts: Redis alert streams -> Postgres -> live SSE subscribers.

The charging functions detect a crossing atomically when a balance moves and append an entry
to the bucket's alerts stream (``charging.lua``). ``feed.AlertFeed`` moves entries into the
``alerts`` table through one consumer group shared by every engine process (so each alert is
stored once) and, in the same transaction, ``NOTIFY``s its id. Every process's
``hub.AlertHub`` ``LISTEN``s and fans committed alerts out to its own SSE subscribers, so a
subscriber sees every alert of its tenant whichever process stored it, and never one that was
not stored.
"""
