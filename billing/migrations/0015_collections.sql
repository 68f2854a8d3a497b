-- Collection agents (issue 12): pickup requests and pending renewals assigned to agents in the
-- field, their visits with the tenant's status presets, and the payments they collect (each
-- recorded through the receivables use case, exactly once per Idempotency-Key).
CREATE TABLE collection_agents (
    tenant_id  text NOT NULL REFERENCES tenants (tenant_id) ON DELETE CASCADE,
    agent_id   text NOT NULL CHECK (agent_id ~ '^[A-Za-z0-9_.-]{1,64}$'),
    name       text NOT NULL CHECK (name <> ''),
    area       text NOT NULL DEFAULT '',  -- the assignment rule's key ('' : no area)
    mobile     text,
    key_id     text,  -- the agent's API key (role agent); its rotations stay the agent's
    active     boolean NOT NULL DEFAULT true,
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, agent_id)
);
CREATE UNIQUE INDEX collection_agents_key_idx ON collection_agents (key_id)
    WHERE key_id IS NOT NULL;

-- A tenant's visit outcomes; the built-in ones apply where a tenant has none.
CREATE TABLE collection_presets (
    tenant_id text NOT NULL REFERENCES tenants (tenant_id) ON DELETE CASCADE,
    code      text NOT NULL,
    label     text NOT NULL,
    outcome   text NOT NULL CHECK (outcome IN ('collected', 'absent', 'promised', 'refused',
                                               'other')),
    position  int NOT NULL,
    PRIMARY KEY (tenant_id, code)
);

CREATE TABLE collection_tasks (
    tenant_id       text NOT NULL,
    task_id         text NOT NULL,
    account_id      text NOT NULL,
    kind            text NOT NULL CHECK (kind IN ('pickup', 'renewal')),
    area            text NOT NULL DEFAULT '',
    address         text NOT NULL DEFAULT '',
    note            text NOT NULL DEFAULT '',
    amount_expected bigint CHECK (amount_expected > 0),  -- minor units; a renewal's price
    due_on          date,
    status          text NOT NULL CHECK (status IN ('open', 'assigned', 'visited', 'promised',
                                                    'collected', 'cancelled')),
    agent_id        text,
    assigned_at     timestamptz,
    created_by      text NOT NULL,
    created_at      timestamptz NOT NULL,
    updated_at      timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, task_id),
    FOREIGN KEY (tenant_id, account_id) REFERENCES accounts (tenant_id, account_id)
        ON DELETE CASCADE,
    FOREIGN KEY (tenant_id, agent_id) REFERENCES collection_agents (tenant_id, agent_id)
);
CREATE INDEX collection_tasks_agent_idx ON collection_tasks (tenant_id, agent_id, status);
CREATE INDEX collection_tasks_created_idx ON collection_tasks (tenant_id, created_at, task_id);

-- Every visit an agent records (a collection is a visit with its payment).
CREATE TABLE collection_visits (
    visit_id     bigserial PRIMARY KEY,
    tenant_id    text NOT NULL,
    task_id      text NOT NULL,
    agent_id     text,  -- NULL: recorded by a supervisor for the task
    preset       text NOT NULL,
    outcome      text NOT NULL,
    comment      text NOT NULL DEFAULT '',
    promised_on  date,
    payment_id   text,
    amount       bigint,
    method       text,
    idem_key     text,  -- a collection's Idempotency-Key (the agent's phone retries with it)
    request_hash text,
    recorded_by  text NOT NULL,
    at           timestamptz NOT NULL,
    FOREIGN KEY (tenant_id, task_id) REFERENCES collection_tasks (tenant_id, task_id)
        ON DELETE CASCADE,
    UNIQUE (tenant_id, task_id, idem_key)
);
CREATE INDEX collection_visits_agent_idx ON collection_visits (tenant_id, agent_id, at);
