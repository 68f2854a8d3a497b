-- Payments and their allocations to invoices (issue 11). Every allocation is a row; an
-- invoice's open amount is amount_due - live allocations (- credit notes, later). A reversal
-- (bounced cheque) or refund marks the payment's allocations reversed, never deletes them.

CREATE TABLE payments (
    payment_id     text PRIMARY KEY,
    tenant_id      text NOT NULL,
    account_id     text NOT NULL,
    method         text NOT NULL CHECK (method IN ('cash', 'cheque', 'card', 'bank_transfer',
                                                   'online', 'direct_debit')),
    amount         bigint NOT NULL CHECK (amount > 0),  -- minor units of currency
    currency       char(3) NOT NULL,
    received_on    date NOT NULL,
    reference      text NOT NULL DEFAULT '',
    collected_by   text NOT NULL,  -- the key or agent that recorded it
    idem_key       text NOT NULL,
    request_hash   text NOT NULL,  -- the same key with another body is refused
    credited       bigint NOT NULL DEFAULT 0 CHECK (credited >= 0),  -- went to account credit
    status         text NOT NULL DEFAULT 'recorded'
                   CHECK (status IN ('recorded', 'reversed', 'refunded')),
    undone_at      timestamptz,
    undo_reason    text,
    shortfall      bigint NOT NULL DEFAULT 0,  -- credit already spent when it was undone
    created_at     timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, idem_key),
    FOREIGN KEY (tenant_id, account_id) REFERENCES billing_accounts (tenant_id, account_id)
);
CREATE INDEX payments_account_idx ON payments (tenant_id, account_id, received_on, payment_id);
CREATE INDEX payments_tenant_idx ON payments (tenant_id, created_at, payment_id);

CREATE TABLE payment_allocations (
    allocation_id  bigserial PRIMARY KEY,
    tenant_id      text NOT NULL,
    payment_id     text NOT NULL REFERENCES payments (payment_id),
    invoice_id     text NOT NULL REFERENCES invoices (invoice_id),
    amount         bigint NOT NULL CHECK (amount > 0),
    created_at     timestamptz NOT NULL DEFAULT now(),
    reversed_at    timestamptz
);
CREATE INDEX payment_allocations_invoice_idx ON payment_allocations (invoice_id)
    WHERE reversed_at IS NULL;
CREATE INDEX payment_allocations_payment_idx ON payment_allocations (payment_id);

-- What each invoice still owes (credit notes join this view when they come).
CREATE VIEW invoice_open AS
SELECT i.invoice_id, i.tenant_id, i.account_id, i.currency, i.status, i.due_on, i.issued_on,
       i.amount_due,
       COALESCE(a.allocated, 0) AS allocated,
       i.amount_due - COALESCE(a.allocated, 0) AS open
FROM invoices i
LEFT JOIN (SELECT invoice_id, sum(amount)::bigint AS allocated FROM payment_allocations
           WHERE reversed_at IS NULL GROUP BY invoice_id) a USING (invoice_id)
WHERE i.kind = 'invoice' AND i.status IN ('finalized', 'partially_paid', 'paid');
