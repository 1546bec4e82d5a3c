//! The reconciliation benchmark: a generated day of N settled payments and its N-row bill,
//! reconciled in bounded memory. Two steps so that the measured process holds nothing of the
//! generator:
//!
//! ```sh
//! cargo build --release -p paybridge-reconcile --example reconcile_bench
//! B=target/release/examples/reconcile_bench
//! $B seed --db sqlite:///tmp/rb.db --rows 1000000 --format wechat --bill /tmp/rb.csv
//! /usr/bin/time -v $B run --db sqlite:///tmp/rb.db --format wechat --bill /tmp/rb.csv
//! ```
//!
//! The bill differs from the books in a few known places (amounts, rows missing on either
//! side), and `run` checks that exactly those are reported, by the engine (parse, stage, match,
//! record) and by the ceiling it is measured against in the same run: the same rows generated,
//! staged by the store's loader (`COPY` / bulk insert) and matched by one read-only statement.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufWriter, Write};
use std::time::Instant;

use paybridge_alipay::bill::DETAIL_COLUMNS;
use paybridge_core::Fen;
use paybridge_reconcile::{
    beijing_day_bounds, match_rules, parse_bill_date, BillBytes, BillFile, Engine,
};
use paybridge_store::{BillRow, DayWindow, MatchCounts, Store, BILL_SUCCESS};

const ACCOUNT: &str = "bench";
const DATE: &str = "2026-11-01";
/// Every this-many rows the bill's amount is one fen off.
const AMOUNT_EVERY: u64 = 100_000;
/// Payments settled locally that the bill leaves out, and bill rows unknown locally.
const LEFT_OUT: u64 = 10;

fn arg(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .cloned()
}

fn amount(i: u64) -> i64 {
    100 + (i % 10_000) as i64
}

fn no(i: u64) -> String {
    format!("B{i:09}")
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let db = arg(&args, "--db").expect("--db URL");
    let bill = arg(&args, "--bill").expect("--bill FILE");
    let format = arg(&args, "--format").unwrap_or_else(|| "wechat".into());
    match args.get(1).map(String::as_str) {
        Some("seed") => {
            let rows: u64 = arg(&args, "--rows").expect("--rows N").parse().unwrap();
            seed(&db, rows).await;
            write_bill(&bill, &format, rows);
        }
        Some("parse") => {
            // The parser alone (no database): how much of the engine's time is the bill's.
            let file = if format == "alipay" {
                BillFile::AlipayZip(BillBytes::File(bill.into()))
            } else {
                BillFile::WechatText(BillBytes::File(bill.into()))
            };
            let started = Instant::now();
            let read = file.for_each_line(|_| Ok(())).unwrap();
            eprintln!("parsed {} rows in {:.2?}", read.rows, started.elapsed());
        }
        Some("engine") => {
            // One engine pass alone, for its peak RSS (no ceiling pass in the process).
            let store = Store::open(&db).await.unwrap();
            let bytes = BillBytes::File(bill.into());
            let file = if format == "alipay" {
                BillFile::AlipayZip(bytes)
            } else {
                BillFile::WechatText(bytes)
            };
            let started = Instant::now();
            let report = Engine::new(store)
                .reconcile_file(ACCOUNT, parse_bill_date(DATE).unwrap(), file, &())
                .await
                .unwrap();
            let t = &report.totals;
            assert_eq!(
                (t.missing_locally, t.missing_at_provider),
                (LEFT_OUT, LEFT_OUT)
            );
            eprintln!("engine: {} rows in {:.2?}", t.bill_rows, started.elapsed());
        }
        Some("download") => {
            // One engine pass whose bill comes through the APIv3 client: the gzip download
            // streamed from a local provider, decompressed and SHA-1 checked into a temporary
            // file, then reconciled. Its peak RSS covers the download.
            let gz = arg(&args, "--gz").expect("--gz FILE (the bill, gzipped)");
            let store = Store::open(&db).await.unwrap();
            let started = Instant::now();
            let source = fake_provider::bills(&bill, &gz).await;
            let file =
                paybridge_reconcile::BillSource::download(&source, parse_bill_date(DATE).unwrap())
                    .await
                    .unwrap();
            let downloaded = started.elapsed();
            let report = Engine::new(store)
                .reconcile_file(ACCOUNT, parse_bill_date(DATE).unwrap(), file, &())
                .await
                .unwrap();
            let t = &report.totals;
            assert_eq!(
                (t.missing_locally, t.missing_at_provider),
                (LEFT_OUT, LEFT_OUT)
            );
            eprintln!(
                "download + engine: {} rows in {:.2?} (download {:.2?})",
                t.bill_rows,
                started.elapsed(),
                downloaded
            );
        }
        Some("run") => {
            let repeat = arg(&args, "--repeat").map_or(3, |n| n.parse().unwrap());
            let in_memory = args.iter().any(|a| a == "--in-memory");
            run(&db, &bill, &format, in_memory, repeat.max(1)).await
        }
        _ => eprintln!(
            "usage: reconcile_bench seed|run|engine|download|parse --db URL --bill FILE [--rows N] \
             [--format wechat|alipay] [--in-memory] [--repeat N] [--gz FILE]"
        ),
    }
}

