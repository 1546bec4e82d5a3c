-- paybridge schema, PostgreSQL dialect. Times are unix milliseconds (BIGINT), money is fen (BIGINT),
-- JSON is JSONB. Keep column names and meanings identical to migrations/sqlite.

CREATE TABLE payments (
    id                TEXT PRIMARY KEY NOT NULL,
    mode              TEXT NOT NULL,
    account           TEXT NOT NULL,
    channel           TEXT NOT NULL,
    scene             TEXT NOT NULL,
    out_trade_no      TEXT NOT NULL,
    amount            BIGINT NOT NULL,
    currency          TEXT NOT NULL,
    subject           TEXT NOT NULL,
    description       TEXT,
    status            TEXT NOT NULL,
    previous_status   TEXT,
    version           BIGINT NOT NULL,
    provider_trade_no TEXT,
    client_action     JSONB,
    payer_id          TEXT,
    expires_at        BIGINT,
    paid_at           BIGINT,
    paid_amount       BIGINT,
    refunded_amount   BIGINT NOT NULL DEFAULT 0,
    late_payment      BOOLEAN NOT NULL DEFAULT FALSE,
    metadata          JSONB NOT NULL,
    created_at        BIGINT NOT NULL,
    updated_at        BIGINT NOT NULL,
    UNIQUE (account, out_trade_no)
);
CREATE INDEX payments_list ON payments (mode, created_at, id);
CREATE INDEX payments_status ON payments (status, expires_at);

CREATE TABLE refunds (
    id                 TEXT PRIMARY KEY NOT NULL,
    payment_id         TEXT NOT NULL REFERENCES payments (id),
    mode               TEXT NOT NULL,
    account            TEXT NOT NULL,
    out_refund_no      TEXT NOT NULL,
    amount             BIGINT NOT NULL,
    reason             TEXT,
    status             TEXT NOT NULL,
    previous_status    TEXT,
    version            BIGINT NOT NULL,
    provider_refund_no TEXT,
    failure_reason     TEXT,
    succeeded_at       BIGINT,
    created_at         BIGINT NOT NULL,
    updated_at         BIGINT NOT NULL,
    UNIQUE (payment_id, out_refund_no)
);
CREATE INDEX refunds_status ON refunds (status, created_at);

CREATE TABLE events (
    id          TEXT PRIMARY KEY NOT NULL,
    seq         BIGINT GENERATED ALWAYS AS IDENTITY UNIQUE,
    -- Position in the merchants' pull feed, assigned after commit by one publisher at a time
    -- (see Store::list_events): insertion sequences are taken before commit, so on PostgreSQL
    -- they do not follow commit order and a cursor over them could skip a late commit.
    feed_seq    BIGINT UNIQUE,
    mode        TEXT NOT NULL,
    account     TEXT NOT NULL,
    type        TEXT NOT NULL,
    payment_id  TEXT,
    refund_id   TEXT,
    payload     JSONB NOT NULL,
    created_at  BIGINT NOT NULL
);
CREATE INDEX events_unpublished ON events (seq) WHERE feed_seq IS NULL;
CREATE INDEX events_payment ON events (payment_id);

