-- The suspension ladder (issue 11): a ladder per tenant (plan_id '') or per bill plan, each
-- account's place on it, and one row per step entered per overdue episode (so a step's actions
-- run once per entry, however often the account is evaluated).

ALTER TABLE one_time_charges DROP CONSTRAINT one_time_charges_kind_check;
ALTER TABLE one_time_charges ADD CONSTRAINT one_time_charges_kind_check
    CHECK (kind IN ('setup', 'equipment', 'manual', 'late_fee', 'cancellation'));

CREATE TABLE dunning_ladders (
    tenant_id  text NOT NULL REFERENCES tenants (tenant_id) ON DELETE CASCADE,
    plan_id    text NOT NULL DEFAULT '',  -- '': the tenant's default ladder
    steps      jsonb NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, plan_id)
);

CREATE TABLE account_dunning (
    tenant_id   text NOT NULL,
    account_id  text NOT NULL,
    step        int,  -- NULL: good standing
    step_name   text,
    episode     int NOT NULL DEFAULT 1,  -- a new one begins each time the account is cleared
    entered_at  timestamptz,
    evaluated_at timestamptz,
    PRIMARY KEY (tenant_id, account_id),
    FOREIGN KEY (tenant_id, account_id) REFERENCES billing_accounts (tenant_id, account_id)
        ON DELETE CASCADE
);

CREATE TABLE dunning_entries (
    tenant_id      text NOT NULL,
    account_id     text NOT NULL,
    episode        int NOT NULL,
    step           int NOT NULL,
    step_name      text NOT NULL,
    entered_at     timestamptz NOT NULL,
    overdue_amount bigint NOT NULL,
    late_fee       bigint NOT NULL DEFAULT 0,
    charge_id      text,
    status_mark    bigint NOT NULL DEFAULT 0,  -- the account's last status change then
    PRIMARY KEY (tenant_id, account_id, episode, step)
);