/// Fixture only: N settled payments in one multi-row INSERT per thousand. Going through
/// `Store::begin_payment` and two units of work per row would take the better part of an hour
/// for a million rows and measure the seeding, not reconciliation.
async fn seed(url: &str, rows: u64) {
    let store = Store::open(url).await.unwrap();
    store.close().await;
    let (start, _) = beijing_day_bounds(parse_bill_date(DATE).unwrap());
    let started = Instant::now();
    let mut statements = Vec::new();
    let mut i = 0;
    while i < rows {
        let end = (i + 1000).min(rows);
        let values: Vec<String> = (i..end)
            .map(|i| {
                let paid_at = start + (i as i64 * 997) % 86_400_000;
                format!(
                    "('pay_bench{i:012}', 'sandbox', '{ACCOUNT}', 'wechat', 'qr', '{}', {a}, 'CNY', \
                     'bench', NULL, 'paid', 'pending', 2, 'T{i:012}', NULL, NULL, NULL, {paid_at}, \
                     {a}, 0, FALSE, '{{}}', {paid_at}, {paid_at})",
                    no(i),
                    a = amount(i)
                )
            })
            .collect();
        statements.push(format!(
            "INSERT INTO payments (id, mode, account, channel, scene, out_trade_no, amount, \
             currency, subject, description, status, previous_status, version, provider_trade_no, \
             client_action, payer_id, expires_at, paid_at, paid_amount, refunded_amount, \
             late_payment, metadata, created_at, updated_at) VALUES {}",
            values.join(", ")
        ));
        i = end;
        if i == rows {
            // Fresh bulk-loaded tables have no planner statistics yet (autovacuum gets to
            // them later): without them PostgreSQL scans the table for every batch lookup.
            statements.push("ANALYZE".into());
        }
        if statements.len() >= 100 || i == rows {
            if url.starts_with("sqlite:") {
                let pool = sqlx::SqlitePool::connect(url).await.unwrap();
                let mut tx = pool.begin().await.unwrap();
                for s in statements.drain(..) {
                    sqlx::query(&s).execute(&mut *tx).await.unwrap();
                }
                tx.commit().await.unwrap();
                pool.close().await;
            } else {
                let pool = sqlx::PgPool::connect(url).await.unwrap();
                let mut tx = pool.begin().await.unwrap();
                for s in statements.drain(..) {
                    sqlx::query(&s).execute(&mut *tx).await.unwrap();
                }
                tx.commit().await.unwrap();
                pool.close().await;
            }
        }
    }
    eprintln!("seeded {rows} payments in {:.1?}", started.elapsed());
}

/// The bill of the day: rows `LEFT_OUT..N` of the books (the first `LEFT_OUT` are left out),
/// then `LEFT_OUT` rows nobody has locally; every `AMOUNT_EVERY`th amount one fen high.
fn bill_rows(rows: u64) -> impl Iterator<Item = (String, String, Fen)> {
    let local = (LEFT_OUT..rows).map(|i| {
        let off = i64::from(i % AMOUNT_EVERY == 0);
        (no(i), format!("42{i:016}"), Fen(amount(i) + off))
    });
    let extra = (0..LEFT_OUT).map(|i| (format!("X{i:09}"), format!("43{i:016}"), Fen(500)));
    local.chain(extra)
}

