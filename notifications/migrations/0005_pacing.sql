-- SMS pacing (issue 12): a tenant's quiet hours (local wall-clock times in tenants.timezone;
-- both or neither; may wrap midnight) and its SMS-per-minute limit (NULL: none). The rate
-- windows count what was sent per tenant, channel and minute; a message over the limit
-- waits for the next window. Old windows are deleted as new ones open.
ALTER TABLE notification_settings
    ADD COLUMN quiet_start time,
    ADD COLUMN quiet_end time,
    ADD COLUMN sms_per_minute int CHECK (sms_per_minute > 0),
    ADD CONSTRAINT notification_settings_quiet_check
        CHECK ((quiet_start IS NULL) = (quiet_end IS NULL) AND quiet_start <> quiet_end);

CREATE TABLE notification_rate_windows (
    tenant_id    text NOT NULL,
    channel      text NOT NULL,
    window_start timestamptz NOT NULL,
    sent         int NOT NULL,
    PRIMARY KEY (tenant_id, channel, window_start)
);
