-- Set-based reconciliation, runs as jobs, sqlite dialect. Keep identical in meaning to
-- migrations/postgres.

-- A run is queued by the API and run by a job: created_at is when it was asked for,
-- started_at when its job began (the bill cannot hold what settled after that).
ALTER TABLE reconciliation_runs ADD COLUMN created_at INTEGER NOT NULL DEFAULT 0;
-- Progress while the job runs: bill rows read (staged), bill rows with a local row.
ALTER TABLE reconciliation_runs ADD COLUMN rows_read INTEGER NOT NULL DEFAULT 0;
ALTER TABLE reconciliation_runs ADD COLUMN rows_matched INTEGER NOT NULL DEFAULT 0;
-- SHA-256 (hex) of the bill as the parser read it: which file this run is about.
ALTER TABLE reconciliation_runs ADD COLUMN bill_sha256 TEXT;
-- Set when the run's discrepancies are recorded (one transaction): a job resuming a run
-- after a crash goes straight to healing.
ALTER TABLE reconciliation_runs ADD COLUMN matched_at INTEGER;
UPDATE reconciliation_runs SET created_at = started_at;

-- reconciliation_matches now holds only the bill rows whose local row settled outside the
-- run's day (near midnight): a neighbouring day's sweep must not call them missing. A run's
-- own day is matched against its staged bill, so the common case writes nothing here.
