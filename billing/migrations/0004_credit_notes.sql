-- Credit notes against finalized invoices (issue 11): numbered in their own gapless series,
-- their lines and taxes kept like an invoice's; ``applied`` is the part that reduced the
-- invoice's open amount, the rest went to account credit or was refunded.

ALTER TABLE document_counters DROP CONSTRAINT document_counters_series_check;
ALTER TABLE document_counters ADD CONSTRAINT document_counters_series_check
    CHECK (series IN ('invoice', 'receipt', 'credit_note'));

CREATE TABLE credit_notes (
    credit_note_id text PRIMARY KEY,
    tenant_id      text NOT NULL,
    account_id     text NOT NULL,
    invoice_id     text NOT NULL REFERENCES invoices (invoice_id),
    number         text NOT NULL,
    number_seq     bigint NOT NULL,
    currency       char(3) NOT NULL,
    issued_on      date NOT NULL,
    settle         text NOT NULL CHECK (settle IN ('credit', 'refund')),
    subtotal       bigint NOT NULL,
    tax_total      bigint NOT NULL,
    total          bigint NOT NULL CHECK (total > 0),
    applied        bigint NOT NULL CHECK (applied >= 0),
    to_credit      bigint NOT NULL CHECK (to_credit >= 0),
    refunded       bigint NOT NULL CHECK (refunded >= 0),
    idem_key       text NOT NULL,
    request_hash   text NOT NULL,
    created_by     text,
    created_at     timestamptz NOT NULL DEFAULT now(),
    CHECK (applied + to_credit + refunded = total),
    UNIQUE (tenant_id, number),
    UNIQUE (tenant_id, number_seq),
    UNIQUE (tenant_id, idem_key)
);
CREATE INDEX credit_notes_invoice_idx ON credit_notes (invoice_id);
CREATE INDEX credit_notes_tenant_idx ON credit_notes (tenant_id, created_at, credit_note_id);

CREATE TABLE credit_note_lines (
    credit_note_id   text NOT NULL REFERENCES credit_notes (credit_note_id),
    invoice_position int NOT NULL,
    description      text NOT NULL,
    amount           bigint NOT NULL CHECK (amount > 0),
    net              bigint NOT NULL,
    tax_amount       bigint NOT NULL,
    reason           text NOT NULL,
    PRIMARY KEY (credit_note_id, invoice_position)
);

CREATE TABLE credit_note_taxes (
    credit_note_id text NOT NULL REFERENCES credit_notes (credit_note_id),
    code           text NOT NULL,
    name           text NOT NULL,
    rate           numeric(9, 4) NOT NULL,
    inclusive      boolean NOT NULL,
    base           bigint NOT NULL,
    amount         bigint NOT NULL,
    PRIMARY KEY (credit_note_id, code)
);

-- What each invoice still owes: amount due - live allocations - credit notes applied to it.
CREATE OR REPLACE VIEW invoice_open AS
SELECT i.invoice_id, i.tenant_id, i.account_id, i.currency, i.status, i.due_on, i.issued_on,
       i.amount_due,
       COALESCE(a.allocated, 0) AS allocated,
       i.amount_due - COALESCE(a.allocated, 0) - COALESCE(c.credited, 0) AS open,
       COALESCE(c.credited, 0) AS credited
FROM invoices i
LEFT JOIN (SELECT invoice_id, sum(amount)::bigint AS allocated FROM payment_allocations
           WHERE reversed_at IS NULL GROUP BY invoice_id) a USING (invoice_id)
LEFT JOIN (SELECT invoice_id, sum(applied)::bigint AS credited FROM credit_notes
           GROUP BY invoice_id) c USING (invoice_id)
WHERE i.kind = 'invoice' AND i.status IN ('finalized', 'partially_paid', 'paid');
