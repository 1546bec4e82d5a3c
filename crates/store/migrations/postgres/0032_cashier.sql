-- The hosted cashier (收银台), PostgreSQL dialect. Keep identical in meaning to migrations/sqlite.
--
-- A cashier is the merchant's order offered to the buyer in both wallets. It holds no money
-- state of its own: each wallet the buyer picks becomes an ordinary payment (one provider
-- order, the usual money path) pointing back at it through payments.cashier_id.
CREATE TABLE cashiers (
    id              TEXT PRIMARY KEY NOT NULL,
    -- The capability in the cashier URL: 256 random bits, the only way a buyer reaches it.
    token           TEXT NOT NULL UNIQUE,
    mode            TEXT NOT NULL,
    merchant        TEXT NOT NULL,
    out_trade_no    TEXT NOT NULL,
    amount          BIGINT NOT NULL,
    currency        TEXT NOT NULL,
    subject         TEXT NOT NULL,
    description     TEXT,
    return_url      TEXT,
    alipay_account  TEXT,
    wechat_account  TEXT,
    expires_at      BIGINT NOT NULL,
    -- The payment that keeps the money: the first one paid, set once (a conditional update).
    -- Any other payment of this cashier that is paid too is refunded by its settle job.
    paid_payment_id TEXT,
    metadata        JSONB NOT NULL,
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL,
    UNIQUE (mode, merchant, out_trade_no)
);

ALTER TABLE payments ADD COLUMN cashier_id TEXT;
CREATE INDEX payments_cashier ON payments (cashier_id) WHERE cashier_id IS NOT NULL;
