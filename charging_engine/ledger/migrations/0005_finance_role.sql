-- The finance role (billing: reviews invoices, records charges, hands off to accounting).
-- The role CHECK of 0003 was created unnamed: drop whichever check constrains the role column
-- alone (the platform/tenant check spans two columns and stays), then add it back by name.
DO $$
DECLARE
    c record;
BEGIN
    FOR c IN
        SELECT con.conname FROM pg_constraint con
        JOIN pg_attribute att ON att.attrelid = con.conrelid AND att.attname = 'role'
        WHERE con.conrelid = 'api_keys'::regclass AND con.contype = 'c'
          AND con.conkey = ARRAY[att.attnum]
    LOOP
        EXECUTE format('ALTER TABLE api_keys DROP CONSTRAINT %I', c.conname);
    END LOOP;
END
$$;
ALTER TABLE api_keys ADD CONSTRAINT api_keys_role_check
    CHECK (role IN ('platform', 'tenant_admin', 'ops', 'agent', 'finance'));