fn write_bill(path: &str, format: &str, rows: u64) {
    let started = Instant::now();
    let file = std::fs::File::create(path).unwrap();
    let count = rows;
    if format == "alipay" {
        let mut zip = zip::ZipWriter::new(file);
        let options = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated);
        zip.start_file("20880000_20261101_业务明细.csv", options)
            .unwrap();
        let mut w = BufWriter::new(zip);
        let mut line = |text: &str| {
            let (bytes, _, _) = encoding_rs::GBK.encode(text);
            w.write_all(&bytes).unwrap();
            w.write_all(b"\r\n").unwrap();
        };
        line("#支付宝业务明细查询");
        line("#账号：[20880000]");
        line(&DETAIL_COLUMNS.join(","));
        for (out_no, trade_no, fen) in bill_rows(rows) {
            let y = fen.to_yuan();
            line(&format!(
                "{trade_no}\t,{out_no}\t,交易\t,bench\t,2026-11-01 10:00:00\t,2026-11-01 10:00:01\t,\t,\t,\t,\t,buyer\t,{y}\t,{y}\t,0.00\t,0.00\t,0.00\t,0.00\t,0.00\t,\t,0.00\t,0.00\t,\t,-0.01\t,0.00\t,\t"
            ));
        }
        line(&format!("#交易合计：{count}笔，退款合计：0笔"));
        let zip = w.into_inner().ok().unwrap();
        zip.finish().unwrap();
    } else {
        let mut w = BufWriter::new(file);
        w.write_all("\u{feff}交易时间,公众账号ID,商户号,微信订单号,商户订单号,交易类型,交易状态,应结订单金额,微信退款单号,商户退款单号,退款金额,退款状态,商品名称,手续费,费率,订单金额,申请退款金额\r\n".as_bytes()).unwrap();
        let mut total = 0i64;
        for (out_no, trade_no, fen) in bill_rows(rows) {
            total += fen.0;
            let y = fen.to_yuan();
            writeln!(
                w,
                "`2026-11-01 10:00:00,`wx00,`1900000000,`{trade_no},`{out_no},`NATIVE,`SUCCESS,`{y},`0,`0,`0.00,`,`bench,`0.01000,`0.60%,`{y},`0.00\r"
            )
            .unwrap();
        }
        w.write_all("总交易单数,应结订单总金额,退款总金额,充值券退款总金额,手续费总金额,订单总金额,申请退款总金额\r\n".as_bytes()).unwrap();
        writeln!(
            w,
            "`{count},`{},`0.00,`0.00,`0.00,`{},`0.00\r",
            Fen(total).to_yuan(),
            Fen(total).to_yuan()
        )
        .unwrap();
        w.flush().unwrap();
    }
    eprintln!(
        "wrote a {rows}-row {format} bill in {:.1?}",
        started.elapsed()
    );
}

/// The same day as the engine sees it, without the engine: the bill's rows generated (not
/// parsed) and staged the way the store stages them (`COPY` / bulk insert), then matched by one
/// read-only statement. What the database can do at best; the engine's yardstick.
async fn ceiling(store: &Store, rows: u64) -> (std::time::Duration, MatchCounts) {
    let date = parse_bill_date(DATE).unwrap();
    let (from, day_end) = beijing_day_bounds(date);
    let window = DayWindow {
        from,
        to: day_end.min(store.now_ms()),
        day_end,
    };
    let rules = match_rules();
    let started = Instant::now();
    let mut stage = store.stage_bill(ACCOUNT).await.unwrap();
    let mut batch = Vec::with_capacity(10_000);
    for (out_trade_no, provider_trade_no, amount) in bill_rows(rows) {
        batch.push(BillRow {
            refund: false,
            out_trade_no,
            out_refund_no: None,
            provider_trade_no,
            amount,
            status: BILL_SUCCESS.into(),
        });
        if batch.len() == 10_000 {
            stage.load(&batch).await.unwrap();
            batch.clear();
        }
    }
    stage.load(&batch).await.unwrap();
    let staged = started.elapsed();
    stage.loaded().await.unwrap();
    let counts = stage.count_discrepancies(&rules, window).await.unwrap();
    let elapsed = started.elapsed();
    eprintln!(
        "ceiling: staged in {staged:.2?}, matched in {:.2?}",
        elapsed - staged
    );
    stage.close().await.unwrap();
    (elapsed, counts)
}

