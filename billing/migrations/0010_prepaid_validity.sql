-- Prepaid periods (issue 11): a tenant's policy (top-up validity, dormancy days), and one row
-- per expired top-up (its ledger seq): the proof that its expiry ran, exactly once.
CREATE TABLE prepaid_policies (
    tenant_id  text PRIMARY KEY REFERENCES tenants (tenant_id) ON DELETE CASCADE,
    policy     jsonb NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE prepaid_expiries (
    tenant_id   text NOT NULL,
    account_id  text NOT NULL,
    ref         bigint NOT NULL,  -- the top-up's ledger seq
    valid_until timestamptz NOT NULL,
    attempt     int NOT NULL DEFAULT 0,  -- a refusal (a call took the money first) retries anew
    amount      bigint,  -- micros leaving the balance (NULL: to be computed again)
    status      text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'done')),
    expired_at  timestamptz,
    PRIMARY KEY (tenant_id, account_id, ref)
);

-- Dormancy steps taken, once per episode (the day the balance reached zero).
CREATE TABLE prepaid_dormancy (
    tenant_id  text NOT NULL,
    account_id text NOT NULL,
    zero_since date NOT NULL,
    step       text NOT NULL,
    outcome    text NOT NULL,
    at         timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, account_id, zero_since, step)
);

-- The day an account was last evaluated: dormancy and warnings are looked at once a day, money
-- past its validity every tick.
CREATE TABLE prepaid_checks (
    tenant_id  text NOT NULL,
    account_id text NOT NULL,
    checked_on date NOT NULL,
    PRIMARY KEY (tenant_id, account_id)
);
