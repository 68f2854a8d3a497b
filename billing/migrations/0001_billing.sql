-- Postpaid billing (issue 10): bill plans, what is billed per account, invoices and their
-- numbering. Invoice amounts are bigint ISO 4217 minor units of the invoice's currency;
-- usage travels in the engine's micros until it becomes an invoice line (rounded once there).

-- One row per tenant: how its invoices are numbered, finalized, taxed and presented.
CREATE TABLE billing_settings (
    tenant_id         text PRIMARY KEY REFERENCES tenants (tenant_id) ON DELETE CASCADE,
    number_prefix     text NOT NULL DEFAULT 'INV' CHECK (number_prefix ~ '^[A-Za-z0-9_-]{0,20}$'),
    number_pattern    text NOT NULL DEFAULT '{prefix}-{year}-{seq:06d}',
    finalization      text NOT NULL DEFAULT 'auto' CHECK (finalization IN ('auto', 'review')),
    review_hours      int NOT NULL DEFAULT 0 CHECK (review_hours BETWEEN 0 AND 8760),
    tax_rounding      text NOT NULL DEFAULT 'per_line'
                      CHECK (tax_rounding IN ('per_line', 'per_invoice')),
    default_bcd       int CHECK (default_bcd BETWEEN 1 AND 31),
    kind_switch       text NOT NULL DEFAULT 'boundary' CHECK (kind_switch IN ('boundary', 'now')),
    locale            text NOT NULL DEFAULT 'en_US',
    seller_name       text NOT NULL DEFAULT '',
    seller_address    text[] NOT NULL DEFAULT '{}',
    seller_tax_ids    text[] NOT NULL DEFAULT '{}',
    footer            text NOT NULL DEFAULT '',
    template_source   text,
    updated_at        timestamptz NOT NULL DEFAULT now()
);

-- Gapless document numbers: the row is updated in the finalizing transaction, so a rolled
-- back finalization gives its number back and concurrent ones queue on the row lock.
CREATE TABLE document_counters (
    tenant_id text NOT NULL REFERENCES tenants (tenant_id) ON DELETE CASCADE,
    series    text NOT NULL CHECK (series IN ('invoice', 'receipt')),
    last_seq  bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (tenant_id, series)
);

CREATE TABLE tax_labels (
    tenant_id text NOT NULL REFERENCES tenants (tenant_id) ON DELETE CASCADE,
    code      text NOT NULL CHECK (code ~ '^[A-Za-z0-9_.-]{1,32}$'),
    name      text NOT NULL,
    rate      numeric(9, 4) NOT NULL CHECK (rate >= 0 AND rate <= 100),
    inclusive boolean NOT NULL DEFAULT false,
    compound  boolean NOT NULL DEFAULT false,
    ord       int NOT NULL DEFAULT 0,
    PRIMARY KEY (tenant_id, code)
);

CREATE TABLE bill_plans (
    tenant_id          text NOT NULL REFERENCES tenants (tenant_id) ON DELETE CASCADE,
    plan_id            text NOT NULL CHECK (plan_id ~ '^[A-Za-z0-9_.:-]{1,64}$'),
    name               text NOT NULL DEFAULT '',
    period             text NOT NULL DEFAULT 'monthly'
                       CHECK (period IN ('weekly', 'monthly', 'quarterly', 'yearly')),
    anchor_month       int NOT NULL DEFAULT 1 CHECK (anchor_month BETWEEN 1 AND 12),
    payment_terms_days int NOT NULL DEFAULT 14 CHECK (payment_terms_days BETWEEN 0 AND 365),
    currency           char(3) NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    fees_in_advance    boolean NOT NULL DEFAULT false,
    usage_in_arrears   boolean NOT NULL DEFAULT true,
    rate_plan_id       text,
    plan_fee           bigint NOT NULL DEFAULT 0 CHECK (plan_fee >= 0),
    per_extension_fee  bigint NOT NULL DEFAULT 0 CHECK (per_extension_fee >= 0),
    per_seat_fee       bigint NOT NULL DEFAULT 0 CHECK (per_seat_fee >= 0),
    minimum_spend      bigint NOT NULL DEFAULT 0 CHECK (minimum_spend >= 0),
    invoice_when_empty boolean NOT NULL DEFAULT false,
    tax_codes          text[] NOT NULL DEFAULT '{}',
    payment_text       text NOT NULL DEFAULT '',
    created_at         timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, plan_id)
);

