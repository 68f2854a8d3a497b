-- A generic HTTP SMS gateway as the SMS channel (issue 12): 'http_sms' beside SMTP and SMPP.
-- secret_enc holds its outbound credential (basic password, bearer token or header value);
-- inbound_secret_enc the shared secret its webhooks (texts from phones, delivery statuses) are
-- signed with. Both encrypted with CE_SECRETS_KEY and never returned.
ALTER TABLE notification_channels DROP CONSTRAINT notification_channels_channel_check;
ALTER TABLE notification_channels ADD CONSTRAINT notification_channels_channel_check
    CHECK (channel IN ('smtp', 'smpp', 'http_sms'));
ALTER TABLE notification_channels ADD COLUMN inbound_secret_enc bytea;
