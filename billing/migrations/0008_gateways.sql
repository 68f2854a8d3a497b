-- Payment gateways (issue 11): per-tenant credentials (encrypted with CE_SECRETS_KEY, never
-- returned), the pay links made, and the inbox of verified events (stored once by the
-- gateway's event id, then processed once).
CREATE TABLE gateway_accounts (
    tenant_id          text NOT NULL REFERENCES tenants (tenant_id) ON DELETE CASCADE,
    gateway            text NOT NULL CHECK (gateway IN ('stripe')),
    api_key_enc        bytea NOT NULL,
    webhook_secret_enc bytea NOT NULL,
    base_url           text,  -- NULL: the gateway's own API
    updated_at         timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, gateway)
);

CREATE TABLE pay_links (
    tenant_id  text NOT NULL,
    gateway    text NOT NULL,
    reference  text NOT NULL,  -- the gateway's id (a Checkout Session id)
    invoice_id text REFERENCES invoices (invoice_id),
    account_id text NOT NULL,
    amount     bigint NOT NULL CHECK (amount > 0),
    currency   char(3) NOT NULL,
    url        text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, gateway, reference)
);

CREATE TABLE gateway_events (
    tenant_id    text NOT NULL,
    gateway      text NOT NULL,
    event_id     text NOT NULL,
    type         text NOT NULL,
    paid         boolean NOT NULL,
    payment_ref  text NOT NULL DEFAULT '',
    payload      jsonb NOT NULL,
    received_at  timestamptz NOT NULL,
    processed_at timestamptz,
    outcome      text,
    payment_id   text,
    PRIMARY KEY (tenant_id, gateway, event_id)
);
