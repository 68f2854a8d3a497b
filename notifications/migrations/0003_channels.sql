-- A tenant's channels (issue 12): SMTP and SMPP accounts, the password encrypted with
-- CE_SECRETS_KEY and never returned.
CREATE TABLE notification_channels (
    tenant_id   text NOT NULL REFERENCES tenants (tenant_id) ON DELETE CASCADE,
    channel     text NOT NULL CHECK (channel IN ('smtp', 'smpp')),
    settings    jsonb NOT NULL,  -- host, port, sender, username, security / system_id, source
    secret_enc  bytea,  -- the password
    enabled     boolean NOT NULL DEFAULT true,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, channel)
);