CREATE TABLE webhook_deliveries (
    id               TEXT PRIMARY KEY NOT NULL,
    event_id         TEXT NOT NULL REFERENCES events (id),
    endpoint         TEXT NOT NULL,
    status           TEXT NOT NULL,
    attempts         BIGINT NOT NULL DEFAULT 0,
    next_attempt_at  BIGINT NOT NULL,
    lease_until      BIGINT,
    last_status_code BIGINT,
    last_error       TEXT,
    delivered_at     BIGINT,
    created_at       BIGINT NOT NULL,
    updated_at       BIGINT NOT NULL,
    UNIQUE (event_id, endpoint)
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (status, next_attempt_at);

CREATE TABLE audit_log (
    id          TEXT PRIMARY KEY NOT NULL,
    entity      TEXT NOT NULL,
    entity_id   TEXT NOT NULL,
    from_status TEXT,
    to_status   TEXT NOT NULL,
    version     BIGINT NOT NULL,
    actor       TEXT NOT NULL,
    reason      TEXT NOT NULL,
    created_at  BIGINT NOT NULL
);
CREATE INDEX audit_entity ON audit_log (entity_id, created_at);

CREATE TABLE notifications (
    id          TEXT PRIMARY KEY NOT NULL,
    channel     TEXT NOT NULL,
    account     TEXT NOT NULL,
    path        TEXT NOT NULL,
    headers     JSONB NOT NULL,
    body        BYTEA NOT NULL,
    remote_addr TEXT,
    received_at BIGINT NOT NULL,
    verified    BOOLEAN,
    outcome     TEXT,
    reason      TEXT,
    notify_id   TEXT,
    payment_id  TEXT,
    processed_at BIGINT
);
CREATE INDEX notifications_payment ON notifications (payment_id, received_at);
CREATE INDEX notifications_received ON notifications (received_at);

-- One row per provider notification id that was processed: the inbox keeps every raw copy,
-- this table answers "seen before?".
CREATE TABLE notification_dedup (
    account         TEXT NOT NULL,
    notify_id       TEXT NOT NULL,
    notification_id TEXT NOT NULL,
    created_at      BIGINT NOT NULL,
    PRIMARY KEY (account, notify_id)
);

CREATE TABLE idempotency_keys (
    scope           TEXT NOT NULL,
    key             TEXT NOT NULL,
    request_hash    TEXT NOT NULL,
    state           TEXT NOT NULL,
    response_status BIGINT,
    response_body   BYTEA,
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL,
    PRIMARY KEY (scope, key)
);

CREATE TABLE api_keys (
    id         TEXT PRIMARY KEY NOT NULL,
    mode       TEXT NOT NULL,
    merchant   TEXT NOT NULL,
    scopes     TEXT NOT NULL,
    key_hash   TEXT NOT NULL UNIQUE,
    prefix     TEXT NOT NULL,
    revoked    BOOLEAN NOT NULL DEFAULT FALSE,
    created_at BIGINT NOT NULL
);

CREATE TABLE provider_calls (
    id          TEXT PRIMARY KEY NOT NULL,
    payment_id  TEXT,
    refund_id   TEXT,
    channel     TEXT NOT NULL,
    account     TEXT NOT NULL,
    operation   TEXT NOT NULL,
    request     TEXT NOT NULL,
    response    TEXT,
    http_status BIGINT,
    latency_ms  BIGINT NOT NULL,
    outcome     TEXT NOT NULL,
    created_at  BIGINT NOT NULL
);
CREATE INDEX provider_calls_payment ON provider_calls (payment_id, created_at);

CREATE TABLE jobs (
    id          TEXT PRIMARY KEY NOT NULL,
    kind        TEXT NOT NULL,
    dedup_key   TEXT NOT NULL,
    payment_id  TEXT,
    refund_id   TEXT,
    payload     JSONB NOT NULL,
    state       TEXT NOT NULL,
    run_at      BIGINT NOT NULL,
    attempts    BIGINT NOT NULL DEFAULT 0,
    lease_owner TEXT,
    lease_until BIGINT,
    last_error  TEXT,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL
);
-- At most one live (scheduled or running) job per kind and key; finished jobs stay as history.
CREATE UNIQUE INDEX jobs_live_key ON jobs (kind, dedup_key) WHERE state IN ('scheduled', 'running');
CREATE INDEX jobs_due ON jobs (state, run_at);

CREATE TABLE payment_timeline (
    seq        BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    payment_id TEXT NOT NULL,
    kind       TEXT NOT NULL,
    detail     JSONB NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX payment_timeline_payment ON payment_timeline (payment_id, seq);
