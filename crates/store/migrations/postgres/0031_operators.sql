-- Console operators, their sessions, one-time login links and login throttling (postgres dialect;
-- keep identical in meaning to the other dialect). Operator actions are written to audit_log
-- (actor `operator:<username>`) like every other change, so there is one audit trail.

CREATE TABLE operators (
    id            TEXT PRIMARY KEY NOT NULL,
    username      TEXT NOT NULL UNIQUE,
    -- admin | support | viewer
    role          TEXT NOT NULL,
    -- argon2id PHC string
    password_hash TEXT NOT NULL,
    disabled      BOOLEAN NOT NULL DEFAULT FALSE,
    created_at    BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL
);

-- Only the SHA-256 of a session token is stored: a copy of the database logs nobody in.
CREATE TABLE operator_sessions (
    token_hash   TEXT PRIMARY KEY NOT NULL,
    operator_id  TEXT NOT NULL REFERENCES operators (id),
    -- live | sandbox: the one mode whose data this session's pages show
    mode         TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    last_seen_at BIGINT NOT NULL,
    -- idle expiry, pushed forward as the session is used, never past absolute_expiry
    expires_at   BIGINT NOT NULL,
    absolute_expiry BIGINT NOT NULL
);
CREATE INDEX operator_sessions_operator ON operator_sessions (operator_id);

-- One-time login links (the demo prints one): usable once, until expires_at.
CREATE TABLE operator_login_tokens (
    token_hash  TEXT PRIMARY KEY NOT NULL,
    operator_id TEXT NOT NULL REFERENCES operators (id),
    expires_at  BIGINT NOT NULL,
    used_at     BIGINT
);

-- Failed logins by subject (`user:<name>` or `addr:<ip>`), counted over a window.
CREATE TABLE login_failures (
    subject TEXT NOT NULL,
    at      BIGINT NOT NULL
);
CREATE INDEX login_failures_subject ON login_failures (subject, at);
