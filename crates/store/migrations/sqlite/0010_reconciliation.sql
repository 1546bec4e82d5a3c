-- Reconciliation (issue 6), SQLite dialect. Keep identical in meaning to migrations/postgres.

-- One reconciliation of one account's bill for one provider day.
CREATE TABLE reconciliation_runs (
    id          TEXT PRIMARY KEY NOT NULL,
    account     TEXT NOT NULL,
    bill_date   TEXT NOT NULL,
    state       TEXT NOT NULL,
    -- Counts and sums in fen (bill and local side, fees, discrepancies by kind), JSON.
    totals      TEXT NOT NULL,
    error       TEXT,
    started_at  INTEGER NOT NULL,
    finished_at INTEGER,
    updated_at  INTEGER NOT NULL
);
CREATE INDEX reconciliation_runs_day ON reconciliation_runs (account, bill_date, started_at);

-- Differences between a bill and local rows; healed ones stay as history.
CREATE TABLE reconciliation_discrepancies (
    id                TEXT PRIMARY KEY NOT NULL,
    run_id            TEXT NOT NULL REFERENCES reconciliation_runs (id),
    account           TEXT NOT NULL,
    bill_date         TEXT NOT NULL,
    kind              TEXT NOT NULL,
    entity            TEXT NOT NULL,
    out_trade_no      TEXT NOT NULL,
    out_refund_no     TEXT,
    payment_id        TEXT,
    refund_id         TEXT,
    provider_trade_no TEXT,
    bill_amount       INTEGER,
    local_amount      INTEGER,
    bill_status       TEXT,
    local_status      TEXT,
    healable          BOOLEAN NOT NULL,
    resolution        TEXT NOT NULL,
    detail            TEXT,
    created_at        INTEGER NOT NULL,
    updated_at        INTEGER NOT NULL
);
CREATE INDEX reconciliation_discrepancies_run ON reconciliation_discrepancies (run_id, id);
CREATE INDEX reconciliation_discrepancies_open ON reconciliation_discrepancies (account, resolution);

-- Local payments and refunds a bill row matched: what is left over in a day is missing at the
-- provider. Kept per run so a re-run starts clean yet rows matched on a neighbouring day count.
CREATE TABLE reconciliation_matches (
    entity_id TEXT NOT NULL,
    run_id    TEXT NOT NULL,
    PRIMARY KEY (entity_id, run_id)
);
CREATE INDEX payments_paid_day ON payments (account, paid_at);
CREATE INDEX refunds_account_out ON refunds (account, out_refund_no);
CREATE INDEX refunds_succeeded_day ON refunds (account, succeeded_at);
