-- Other packages that consume the billing event log (notifications, ...) register a name here;
-- every event enqueued gets a queue row per consumer in the same transaction, so a consumer
-- sees each committed event exactly once, whatever order the transactions commit in.
CREATE TABLE event_consumers (
    name text PRIMARY KEY CHECK (name ~ '^[a-z_]{1,40}$')
);

CREATE TABLE event_consumer_queue (
    consumer text NOT NULL REFERENCES event_consumers (name) ON DELETE CASCADE,
    event_id text NOT NULL REFERENCES webhook_events (event_id) ON DELETE CASCADE,
    PRIMARY KEY (consumer, event_id)
);