/// `in_memory`: the bill's bytes read first; otherwise streamed from the file. The ceiling is
/// measured before the first engine pass and after each, in the same process (the machine is
/// shared: single timings swing by a third); the medians are compared.
async fn run(url: &str, bill: &str, format: &str, in_memory: bool, repeat: usize) {
    let store = Store::open(url).await.unwrap();
    let file = if in_memory {
        BillBytes::Memory(std::fs::read(bill).unwrap())
    } else {
        BillBytes::File(bill.into())
    };
    let file = if format == "alipay" {
        BillFile::AlipayZip(file)
    } else {
        BillFile::WechatText(file)
    };
    let rows = bill_rows_of(&store).await;
    let amount_off = (LEFT_OUT..rows).filter(|i| i % AMOUNT_EVERY == 0).count() as u64;
    let check = |counts: &MatchCounts| {
        assert_eq!(counts.of("amount_mismatch") as u64, amount_off);
        assert_eq!(counts.of("missing_locally") as u64, LEFT_OUT);
        assert_eq!(counts.of("missing_at_provider") as u64, LEFT_OUT);
        assert_eq!(counts.rows_matched as u64, rows - LEFT_OUT);
    };
    let (first, counts) = ceiling(&store, rows).await;
    check(&counts);
    let mut ceilings = vec![first];
    let mut engines = Vec::new();
    for pass in 1..=repeat {
        let started = Instant::now();
        let report = Engine::new(store.clone())
            .reconcile_file(ACCOUNT, parse_bill_date(DATE).unwrap(), file.clone(), &())
            .await
            .unwrap();
        let elapsed = started.elapsed();
        let t = &report.totals;
        if pass == 1 {
            println!("{}", serde_json::to_string_pretty(t).unwrap());
        }
        assert_eq!(t.bill_rows, rows);
        assert_eq!(t.amount_mismatch, amount_off);
        assert_eq!(t.missing_locally, LEFT_OUT);
        assert_eq!(t.missing_at_provider, LEFT_OUT);
        assert_eq!(t.status_mismatch, 0);
        assert_eq!(t.matched, rows - LEFT_OUT);
        let (c, counts) = ceiling(&store, rows).await;
        check(&counts);
        eprintln!("pass {pass}: engine {elapsed:.2?}, ceiling {c:.2?}");
        engines.push(elapsed);
        ceilings.push(c);
    }
    let median = |v: &mut Vec<std::time::Duration>| {
        v.sort();
        v[v.len() / 2]
    };
    let (engine, ceiling) = (median(&mut engines), median(&mut ceilings));
    let rate = |d: std::time::Duration| rows as f64 / d.as_secs_f64();
    eprintln!(
        "median of {repeat}: engine {engine:.2?} ({:.0} rows/s), ceiling {ceiling:.2?} \
         ({:.0} rows/s): the engine at {:.0}% of the ceiling",
        rate(engine),
        rate(ceiling),
        100.0 * ceiling.as_secs_f64() / engine.as_secs_f64()
    );
}

/// The bill holds as many rows as the books (the left-out rows are replaced by unknown ones).
async fn bill_rows_of(store: &Store) -> u64 {
    let date = parse_bill_date(DATE).unwrap();
    let (from, to) = beijing_day_bounds(date);
    let local = store.local_day_totals(ACCOUNT, from, to).await.unwrap();
    local.payment_count as u64
}

/// A WeChat Pay APIv3 stand-in for the `download` step: `GET /v3/bill/tradebill` answers a
/// signed link to the gzipped bill, `GET /bill.gz` streams the file from disk. Plain HTTP/1.1
/// on loopback, enough for one client.
mod fake_provider {
    use std::sync::Arc;

