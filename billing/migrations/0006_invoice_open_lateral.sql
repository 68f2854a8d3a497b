-- invoice_open per invoice through its indexes: a query for one account's invoices sums only
-- their allocations and credit notes (the aggregate-then-join form summed every table whole,
-- so each payment got slower as payments accumulated).
CREATE OR REPLACE VIEW invoice_open AS
SELECT i.invoice_id, i.tenant_id, i.account_id, i.currency, i.status, i.due_on, i.issued_on,
       i.amount_due,
       a.allocated,
       i.amount_due - a.allocated - c.credited AS open,
       c.credited
FROM invoices i
CROSS JOIN LATERAL (SELECT COALESCE(sum(p.amount), 0)::bigint AS allocated
                    FROM payment_allocations p
                    WHERE p.invoice_id = i.invoice_id AND p.reversed_at IS NULL) a
CROSS JOIN LATERAL (SELECT COALESCE(sum(n.applied), 0)::bigint AS credited
                    FROM credit_notes n WHERE n.invoice_id = i.invoice_id) c
WHERE i.kind = 'invoice' AND i.status IN ('finalized', 'partially_paid', 'paid');
