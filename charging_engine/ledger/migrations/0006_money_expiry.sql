-- Prepaid validity (issue 11): expired money leaves the balance as an 'expiry' operation.
ALTER TABLE money_operations DROP CONSTRAINT money_operations_kind_check;
ALTER TABLE money_operations ADD CONSTRAINT money_operations_kind_check
    CHECK (kind IN ('topup', 'withdraw', 'adjust', 'expiry'));

-- What the validity evaluation reads per account: its inflows (newest first) and its top-ups
-- that carry a validity, without walking every call entry.
CREATE INDEX ledger_entries_inflow_idx ON ledger_entries (tenant_id, account_id, seq)
    WHERE amount > 0;
CREATE INDEX ledger_entries_validity_idx ON ledger_entries (tenant_id, account_id, seq)
    WHERE kind = 'topup' AND extra ? 'valid_until';
