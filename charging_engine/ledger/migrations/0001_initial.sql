-- Catalogue, ledger of record and CDRs. Every money column is bigint micros.

CREATE TABLE tenants (
    tenant_id      text PRIMARY KEY,
    name           text NOT NULL DEFAULT '',
    currency       char(3) NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    timezone       text NOT NULL DEFAULT 'UTC',
    failure_policy text NOT NULL DEFAULT 'fail_closed'
                   CHECK (failure_policy IN ('fail_closed', 'fail_open')),
    created_at     timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE rate_plans (
    tenant_id text NOT NULL REFERENCES tenants (tenant_id) ON DELETE CASCADE,
    plan_id   text NOT NULL,
    name      text NOT NULL DEFAULT '',
    currency  char(3) NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    PRIMARY KEY (tenant_id, plan_id)
);

-- No foreign key to rate_plans: an account may name a plan loaded later; the engine treats
-- an unknown plan as "no tariff".
CREATE TABLE accounts (
    tenant_id    text NOT NULL REFERENCES tenants (tenant_id),
    account_id   text NOT NULL,
    currency     char(3) NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    kind         text NOT NULL DEFAULT 'prepaid' CHECK (kind IN ('prepaid', 'postpaid')),
    status       text NOT NULL DEFAULT 'active' CHECK (
                     status IN ('active', 'outgoing_suspended', 'suspended', 'inactive',
                                'terminated')),
    credit_limit bigint NOT NULL DEFAULT 0 CHECK (credit_limit >= 0),
    rate_plan_id text,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, account_id)
);

CREATE TABLE rates (
    id               bigserial PRIMARY KEY,
    tenant_id        text NOT NULL,
    plan_id          text NOT NULL,
    prefix           text NOT NULL CHECK (prefix ~ '^[0-9]{1,15}$'),
    description      text NOT NULL DEFAULT '',
    price_per_minute bigint NOT NULL CHECK (price_per_minute >= 0),
    connect_fee      bigint NOT NULL DEFAULT 0 CHECK (connect_fee >= 0),
    min_duration     int NOT NULL DEFAULT 0,
    first_increment  int NOT NULL DEFAULT 60 CHECK (first_increment > 0),
    next_increment   int NOT NULL DEFAULT 60 CHECK (next_increment > 0),
    grace_seconds    int NOT NULL DEFAULT 0,
    rounding         text NOT NULL DEFAULT 'up'
                     CHECK (rounding IN ('up', 'down', 'half_up', 'half_even')),
    decimals         int NOT NULL DEFAULT 4 CHECK (decimals BETWEEN 0 AND 6),
    band_name        text,
    band_weekdays    int[],
    band_start       time,
    band_end         time,
    active_from      timestamptz,
    FOREIGN KEY (tenant_id, plan_id) REFERENCES rate_plans (tenant_id, plan_id)
        ON DELETE CASCADE
);
CREATE INDEX rates_plan_idx ON rates (tenant_id, plan_id, id);

CREATE TABLE pbx_keys (
    tenant_id  text NOT NULL REFERENCES tenants (tenant_id) ON DELETE CASCADE,
    key_id     text NOT NULL,
    key_hash   text NOT NULL UNIQUE,
    created_at timestamptz NOT NULL DEFAULT now(),
    revoked_at timestamptz,
    PRIMARY KEY (tenant_id, key_id)
);

-- One row per Redis mutation, written by settlement. No foreign key on purpose: the ledger
-- records whatever Redis did, and must never refuse an entry because the catalogue lags.
CREATE TABLE ledger_entries (
    tenant_id     text NOT NULL,
    account_id    text NOT NULL,
    seq           bigint NOT NULL,
    kind          text NOT NULL,
    amount        bigint NOT NULL,
    reserved      bigint NOT NULL,
    balance_after bigint NOT NULL,
    idem_key      text NOT NULL,
    call_id       text,
    stream_id     text NOT NULL,
    bucket        int NOT NULL,
    ts            timestamptz NOT NULL,
    extra         jsonb NOT NULL DEFAULT '{}',
    settled_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, account_id, seq)
);
CREATE INDEX ledger_entries_call_idx ON ledger_entries (tenant_id, call_id)
    WHERE call_id IS NOT NULL;
CREATE INDEX ledger_entries_ts_idx ON ledger_entries (tenant_id, ts);

-- Entries whose (tenant, account, seq) is already taken by a different entry (another stream
-- id): not a redelivery but Redis numbering again after losing data without a rebuild. Kept
-- here instead of silently dropped; reconciliation reports the affected accounts.
CREATE TABLE ledger_conflicts (
    tenant_id     text NOT NULL,
    account_id    text NOT NULL,
    seq           bigint NOT NULL,
    kind          text NOT NULL,
    amount        bigint NOT NULL,
    reserved      bigint NOT NULL,
    balance_after bigint NOT NULL,
    idem_key      text NOT NULL,
    call_id       text,
    stream_id     text NOT NULL,
    bucket        int NOT NULL,
    ts            timestamptz NOT NULL,
    extra         jsonb NOT NULL DEFAULT '{}',
    detected_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, account_id, seq, bucket, stream_id)
);

CREATE TABLE calls (
    tenant_id      text NOT NULL,
    call_id        text NOT NULL,
    account_id     text NOT NULL,
    destination    text,
    rate_prefix    text,
    plan_id        text,
    started_at     timestamptz,
    answered_at    timestamptz,
    ended_at       timestamptz NOT NULL,
    duration       int,
    billed_seconds int,
    cost           bigint NOT NULL,
    disposition    text,
    settled_by     text NOT NULL CHECK (settled_by IN ('commit', 'release', 'expire')),
    PRIMARY KEY (tenant_id, call_id)
);
CREATE INDEX calls_account_time_idx ON calls (tenant_id, account_id, started_at DESC);
CREATE INDEX calls_tenant_time_idx ON calls (tenant_id, started_at DESC);
CREATE INDEX calls_ended_idx ON calls (tenant_id, ended_at DESC);

-- One counter that moves on every catalogue write, so engines poll a single row.
CREATE TABLE catalog_version (
    id      int PRIMARY KEY DEFAULT 1 CHECK (id = 1),
    version bigint NOT NULL
);
INSERT INTO catalog_version (id, version) VALUES (1, 1);

CREATE FUNCTION bump_catalog_version() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE catalog_version SET version = version + 1 WHERE id = 1;
    RETURN NULL;
END
$$;

CREATE TRIGGER tenants_catalog_version
    AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON tenants
    FOR EACH STATEMENT EXECUTE FUNCTION bump_catalog_version();
CREATE TRIGGER accounts_catalog_version
    AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON accounts
    FOR EACH STATEMENT EXECUTE FUNCTION bump_catalog_version();
CREATE TRIGGER rate_plans_catalog_version
    AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON rate_plans
    FOR EACH STATEMENT EXECUTE FUNCTION bump_catalog_version();
CREATE TRIGGER rates_catalog_version
    AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON rates
    FOR EACH STATEMENT EXECUTE FUNCTION bump_catalog_version();
CREATE TRIGGER pbx_keys_catalog_version
    AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON pbx_keys
    FOR EACH STATEMENT EXECUTE FUNCTION bump_catalog_version();
