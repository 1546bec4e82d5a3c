-- Pending payments (with their scheduled expiry job) for notify.py's scripts, on a database the
-- gateway has migrated (run `paybridge bench notify --database-url <it>` once first).
-- Client c of pgbench uses payments PG<c*2000> .. PG<c*2000+1999>: no two clients touch one
-- row, so the scripts measure commits and statements, not lock waits (as the gateway's writers,
-- which never share a payment between two open transactions).
DELETE FROM payments WHERE out_trade_no LIKE 'PG%';
DELETE FROM jobs WHERE dedup_key LIKE 'pay_PG%';
INSERT INTO payments (id, mode, account, channel, scene, out_trade_no, amount, currency, subject,
    status, version, expires_at, refunded_amount, late_payment, metadata, created_at, updated_at)
SELECT 'pay_PG' || n, 'sandbox', 'alipay-sandbox', 'alipay', 'qr', 'PG' || n, 100, 'CNY', 'bench',
    'pending', 1, 4102444800000, 0, false, '{}', 1, 1
FROM generate_series(0, 64 * 2000 - 1) AS n;
INSERT INTO jobs (id, kind, dedup_key, payment_id, payload, state, run_at, attempts, created_at, updated_at)
SELECT 'job_PG' || n, 'expire', 'pay_PG' || n, 'pay_PG' || n, '{}', 'scheduled', 4102444800000, 0, 1, 1
FROM generate_series(0, 64 * 2000 - 1) AS n;
ANALYZE;
