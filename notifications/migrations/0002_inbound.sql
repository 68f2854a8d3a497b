-- Inbound SMS keywords (BALANCE, HELP): which tenant a number texted belongs to, the tenant's
-- aliases of the keywords, and a log of every exchange (which the per-number rate limit counts).
CREATE TABLE inbound_settings (
    tenant_id        text PRIMARY KEY REFERENCES tenants (tenant_id) ON DELETE CASCADE,
    destination      text NOT NULL UNIQUE,  -- the shortcode or number texted, normalised
    unknown_reply    text,  -- what an unknown sender is told; NULL: no reply
    support_contact  text NOT NULL DEFAULT '',
    replies_per_hour int NOT NULL DEFAULT 10 CHECK (replies_per_hour >= 0),
    updated_at       timestamptz NOT NULL DEFAULT now()
);

-- A tenant's own words for the keywords (e.g. 'SALDO' -> balance, in 'de'); the built-in
-- BALANCE and HELP (English) always apply. Matched case-insensitively.
CREATE TABLE inbound_keywords (
    tenant_id text NOT NULL REFERENCES tenants (tenant_id) ON DELETE CASCADE,
    keyword   text NOT NULL CHECK (keyword <> '' AND keyword !~ '\s'),
    meaning   text NOT NULL CHECK (meaning IN ('balance', 'help')),
    language  text NOT NULL DEFAULT 'en',
    PRIMARY KEY (tenant_id, keyword)
);

-- Every mobile-originated text, with what was done about it. A reply is the outbox row with
-- source_event 'inbound:<id>' (so one inbound message is answered at most once).
CREATE TABLE inbound_messages (
    id          bigserial PRIMARY KEY,
    tenant_id   text,  -- NULL: the number texted belongs to no tenant
    source      text NOT NULL,  -- the sender, as the SMSC gave it
    number      text NOT NULL,  -- the sender normalised (E.164 where it is a number)
    destination text NOT NULL,
    text        text NOT NULL,
    keyword     text CHECK (keyword IN ('balance', 'help')),  -- the meaning matched, if any
    account_id  text,  -- NULL: an unknown sender
    outcome     text NOT NULL CHECK (outcome IN ('replied', 'rate_limited', 'no_reply',
                                                 'unavailable')),
    pdu_ref     text,  -- the PDU's own identity, when the SMSC gives one
    received_at timestamptz NOT NULL
);
-- A redelivered PDU with an identity is logged (and answered) once.
CREATE UNIQUE INDEX inbound_messages_pdu_idx ON inbound_messages (tenant_id, number, pdu_ref)
    WHERE pdu_ref IS NOT NULL;
CREATE INDEX inbound_messages_number_idx ON inbound_messages (tenant_id, number, received_at)
    WHERE outcome = 'replied';
