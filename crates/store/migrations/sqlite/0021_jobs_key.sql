-- Lookups of a job by (kind, dedup_key) with `state = 'scheduled'` (cancelling an expiry when a
-- payment is paid, moving a waiting job up) cannot use the partial index jobs_live_key: SQLite
-- only uses a partial index when the query repeats its WHERE term (`state IN (...)`), so they
-- fell back to jobs_due (state, run_at) and scanned every scheduled job, one scan per
-- notification. PostgreSQL's planner proves `state = 'scheduled'` implies the partial index's
-- predicate and needs no such index.
CREATE INDEX jobs_key ON jobs (kind, dedup_key);
