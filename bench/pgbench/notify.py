#!/usr/bin/env python3
"""Writes a pgbench script doing what the gateway's database does for `--batch` verified
paid notifications sharing one transaction: per notification the order lookup, then in the
transaction the row lock, the conditional update, the audit row, the outbox event, the expiry
job's cancellation, the dedup row and the inbox row (about the size of a real Alipay form).

    python3 bench/pgbench/notify.py --batch 50 > /tmp/notify50.pgbench
    psql -f bench/pgbench/seed.sql postgres://postgres@127.0.0.1:5432/pbb
    pgbench -n -M prepared -c 64 -j 2 -T 20 -f /tmp/notify50.pgbench postgres://...pbb

Notifications/s = transactions/s x batch. Client c uses payments PG<c*2000>...: see seed.sql.
"""
import argparse

COLS = ("id, mode, account, channel, scene, out_trade_no, amount, currency, subject, "
        "description, status, previous_status, version, provider_trade_no, client_action, "
        "payer_id, expires_at, paid_at, paid_amount, refunded_amount, late_payment, metadata, "
        "created_at, updated_at")
BODY = "x" * 900


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--batch", type=int, default=50)
    args = ap.parse_args()
    b = args.batch
    out = [f"\\set blk random(0, {2000 // b - 1})", "BEGIN;"]
    for k in range(b):
        n = f"(:client_id * 2000 + :blk * {b} + {k})"
        pid = f"'pay_PG' || {n}"
        out += [
            f"SELECT {COLS} FROM payments WHERE account = 'alipay-sandbox' AND out_trade_no = 'PG' || {n};",
            f"SELECT {COLS} FROM payments WHERE id = {pid} FOR UPDATE;",
            "UPDATE payments SET provider_trade_no = COALESCE('2026' || md5(random()::text), provider_trade_no), "
            "client_action = COALESCE(NULL, client_action), payer_id = COALESCE('2088000000000001', payer_id), "
            "expires_at = COALESCE(NULL, expires_at), paid_at = COALESCE(1, paid_at), "
            "paid_amount = COALESCE(100, paid_amount), late_payment = COALESCE(NULL, late_payment), "
            "previous_status = status, status = 'paid', version = version + 1, updated_at = 1 "
            f"WHERE id = {pid} RETURNING {COLS};",
            "INSERT INTO audit_log (id, entity, entity_id, from_status, to_status, version, actor, reason, created_at) "
            f"VALUES ('aud_' || md5(random()::text), 'payment', {pid}, 'pending', 'paid', 2, 'notify ntf_x', 'provider notification', 1);",
            "INSERT INTO events (id, mode, account, type, payment_id, refund_id, payload, created_at) "
            f"VALUES ('evt_' || md5(random()::text), 'sandbox', 'alipay-sandbox', 'payment.paid', {pid}, NULL, "
            "'{\"id\": \"pay_x\", \"status\": \"paid\", \"amount\": 100, \"out_trade_no\": \"PG\"}', 1);",
            "UPDATE jobs SET state = 'cancelled', updated_at = 1 WHERE kind = 'expire' "
            f"AND dedup_key = {pid} AND state = 'scheduled';",
            "INSERT INTO notification_dedup (account, notify_id, notification_id, created_at) "
            "VALUES ('alipay-sandbox', md5(random()::text), 'ntf_x', 1) ON CONFLICT (account, notify_id) DO NOTHING;",
            "INSERT INTO notifications (id, channel, account, path, headers, body, remote_addr, received_at, "
            "verified, outcome, reason, notify_id, payment_id, processed_at) VALUES ('ntf_' || md5(random()::text), "
            "'alipay', 'alipay-sandbox', '/notify/alipay/alipay-sandbox', "
            "'[[\"content-type\", \"application/x-www-form-urlencoded; charset=utf-8\"]]', "
            f"convert_to('{BODY}', 'UTF8'), '127.0.0.1', 1, true, 'applied', NULL, md5(random()::text), {pid}, 1);",
        ]
    out.append("COMMIT;")
    print("\n".join(out))


if __name__ == "__main__":
    main()
