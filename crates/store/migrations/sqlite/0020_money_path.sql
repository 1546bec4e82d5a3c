-- The money path as units of work (issue 9): an idempotency key is bound to the resource its
-- first request created, records how far that request got (its recovery point), and is locked
-- while one request works on it, so a retry resumes instead of colliding.
ALTER TABLE idempotency_keys ADD COLUMN resource_id TEXT;
ALTER TABLE idempotency_keys ADD COLUMN locked_until BIGINT;
CREATE INDEX idempotency_keys_created ON idempotency_keys (created_at);
