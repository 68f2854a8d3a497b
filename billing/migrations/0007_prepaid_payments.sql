-- A payment of a prepaid account (no bill plan, no invoices) tops its balance up through the
-- engine's money operation, named by ``topup_key``; its account is any account, not only one
-- with billing.
ALTER TABLE payments DROP CONSTRAINT payments_tenant_id_account_id_fkey;
ALTER TABLE payments ADD FOREIGN KEY (tenant_id, account_id)
    REFERENCES accounts (tenant_id, account_id);
ALTER TABLE payments ADD COLUMN topup_key text;
