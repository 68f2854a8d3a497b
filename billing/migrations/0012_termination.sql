-- Termination as the suspension ladder's last step: a bill plan's minimum term and the fee for
-- leaving inside it, the day an account's billing ends (its final invoice runs through it), and
-- one row per termination started (per overdue episode), which the ladder closes, or cancels
-- when the debt is paid first.

ALTER TABLE bill_plans
    ADD COLUMN minimum_term_days int NOT NULL DEFAULT 0
        CHECK (minimum_term_days BETWEEN 0 AND 3650),
    ADD COLUMN cancellation_fee bigint NOT NULL DEFAULT 0 CHECK (cancellation_fee >= 0);

ALTER TABLE billing_accounts
    ADD COLUMN ends_on date,  -- NULL: open-ended; else the last day billed (inclusive)
    ADD COLUMN ends_at timestamptz,  -- the start of the day after ends_on, tenant zone
    ADD COLUMN ended_at timestamptz,  -- when the final period was billed: no more periods
    ADD COLUMN final_invoice_id text,  -- the final invoice (NULL: none, or nothing to bill)
    ADD CONSTRAINT billing_accounts_ends_check CHECK ((ends_on IS NULL) = (ends_at IS NULL)
                                                      AND (ended_at IS NULL OR ends_on IS NOT NULL));

-- An account is due when its open period ends, or its billing (whichever comes first); one
-- whose billing has ended is never due again (the run's scan does not even see it).
DROP INDEX billing_accounts_due_idx;
CREATE INDEX billing_accounts_due_idx ON billing_accounts ((LEAST(open_ends_at, ends_at)))
    WHERE ended_at IS NULL;

CREATE TABLE account_terminations (
    tenant_id        text NOT NULL,
    account_id       text NOT NULL,
    episode          int NOT NULL,  -- the overdue episode (account_dunning.episode)
    state            text NOT NULL DEFAULT 'pending'
                     CHECK (state IN ('pending', 'closed', 'cancelled')),
    ends_on          date NOT NULL,
    cancellation_fee bigint NOT NULL DEFAULT 0 CHECK (cancellation_fee >= 0),
    charge_id        text,  -- the cancellation charge (one_time_charges), if any
    started_at       timestamptz NOT NULL,
    attempted_at     timestamptz,  -- the last close attempt
    waiting_for      text,  -- why the account is not closed yet
    closed_at        timestamptz,
    cancelled_at     timestamptz,
    PRIMARY KEY (tenant_id, account_id, episode),
    FOREIGN KEY (tenant_id, account_id) REFERENCES billing_accounts (tenant_id, account_id)
        ON DELETE CASCADE
);
CREATE UNIQUE INDEX account_terminations_pending_uq ON account_terminations (tenant_id, account_id)
    WHERE state = 'pending';