-- The billing side of an account: its plan, cycle and the open period the run will bill next.
-- (billed_seq, billed_end) is the rectangle of ledger entries already invoiced: an entry is
-- on the first invoice whose cut seq and period end both lie beyond it, so each entry is on
-- exactly one invoice; carry_seq is the lowest seq left inside the rectangle's seq range
-- (settled before the cut but for a later period), where the next scan starts.
CREATE TABLE billing_accounts (
    tenant_id        text NOT NULL,
    account_id       text NOT NULL,
    plan_id          text NOT NULL,
    bcd              int NOT NULL CHECK (bcd BETWEEN 1 AND 31),
    extensions       int NOT NULL DEFAULT 0 CHECK (extensions >= 0),
    seats            int NOT NULL DEFAULT 0 CHECK (seats >= 0),
    tax_codes        text[],  -- NULL: the plan's
    credit_balance   bigint NOT NULL DEFAULT 0 CHECK (credit_balance >= 0),
    open_index       int NOT NULL,
    open_start_date  date NOT NULL,
    open_end_date    date NOT NULL,
    open_starts_at   timestamptz NOT NULL,
    open_ends_at     timestamptz NOT NULL,
    open_reference_days int,  -- a BCD change's bridging period: the length it would have had
    billed_seq       bigint NOT NULL DEFAULT 0,
    billed_end       timestamptz NOT NULL DEFAULT '-infinity',
    carry_seq        bigint,
    fees_billed_to   date,  -- recurring fees are charged up to (exclusive) this date
    pending_kind     text CHECK (pending_kind IN ('prepaid', 'postpaid')),
    pending_at       timestamptz,  -- when the pending kind switch takes effect
    switch_key       text,  -- names the switch's balance moves (idempotency keys)
    created_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, account_id),
    FOREIGN KEY (tenant_id, account_id) REFERENCES accounts (tenant_id, account_id)
        ON DELETE CASCADE,
    FOREIGN KEY (tenant_id, plan_id) REFERENCES bill_plans (tenant_id, plan_id)
);
CREATE INDEX billing_accounts_due_idx ON billing_accounts (open_ends_at);

