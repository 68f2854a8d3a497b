-- Outbound webhooks (Standard Webhooks): endpoints per tenant, the transactional outbox of
-- events, one delivery per (event, endpoint) and a log row per HTTP attempt.

CREATE TABLE webhook_endpoints (
    tenant_id    text NOT NULL REFERENCES tenants (tenant_id) ON DELETE CASCADE,
    endpoint_id  text NOT NULL,
    url          text NOT NULL,
    description  text NOT NULL DEFAULT '',
    event_types  text[] NOT NULL DEFAULT '{}',  -- empty: every event
    secret       bytea NOT NULL,  -- the signing secret, encrypted (billing.secrets)
    enabled      boolean NOT NULL DEFAULT true,
    idem_key     text,  -- the Idempotency-Key it was created under: a retry finds it
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, endpoint_id),
    UNIQUE (tenant_id, idem_key)
);

-- The outbox: written in the transaction of the change that caused the event; dedup_key makes
-- the same business event one row however often it is enqueued.
CREATE TABLE webhook_events (
    event_id   text PRIMARY KEY,  -- the webhook-id header
    tenant_id  text NOT NULL,
    type       text NOT NULL,
    dedup_key  text NOT NULL,
    payload    text NOT NULL,  -- the exact JSON body that is signed and sent
    created_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, dedup_key)
);
CREATE INDEX webhook_events_tenant_idx ON webhook_events (tenant_id, created_at);

CREATE TABLE webhook_deliveries (
    delivery_id     bigserial PRIMARY KEY,
    tenant_id       text NOT NULL,
    event_id        text NOT NULL REFERENCES webhook_events (event_id) ON DELETE CASCADE,
    endpoint_id     text NOT NULL,
    status          text NOT NULL DEFAULT 'pending'
                    CHECK (status IN ('pending', 'delivered', 'failed')),
    attempts        int NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL,
    lease_until     timestamptz,
    last_status     int,
    last_error      text,
    delivered_at    timestamptz,
    created_at      timestamptz NOT NULL DEFAULT now(),
    UNIQUE (event_id, endpoint_id),
    FOREIGN KEY (tenant_id, endpoint_id) REFERENCES webhook_endpoints (tenant_id, endpoint_id)
        ON DELETE CASCADE
);
CREATE INDEX webhook_deliveries_due_idx ON webhook_deliveries (next_attempt_at)
    WHERE status = 'pending';
CREATE INDEX webhook_deliveries_endpoint_idx
    ON webhook_deliveries (tenant_id, endpoint_id, delivery_id);

CREATE TABLE webhook_attempts (
    id          bigserial PRIMARY KEY,
    delivery_id bigint NOT NULL REFERENCES webhook_deliveries (delivery_id) ON DELETE CASCADE,
    attempt     int NOT NULL,
    at          timestamptz NOT NULL,
    status_code int,
    error       text,
    duration_ms int NOT NULL
);
CREATE INDEX webhook_attempts_delivery_idx ON webhook_attempts (delivery_id, id);
