-- Admin API (issue 4): API keys with roles, account details and status history, prepaid money
-- operations, balance alerts and the audit log. Money columns are bigint micros.

-- Keys of the admin API. PBX keys stay in pbx_keys (the real-time API's catalogue reads them).
-- Only the SHA-256 of a secret is stored; a platform key belongs to no tenant.
CREATE TABLE api_keys (
    key_id       text PRIMARY KEY,
    tenant_id    text REFERENCES tenants (tenant_id) ON DELETE CASCADE,
    role         text NOT NULL CHECK (role IN ('platform', 'tenant_admin', 'ops', 'agent')),
    name         text NOT NULL DEFAULT '',
    key_hash     text NOT NULL UNIQUE,
    created_at   timestamptz NOT NULL DEFAULT now(),
    created_by   text,
    expires_at   timestamptz,  -- end of the grace period of a rotated key
    revoked_at   timestamptz,
    rotated_from text,
    CHECK ((role = 'platform') = (tenant_id IS NULL))
);
CREATE INDEX api_keys_tenant_idx ON api_keys (tenant_id, key_id);

ALTER TABLE pbx_keys
    ADD COLUMN name         text NOT NULL DEFAULT '',
    ADD COLUMN created_by   text,
    ADD COLUMN expires_at   timestamptz,
    ADD COLUMN rotated_from text;

-- The balance a prepaid account must keep: Redis gets credit_limit - min_balance as its credit,
-- so authorizations and withdrawals stop at it.
ALTER TABLE accounts
    ADD COLUMN min_balance bigint NOT NULL DEFAULT 0 CHECK (min_balance >= 0);

-- What the hot path never reads (so editing it does not reload every engine's catalogue).
CREATE TABLE account_details (
    tenant_id              text NOT NULL,
    account_id             text NOT NULL,
    name                   text NOT NULL DEFAULT '',
    primary_mobile         text,
    alternate_mobile       text,
    email                  text,
    low_balance_thresholds bigint[] NOT NULL DEFAULT '{}',
    low_balance_hysteresis bigint NOT NULL DEFAULT 0 CHECK (low_balance_hysteresis >= 0),
    auto_topup_enabled     boolean NOT NULL DEFAULT false,
    auto_topup_threshold   bigint,
    auto_topup_amount      bigint CHECK (auto_topup_amount > 0),
    closed_at              timestamptz,
    PRIMARY KEY (tenant_id, account_id),
    FOREIGN KEY (tenant_id, account_id) REFERENCES accounts (tenant_id, account_id)
        ON DELETE CASCADE
);

CREATE TABLE account_status_history (
    id          bigserial PRIMARY KEY,
    tenant_id   text NOT NULL,
    account_id  text NOT NULL,
    from_status text,
    to_status   text NOT NULL,
    reason      text NOT NULL DEFAULT '',
    changed_at  timestamptz NOT NULL DEFAULT now(),
    changed_by  text
);
CREATE INDEX account_status_history_idx ON account_status_history (tenant_id, account_id, id);

-- One row per Idempotency-Key and tenant: written before Redis is asked, completed after, so
-- a retry after a crash finishes the operation and a reused key with another body is refused.
CREATE TABLE money_operations (
    tenant_id     text NOT NULL,
    idem_key      text NOT NULL,
    account_id    text NOT NULL,
    kind          text NOT NULL CHECK (kind IN ('topup', 'withdraw', 'adjust')),
    amount        bigint NOT NULL,  -- signed balance delta
    method        text,
    reference     text,
    reason        text,
    fingerprint   text NOT NULL,
    status        text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'ok', 'refused')),
    balance_after bigint,
    key_id        text NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    completed_at  timestamptz,
    PRIMARY KEY (tenant_id, idem_key)
);
CREATE INDEX money_operations_account_idx ON money_operations (tenant_id, account_id, created_at);

-- Alerts moved here from the Redis alerts streams; (bucket, stream_id) makes redelivery a no-op.
CREATE TABLE alerts (
    id              bigserial PRIMARY KEY,
    tenant_id       text NOT NULL,
    account_id      text NOT NULL,
    kind            text NOT NULL,
    balance         bigint,
    threshold       bigint,
    from_status     text,
    to_status       text,
    seq             bigint,
    raised_at       timestamptz NOT NULL,
    bucket          int NOT NULL,
    stream_id       text NOT NULL,
    stored_at       timestamptz NOT NULL DEFAULT now(),
    acknowledged_at timestamptz,
    acknowledged_by text,
    UNIQUE (bucket, stream_id)
);
CREATE INDEX alerts_tenant_idx ON alerts (tenant_id, id);

-- Every change made through the admin API: who (key and role), when, what, before and after.
CREATE TABLE audit_log (
    id        bigserial PRIMARY KEY,
    at        timestamptz NOT NULL DEFAULT now(),
    tenant_id text,  -- NULL: platform-level (tenants, platform keys)
    key_id    text NOT NULL,
    role      text NOT NULL,
    action    text NOT NULL,
    target    text NOT NULL,
    before    jsonb,
    after     jsonb
);
CREATE INDEX audit_log_tenant_idx ON audit_log (tenant_id, id);

CREATE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_log is append-only';
END
$$;
CREATE TRIGGER audit_log_no_update BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_append_only();
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION audit_log_append_only();
