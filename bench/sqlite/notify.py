#!/usr/bin/env python3
"""The SQLite reference for `paybridge bench notify`: one writer doing what the gateway's
database does per verified paid notification (order lookup, row read, conditional update,
audit row, outbox event, expiry job cancellation, dedup row, inbox row of a real form's size),
`--batch` notifications per `BEGIN IMMEDIATE ... COMMIT`, WAL with synchronous=NORMAL as the
gateway opens it. On a copy of the gateway's schema (a database `paybridge bench notify` made):

    python3 bench/sqlite/notify.py --db /tmp/paybridge-bench-<ts>/bench.db --batch 50 --count 20000
"""
import argparse
import os
import sqlite3
import time
import uuid

COLS = ("id, mode, account, channel, scene, out_trade_no, amount, currency, subject, "
        "description, status, previous_status, version, provider_trade_no, client_action, "
        "payer_id, expires_at, paid_at, paid_amount, refunded_amount, late_payment, metadata, "
        "created_at, updated_at")
BODY = b"x" * 900


def new_id(prefix):
    return f"{prefix}_{uuid.uuid4().hex}"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--db", required=True)
    ap.add_argument("--batch", type=int, default=50)
    ap.add_argument("--count", type=int, default=20000)
    args = ap.parse_args()
    db = sqlite3.connect(args.db, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    db.execute("PRAGMA foreign_keys=ON")
    db.execute("BEGIN IMMEDIATE")
    db.execute("DELETE FROM payments WHERE out_trade_no LIKE 'SQ%'")
    db.execute("DELETE FROM jobs WHERE dedup_key LIKE 'pay_SQ%'")
    db.executemany(
        "INSERT INTO payments (id, mode, account, channel, scene, out_trade_no, amount, currency, "
        "subject, status, version, expires_at, refunded_amount, late_payment, metadata, created_at, "
        "updated_at) VALUES (?, 'sandbox', 'alipay-sandbox', 'alipay', 'qr', ?, 100, 'CNY', 'bench', "
        "'pending', 1, 4102444800000, 0, 0, '{}', 1, 1)",
        ((f"pay_SQ{n}", f"SQ{n}") for n in range(args.count)))
    db.executemany(
        "INSERT INTO jobs (id, kind, dedup_key, payment_id, payload, state, run_at, attempts, "
        "created_at, updated_at) VALUES (?, 'expire', ?, ?, '{}', 'scheduled', 4102444800000, 0, 1, 1)",
        ((f"job_SQ{n}", f"pay_SQ{n}", f"pay_SQ{n}") for n in range(args.count)))
    db.execute("COMMIT")
    started = time.perf_counter()
    for start in range(0, args.count, args.batch):
        db.execute("BEGIN IMMEDIATE")
        for n in range(start, min(start + args.batch, args.count)):
            pid = f"pay_SQ{n}"
            db.execute(f"SELECT {COLS} FROM payments WHERE account = 'alipay-sandbox' AND out_trade_no = ?",
                       (f"SQ{n}",)).fetchall()
            db.execute(f"SELECT {COLS} FROM payments WHERE id = ?", (pid,)).fetchall()
            db.execute(
                "UPDATE payments SET provider_trade_no = COALESCE(?, provider_trade_no), "
                "client_action = COALESCE(NULL, client_action), payer_id = COALESCE('2088000000000001', payer_id), "
                "expires_at = COALESCE(NULL, expires_at), paid_at = COALESCE(1, paid_at), "
                "paid_amount = COALESCE(100, paid_amount), late_payment = COALESCE(NULL, late_payment), "
                "previous_status = status, status = 'paid', version = version + 1, updated_at = 1 "
                f"WHERE id = ? AND version = 1 RETURNING {COLS}", (f"2026{n}", pid)).fetchall()
            db.execute(
                "INSERT INTO audit_log (id, entity, entity_id, from_status, to_status, version, actor, "
                "reason, created_at) VALUES (?, 'payment', ?, 'pending', 'paid', 2, 'notify:ntf_x', "
                "'provider notification', 1)", (new_id("aud"), pid))
            db.execute(
                "INSERT INTO events (id, mode, account, type, payment_id, refund_id, payload, created_at) "
                "VALUES (?, 'sandbox', 'alipay-sandbox', 'payment.paid', ?, NULL, ?, 1)",
                (new_id("evt"), pid, '{"id": "pay_x", "status": "paid", "amount": 100, "out_trade_no": "SQ"}'))
            db.execute("UPDATE jobs SET state = 'cancelled', updated_at = 1 WHERE kind = 'expire' "
                       "AND dedup_key = ? AND state = 'scheduled'", (pid,))
            nid = new_id("ntf")
            db.execute("INSERT INTO notification_dedup (account, notify_id, notification_id, created_at) "
                       "VALUES ('alipay-sandbox', ?, ?, 1) ON CONFLICT (account, notify_id) DO NOTHING",
                       (new_id("nid"), nid))
            db.execute(
                "INSERT INTO notifications (id, channel, account, path, headers, body, remote_addr, "
                "received_at, verified, outcome, reason, notify_id, payment_id, processed_at) VALUES "
                "(?, 'alipay', 'alipay-sandbox', '/notify/alipay/alipay-sandbox', "
                "'[[\"content-type\", \"application/x-www-form-urlencoded; charset=utf-8\"]]', ?, "
                "'127.0.0.1', 1, 1, 'applied', NULL, ?, ?, 1)", (nid, BODY, new_id("nid"), pid))
        db.execute("COMMIT")
    secs = time.perf_counter() - started
    print(f"sqlite reference: {args.count} notifications, batch {args.batch}: "
          f"{secs:.3f} s, {args.count / secs:.0f}/s")


if __name__ == "__main__":
    main()
