-- Tables the notifications read by id (alerts, account_status_history; issue 12): how far each
-- was read (last_id, shared by every process) and which rows near it were looked at already,
-- so that a row committed late is still seen, none is looked at twice, and rows that make
-- no message (no contacts, opted out) cannot block the ones after them. A new deployment
-- starts past what is already there (+ 1000: notifications.scan.MARGIN): history is not news.
CREATE TABLE notification_scans (
    source  text PRIMARY KEY,
    last_id bigint NOT NULL
);
INSERT INTO notification_scans (source, last_id)
SELECT 'alerts', COALESCE(max(id), 0) + 1000 FROM alerts
UNION ALL
SELECT 'status', COALESCE(max(id), 0) + 1000 FROM account_status_history;

CREATE TABLE notification_examined (
    source text NOT NULL,
    id     bigint NOT NULL,
    PRIMARY KEY (source, id)
);
