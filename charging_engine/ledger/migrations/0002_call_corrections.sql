-- CDR reconciliation: a settled call's charge corrected once from the PBX's CDR.
-- The correction is stored as an absolute value (not added to cost), so a redelivered
-- ledger entry writes the same row again and changes nothing.
ALTER TABLE calls
    ADD COLUMN correction bigint NOT NULL DEFAULT 0,
    ADD COLUMN cdr_seconds integer;