    use paybridge_crypto::{generate_rsa_private_key_pkcs8, RsaPrivateKey};
    use paybridge_http::{ReqwestTransport, TransportConfig};
    use paybridge_reconcile::WechatV3Bills;
    use paybridge_wechatpay::v3::api::Merchant;
    use paybridge_wechatpay::v3::client::{system_clock, V3Client, V3Config};
    use paybridge_wechatpay::v3::{MerchantSigner, Verifier};
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

    const SERIAL: &str = "PUB_KEY_ID_0100000000000000000000000000";

    fn key() -> RsaPrivateKey {
        RsaPrivateKey::from_der(&generate_rsa_private_key_pkcs8().unwrap()).unwrap()
    }

    /// The SHA-1 of the bill text, read in pieces.
    fn sha1_of(path: &str) -> String {
        use std::io::Read;
        let mut f = std::fs::File::open(path).unwrap();
        let mut hash = paybridge_crypto::Sha1Stream::default();
        let mut buf = vec![0u8; 1 << 16];
        loop {
            let n = f.read(&mut buf).unwrap();
            if n == 0 {
                break;
            }
            hash.update(&buf[..n]);
        }
        hash.finish_hex()
    }

    pub async fn bills(text: &str, gz: &str) -> WechatV3Bills<Arc<ReqwestTransport>> {
        let platform = Arc::new(key());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let link = serde_json::json!({
            "hash_type": "SHA1",
            "hash_value": sha1_of(text),
            "download_url": format!("{base}/bill.gz"),
        })
        .to_string();
        let gz = gz.to_string();
        let signer = platform.clone();
        tokio::spawn(async move {
            loop {
                let (socket, _) = listener.accept().await.unwrap();
                let (link, gz, signer) = (link.clone(), gz.clone(), signer.clone());
                tokio::spawn(async move {
                    let (read, mut write) = socket.into_split();
                    let mut lines = BufReader::new(read);
                    loop {
                        let mut request_line = String::new();
                        if lines.read_line(&mut request_line).await.unwrap_or(0) == 0 {
                            return;
                        }
                        loop {
                            let mut header = String::new();
                            lines.read_line(&mut header).await.unwrap();
                            if header == "\r\n" || header.is_empty() {
                                break;
                            }
                        }
                        if request_line.contains("/v3/bill/tradebill") {
                            let ts = std::time::SystemTime::now()
                                .duration_since(std::time::UNIX_EPOCH)
                                .unwrap()
                                .as_secs() as i64;
                            let headers = paybridge_wechatpay::v3::provider::sign_response(
                                &signer,
                                SERIAL,
                                ts,
                                "nonce",
                                link.as_bytes(),
                            )
                            .unwrap();
                            let mut head = format!(
                                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n",
                                link.len()
                            );
                            for (k, v) in headers {
                                head.push_str(&format!("{k}: {v}\r\n"));
                            }
                            head.push_str("\r\n");
                            write.write_all(head.as_bytes()).await.unwrap();
                            write.write_all(link.as_bytes()).await.unwrap();
                        } else {
                            let mut file = tokio::fs::File::open(&gz).await.unwrap();
                            let len = file.metadata().await.unwrap().len();
                            let head = format!(
                                "HTTP/1.1 200 OK\r\ncontent-type: application/octet-stream\r\ncontent-length: {len}\r\n\r\n"
                            );
                            write.write_all(head.as_bytes()).await.unwrap();
                            tokio::io::copy(&mut file, &mut write).await.unwrap();
                        }
                    }
                });
            }
        });
        let mut config = V3Config::new(
            Merchant::Direct {
                mchid: "1900000001".into(),
                appid: "wx0000000000000001".into(),
            },
            b"0123456789abcdef0123456789abcdef".to_vec(),
        );
        config.base_url = base;
        config.backup_base_url = None;
        config.platform_certificates = false;
        let mut verifier = Verifier::new();
        verifier.add_public_key(SERIAL, platform.public_key().unwrap());
        let transport = Arc::new(ReqwestTransport::new(&TransportConfig::default()).unwrap());
        WechatV3Bills {
            client: V3Client::new(
                config,
                MerchantSigner::new(
                    "1900000001",
                    "5157F09EFDC096DE15EBE81A47057A7232F1B8E1",
                    key(),
                ),
                verifier,
                transport,
                system_clock(),
            ),
        }
    }
}
