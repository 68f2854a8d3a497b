-- Settlement writes every ledger row and CDR through these indexes: each btree costs the
-- hot COPY path a tree descent per row. Time columns grow with insertion order, so a BRIN
-- index (a few pages per million rows, near-free to maintain) serves period scans as well.
-- Per-account ledger history is served by the primary key (tenant, account, seq).
DROP INDEX ledger_entries_ts_idx;
CREATE INDEX ledger_entries_ts_brin ON ledger_entries USING brin (ts);
-- No query orders calls by end time within a tenant; billing periods scan by range.
DROP INDEX calls_ended_idx;
CREATE INDEX calls_ended_brin ON calls USING brin (ended_at);
