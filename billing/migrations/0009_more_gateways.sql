-- PayPal and CCAvenue next to Stripe (issue 11). account_ref is the gateway's public id for the
-- tenant's account (PayPal's client id, CCAvenue's merchant id): not a secret, shown back.
ALTER TABLE gateway_accounts DROP CONSTRAINT gateway_accounts_gateway_check;
ALTER TABLE gateway_accounts ADD CONSTRAINT gateway_accounts_gateway_check
    CHECK (gateway IN ('stripe', 'paypal', 'ccavenue'));
ALTER TABLE gateway_accounts ADD COLUMN account_ref text;
