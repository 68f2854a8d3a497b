-- Auto top-up (issue 11): an account's saved payment method at a gateway, and one decision per
-- low-balance alert on the auto top-up line (unique: an alert is answered once).
CREATE TABLE payment_methods (
    tenant_id    text NOT NULL,
    account_id   text NOT NULL,
    gateway      text NOT NULL CHECK (gateway IN ('stripe')),
    customer_ref text NOT NULL,  -- Stripe: cus_...
    method_ref   text NOT NULL,  -- Stripe: pm_...
    top_up_to    bigint CHECK (top_up_to > 0),  -- micros: charge up to this balance instead
    updated_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, account_id),
    FOREIGN KEY (tenant_id, account_id) REFERENCES accounts (tenant_id, account_id)
);

CREATE TABLE auto_topup_attempts (
    attempt_id  bigserial PRIMARY KEY,
    tenant_id   text NOT NULL,
    account_id  text NOT NULL,
    alert_id    bigint NOT NULL,
    at          timestamptz NOT NULL,
    status      text NOT NULL CHECK (status IN ('skipped', 'pending', 'succeeded', 'declined',
                                                'failed', 'invoiced')),
    reason      text NOT NULL DEFAULT '',
    amount      bigint,  -- micros asked for
    payment_ref text,
    payment_id  text,
    invoice_id  text,
    UNIQUE (tenant_id, alert_id)
);
CREATE INDEX auto_topup_attempts_account_idx ON auto_topup_attempts (tenant_id, account_id, at);
CREATE INDEX auto_topup_attempts_pending_idx ON auto_topup_attempts (at) WHERE status = 'pending';