-- Which plan an account was on from which date: mid-period plan changes prorate from it.
CREATE TABLE account_plan_history (
    id         bigserial PRIMARY KEY,
    tenant_id  text NOT NULL,
    account_id text NOT NULL,
    plan_id    text NOT NULL,
    extensions int NOT NULL DEFAULT 0,
    seats      int NOT NULL DEFAULT 0,
    from_date  date NOT NULL,
    changed_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX account_plan_history_idx ON account_plan_history (tenant_id, account_id, from_date);

CREATE TABLE dids (
    tenant_id       text NOT NULL REFERENCES tenants (tenant_id) ON DELETE CASCADE,
    number          text NOT NULL CHECK (number ~ '^[0-9]{3,15}$'),
    account_id      text,
    description     text NOT NULL DEFAULT '',
    setup_fee       bigint NOT NULL DEFAULT 0 CHECK (setup_fee >= 0),
    monthly_fee     bigint NOT NULL DEFAULT 0 CHECK (monthly_fee >= 0),
    inbound_per_minute bigint NOT NULL DEFAULT 0 CHECK (inbound_per_minute >= 0),  -- micros
    assigned_on     date,
    released_on     date,
    setup_invoice   text,  -- the invoice that charged the setup fee
    PRIMARY KEY (tenant_id, number)
);
CREATE INDEX dids_account_idx ON dids (tenant_id, account_id);

CREATE TABLE one_time_charges (
    tenant_id   text NOT NULL,
    charge_id   text NOT NULL,
    account_id  text NOT NULL,
    kind        text NOT NULL DEFAULT 'manual' CHECK (kind IN ('setup', 'equipment', 'manual')),
    description text NOT NULL,
    amount      bigint NOT NULL CHECK (amount > 0),
    quantity    numeric(12, 3) NOT NULL DEFAULT 1 CHECK (quantity > 0),
    tax_codes   text[],
    charge_on   date NOT NULL,  -- billed on the invoice of the period containing this date
    invoice_id  text,  -- set when an invoice took it
    created_at  timestamptz NOT NULL DEFAULT now(),
    created_by  text,
    PRIMARY KEY (tenant_id, charge_id),
    FOREIGN KEY (tenant_id, account_id) REFERENCES accounts (tenant_id, account_id)
);
CREATE INDEX one_time_charges_open_idx ON one_time_charges (tenant_id, account_id)
    WHERE invoice_id IS NULL;

CREATE TABLE discounts (
    tenant_id   text NOT NULL REFERENCES tenants (tenant_id) ON DELETE CASCADE,
    discount_id text NOT NULL,
    name        text NOT NULL,
    kind        text NOT NULL CHECK (kind IN ('percent', 'fixed')),
    value       numeric(18, 4) NOT NULL CHECK (value >= 0),
    scope       text NOT NULL CHECK (scope IN ('usage', 'recurring', 'invoice')),
    account_id  text,
    plan_id     text,
    starts_on   date,
    ends_on     date,
    ord         int NOT NULL DEFAULT 0,
    CHECK ((account_id IS NULL) <> (plan_id IS NULL)),
    CHECK (kind <> 'percent' OR value <= 100),
    PRIMARY KEY (tenant_id, discount_id)
);

-- Invoices and receipts. Unique (tenant, account, period start) makes the run idempotent (period
-- starts only grow; an index may repeat across a bill cycle day change); the
-- number is set once, at finalization, from document_counters.
CREATE TABLE invoices (
    invoice_id     text PRIMARY KEY,
    tenant_id      text NOT NULL,
    account_id     text NOT NULL,
    kind           text NOT NULL DEFAULT 'invoice' CHECK (kind IN ('invoice', 'receipt')),
    period_index   int,
    period_start   date,
    period_end     date,
    starts_at      timestamptz,
    ends_at        timestamptz,
    currency       char(3) NOT NULL,
    status         text NOT NULL DEFAULT 'draft'
                   CHECK (status IN ('draft', 'finalized', 'paid', 'partially_paid', 'void')),
    number         text,
    number_seq     bigint,
    issued_on      date NOT NULL,
    due_on         date,
    review_until   timestamptz,
    subtotal       bigint NOT NULL DEFAULT 0,
    tax_total      bigint NOT NULL DEFAULT 0,
    total          bigint NOT NULL DEFAULT 0,
    credit_applied bigint NOT NULL DEFAULT 0,
    amount_due     bigint NOT NULL DEFAULT 0,
    usage_micros   bigint NOT NULL DEFAULT 0,  -- the ledger amounts this invoice billed
    cut_seq        bigint,
    usage_credited boolean NOT NULL DEFAULT true,  -- the balance got usage_micros back
    inputs         jsonb,  -- what the invoice was composed from: corrections recompose it
    source_ref     text,  -- receipts: the money operation's idempotency key
    plan_id        text,
    payment_text   text NOT NULL DEFAULT '',
    created_at     timestamptz NOT NULL DEFAULT now(),
    finalized_at   timestamptz,
    voided_at      timestamptz,
    void_reason    text,
    UNIQUE (tenant_id, number),
    UNIQUE (tenant_id, kind, number_seq)
);
CREATE UNIQUE INDEX invoices_period_uq ON invoices (tenant_id, account_id, period_start)
    WHERE kind = 'invoice';
CREATE UNIQUE INDEX invoices_receipt_uq ON invoices (tenant_id, source_ref)
    WHERE kind = 'receipt';
CREATE INDEX invoices_tenant_idx ON invoices (tenant_id, created_at, invoice_id);
CREATE INDEX invoices_account_idx ON invoices (tenant_id, account_id, period_index);
CREATE INDEX invoices_pending_idx ON invoices (review_until) WHERE status = 'draft';
CREATE INDEX invoices_uncredited_idx ON invoices (tenant_id) WHERE NOT usage_credited;

CREATE TABLE invoice_lines (
    invoice_id  text NOT NULL REFERENCES invoices (invoice_id) ON DELETE CASCADE,
    position    int NOT NULL,
    kind        text NOT NULL,
    description text NOT NULL,
    quantity    numeric(18, 3) NOT NULL DEFAULT 1,
    unit        text NOT NULL DEFAULT '',
    amount      bigint NOT NULL,
    net         bigint NOT NULL,
    tax_codes   text[] NOT NULL DEFAULT '{}',
    tax_amount  bigint NOT NULL DEFAULT 0,
    calls       int NOT NULL DEFAULT 0,
    seconds     bigint NOT NULL DEFAULT 0,
    ref         text,
    manual      boolean NOT NULL DEFAULT false,  -- added or changed by an admin in review
    reason      text,
    PRIMARY KEY (invoice_id, position)
);

CREATE TABLE invoice_taxes (
    invoice_id text NOT NULL REFERENCES invoices (invoice_id) ON DELETE CASCADE,
    code       text NOT NULL,
    name       text NOT NULL,
    rate       numeric(9, 4) NOT NULL,
    inclusive  boolean NOT NULL,
    base       bigint NOT NULL,
    amount     bigint NOT NULL,
    PRIMARY KEY (invoice_id, code)
);

-- Finalized invoices are immutable: only status moves (paid, void) and only forward.
CREATE FUNCTION invoices_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF OLD.status <> 'draft' AND (
        NEW.total, NEW.subtotal, NEW.tax_total, NEW.number, NEW.account_id, NEW.currency,
        NEW.issued_on, NEW.due_on, NEW.period_index
    ) IS DISTINCT FROM (
        OLD.total, OLD.subtotal, OLD.tax_total, OLD.number, OLD.account_id, OLD.currency,
        OLD.issued_on, OLD.due_on, OLD.period_index
    ) THEN
        RAISE EXCEPTION 'invoice % is % and cannot be changed', OLD.invoice_id, OLD.status;
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER invoices_immutable BEFORE UPDATE ON invoices
    FOR EACH ROW EXECUTE FUNCTION invoices_guard();

CREATE FUNCTION invoice_children_guard() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    st text;
BEGIN
    SELECT status INTO st FROM invoices
        WHERE invoice_id = COALESCE(NEW.invoice_id, OLD.invoice_id);
    IF st IS NOT NULL AND st <> 'draft' THEN
        RAISE EXCEPTION 'invoice % is % and its lines cannot be changed',
            COALESCE(NEW.invoice_id, OLD.invoice_id), st;
    END IF;
    RETURN COALESCE(NEW, OLD);
END
$$;
CREATE TRIGGER invoice_lines_immutable BEFORE INSERT OR UPDATE OR DELETE ON invoice_lines
    FOR EACH ROW EXECUTE FUNCTION invoice_children_guard();
CREATE TRIGGER invoice_taxes_immutable BEFORE INSERT OR UPDATE OR DELETE ON invoice_taxes
    FOR EACH ROW EXECUTE FUNCTION invoice_children_guard();

-- The ledger entries each invoice billed, as seq ranges per account (cut rectangles are
-- recorded on the invoice; this index serves "which invoice billed call X").
CREATE INDEX ledger_entries_idem_billed ON ledger_entries (tenant_id, account_id, idem_key)
    WHERE kind = 'billed';
