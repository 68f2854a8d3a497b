-- Notifications (issue 12): one outbox of messages derived from the billing event log
-- (webhook_events, written in the transaction of the change that caused each event), per
-- tenant settings, templates, opt-outs and channel credentials.
CREATE TABLE notification_settings (
    tenant_id       text PRIMARY KEY REFERENCES tenants (tenant_id) ON DELETE CASCADE,
    sms_alternate   boolean NOT NULL DEFAULT false,  -- SMS to the alternate number too
    language        text NOT NULL DEFAULT 'en',
    locale          text NOT NULL DEFAULT 'en_US',
    reminder_days   int NOT NULL DEFAULT 3 CHECK (reminder_days BETWEEN 0 AND 60),
    updated_at      timestamptz NOT NULL DEFAULT now()
);

-- A tenant's own texts; the catalogue's defaults apply where none is set.
CREATE TABLE notification_templates (
    tenant_id  text NOT NULL REFERENCES tenants (tenant_id) ON DELETE CASCADE,
    event      text NOT NULL,
    channel    text NOT NULL CHECK (channel IN ('sms', 'email')),
    part       text NOT NULL CHECK (part IN ('body', 'subject', 'text', 'html')),
    language   text NOT NULL,
    source     text NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, event, channel, part, language)
);

CREATE TABLE notification_optouts (
    tenant_id  text NOT NULL,
    account_id text NOT NULL,
    event      text NOT NULL,  -- '*': every event
    channel    text NOT NULL CHECK (channel IN ('sms', 'email', '*')),
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, account_id, event, channel),
    FOREIGN KEY (tenant_id, account_id) REFERENCES accounts (tenant_id, account_id)
        ON DELETE CASCADE
);

-- The outbox: one row per message (event, channel, recipient): the unique key is what makes
-- the same event never produce the same message twice.
CREATE TABLE notifications (
    notification_id bigserial PRIMARY KEY,
    tenant_id       text NOT NULL,
    account_id      text NOT NULL,
    source_event    text NOT NULL,  -- the billing event's id (or another cause's key)
    event           text NOT NULL,  -- the template event (invoice.ready, ...)
    channel         text NOT NULL CHECK (channel IN ('sms', 'email')),
    recipient       text NOT NULL,
    language        text NOT NULL,
    context         jsonb NOT NULL,
    status          text NOT NULL DEFAULT 'pending'
                    CHECK (status IN ('pending', 'sending', 'sent', 'delivered', 'failed',
                                      'dead')),
    attempts        int NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL,
    lease_until     timestamptz,
    provider_ref    text,
    last_error      text,
    created_at      timestamptz NOT NULL,
    sent_at         timestamptz,
    delivered_at    timestamptz,
    UNIQUE (tenant_id, source_event, event, channel, recipient)
);
CREATE INDEX notifications_due_idx ON notifications (next_attempt_at)
    WHERE status IN ('pending', 'sending');
CREATE INDEX notifications_account_idx ON notifications (tenant_id, account_id, created_at);


-- The provider's ids of a sent message (an SMS of three parts has three), with each part's
-- delivery receipt state: the message is delivered when every part is.
CREATE TABLE notification_parts (
    provider_id     text NOT NULL,
    channel         text NOT NULL,
    notification_id bigint REFERENCES notifications ON DELETE CASCADE,  -- NULL: a receipt
                                            -- that came before the send was recorded
    state           text,  -- the receipt's stat (DELIVRD, UNDELIV, ...); NULL: none yet
    at              timestamptz,
    PRIMARY KEY (channel, provider_id)
);
CREATE INDEX notification_parts_idx ON notification_parts (notification_id);

-- Every billing event reaches the relay exactly once (billing's event_consumer_queue).
INSERT INTO event_consumers (name) VALUES ('notifications');
