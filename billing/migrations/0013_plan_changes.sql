-- Plan changes (issue 11): requested by the customer (a self-service token per account, stored
-- hashed) or by staff, approved or rejected by staff, then applied; one open request per
-- account at a time.
CREATE TABLE self_service_tokens (
    token_id   text PRIMARY KEY,
    token_hash text NOT NULL UNIQUE,  -- sha256 of the secret: shown once, never stored
    tenant_id  text NOT NULL,
    account_id text NOT NULL,
    created_by text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    revoked_at timestamptz,
    FOREIGN KEY (tenant_id, account_id) REFERENCES accounts (tenant_id, account_id)
);
CREATE INDEX self_service_tokens_account_idx ON self_service_tokens (tenant_id, account_id);

CREATE TABLE plan_change_requests (
    request_id   text PRIMARY KEY,
    tenant_id    text NOT NULL,
    account_id   text NOT NULL,
    from_plan_id text NOT NULL,
    plan_id      text NOT NULL,
    effective    text NOT NULL CHECK (effective IN ('now', 'boundary')),
    state        text NOT NULL DEFAULT 'requested'
                 CHECK (state IN ('requested', 'approved', 'rejected', 'cancelled', 'applied')),
    requested_by text NOT NULL,  -- 'customer' or the staff key id
    note         text NOT NULL DEFAULT '',
    preview      jsonb NOT NULL,  -- the figures shown when it was requested
    decided_by   text,
    reason       text,
    effective_on date,
    created_at   timestamptz NOT NULL,
    decided_at   timestamptz,
    FOREIGN KEY (tenant_id, account_id) REFERENCES accounts (tenant_id, account_id)
);
CREATE UNIQUE INDEX plan_change_open_uq ON plan_change_requests (tenant_id, account_id)
    WHERE state IN ('requested', 'approved');
CREATE INDEX plan_change_tenant_idx ON plan_change_requests (tenant_id, created_at);
