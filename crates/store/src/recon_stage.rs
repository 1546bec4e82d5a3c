//! Set-based reconciliation: a run's bill rows are staged in a temporary table on one
//! connection (PostgreSQL `COPY`, SQLite large prepared batches), then matched against the
//! account's payments and refunds by a handful of statements. Only what a person needs is
//! written: the discrepancies, the few matches whose local row settled outside the run's day
//! (so a neighbouring day's run does not call them missing), and the run's counts. Rows that
//! agree, the normal case, write nothing.
//!
//! The rules (which combination of bill status, local status and amounts is which
//! discrepancy) are the caller's, handed over as a [`MatchRule`] table: the store only turns
//! them into SQL, so the one definition of the rules stays with the matcher.
//!
//! Temporary tables live in the connection's own temporary space: on SQLite writing them takes
//! no lock on the database, so the long part of a run never holds up a request's write; only
//! the final recording is one short write transaction.

use std::borrow::Cow;

use paybridge_core::{Fen, RefundStatus};
use serde_json::Value;
use sqlx::pool::PoolConnection;
use sqlx::types::Json;
use sqlx::{Postgres, Sqlite};

use crate::db::{in_list, Backend, Dialect};
use crate::error::{Result, StoreError};
use crate::reconcile::{ReconciliationRun, RunRow, RUN_COLS, SETTLED_PAYMENT};
use crate::Store;

/// One bill row to stage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BillRow {
    /// A refund row (matched by `out_trade_no` + `out_refund_no`), else a payment row.
    pub refund: bool,
    pub out_trade_no: String,
    pub out_refund_no: Option<String>,
    /// Empty when the bill has none.
    pub provider_trade_no: String,
    pub amount: Fen,
    /// `SUCCESS` (paid, refunded) or the provider's word for anything else (borrowed in the
    /// common case: a million rows need no million copies of one word).
    pub status: Cow<'static, str>,
}

/// The status a bill row has when it confirms the money moved.
pub const BILL_SUCCESS: &str = "SUCCESS";

/// One cell of the matching rules: a bill row of this kind and status, against a local row of
/// this status whose amount is (or is not) the bill's, is a `kind` discrepancy. Combinations
/// without a rule agree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MatchRule {
    pub refund: bool,
    pub bill_success: bool,
    pub amounts_equal: bool,
    /// The local payment's or refund's status (`paid`, `pending`, `succeeded`...).
    pub local_status: &'static str,
    /// `amount_mismatch`, `status_mismatch`...
    pub kind: &'static str,
    /// An active query may fix it.
    pub healable: bool,
}

/// The discrepancy kinds of rows that have no counterpart on one side.
pub const MISSING_LOCALLY: &str = "missing_locally";
pub const MISSING_AT_PROVIDER: &str = "missing_at_provider";

/// The times a run compares (unix ms): local rows settled in `[from, to)` must be in the bill
/// (`to` is the day's end, or the run's start if earlier: a bill cannot hold what settled
/// after it was fetched); a matched local row settled outside `[from, day_end)` belongs to a
/// neighbouring day and is remembered as matched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DayWindow {
    pub from: i64,
    pub to: i64,
    pub day_end: i64,
}

/// Discrepancies counted by kind, and the bill rows that found their local row.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MatchCounts {
    pub by_kind: Vec<(String, i64)>,
    pub rows_matched: i64,
}

impl MatchCounts {
    /// The counts of a match over `rows` staged bill rows: those missing here did not match.
    fn new(rows: i64, by_kind: Vec<(String, i64)>) -> MatchCounts {
        let mut counts = MatchCounts {
            rows_matched: rows,
            by_kind,
        };
        counts.rows_matched -= counts.of(MISSING_LOCALLY);
        counts
    }

    pub fn of(&self, kind: &str) -> i64 {
        self.by_kind
            .iter()
            .find(|(k, _)| k == kind)
            .map_or(0, |(_, n)| *n)
    }
}

/// What the run records with its discrepancies, in the same transaction.
#[derive(Debug, Clone, PartialEq)]
pub struct RunMatched<'a> {
    pub rows_read: i64,
    pub bill_sha256: Option<&'a str>,
    /// The run's totals as far as they are known now (healing adds to them).
    pub totals: &'a Value,
}

enum StageConn {
    Sqlite(PoolConnection<Sqlite>),
    Postgres(PoolConnection<Postgres>),
}

/// Runs `$body` with `$conn` bound to the stage's concrete connection and `$d` to its dialect.
macro_rules! with_conn {
    ($stage:expr, |$conn:ident, $d:ident| $body:expr) => {
        match &mut $stage.conn {
            StageConn::Sqlite(c) => {
                #[allow(unused_variables)]
                let $d = Dialect::Sqlite;
                let $conn: &mut sqlx::SqliteConnection = &mut *c;
                $body
            }
            StageConn::Postgres(c) => {
                #[allow(unused_variables)]
                let $d = Dialect::Postgres;
                let $conn: &mut sqlx::PgConnection = &mut *c;
                $body
            }
        }
    };
}

/// SQLite rows per INSERT: 7 values each, far below its 32766 bound parameters, large enough
/// that statement overhead vanishes.
const SQLITE_ROWS_PER_INSERT: usize = 500;
const STAGE_COLS: &str =
    "seq, refund, out_trade_no, out_refund_no, provider_trade_no, amount, status";
const OUT_COLS: &str = "seq, kind, entity, out_trade_no, out_refund_no, payment_id, refund_id, \
    provider_trade_no, bill_amount, local_amount, bill_status, local_status, healable, local_id, \
    local_at";

/// The stage's session on PostgreSQL: memory for the matching statements' hash joins (per
/// hash, on the server; the default 4 MB spills a day of payments to disk in 8-16 batches),
/// and no JIT (compiling the rules' CASE expressions cost more than it saved). Reset by close().
const PG_SETTINGS: [&str; 2] = ["SET work_mem = '128MB'", "SET jit = off"];

/// A run's bill, staged on one connection of the pool (held until [`BillStage::close`] or
/// drop).
pub struct BillStage {
    conn: StageConn,
    account: String,
    rows: i64,
    /// Rows `[0, joined)` have been through the bill side's join already.
    joined: i64,
    /// Set by [`BillStage::match_while_loading`]: the bill side's statement and window.
    eager: Option<(String, DayWindow)>,
}

fn safe_word(w: &str) -> Result<&str> {
    if !w.is_empty() && w.bytes().all(|b| b.is_ascii_lowercase() || b == b'_') {
        Ok(w)
    } else {
        Err(StoreError::Invalid(format!("matching rule word {w:?}")))
    }
}

/// `CASE` arms for one side (`refund`): grouped by outcome, the local statuses as an `IN`
/// list, the amount comparison only where the rules tell equal and unequal amounts apart.
fn arms(
    rules: &[MatchRule],
    refund: bool,
    local: &str,
    then: impl Fn(&MatchRule) -> Option<String>,
) -> Result<String> {
    let mut groups: Vec<(bool, String, Vec<&str>, Vec<&str>)> = Vec::new();
    for r in rules.iter().filter(|r| r.refund == refund) {
        let Some(out) = then(r) else { continue };
        safe_word(r.local_status)?;
        let i = match groups
            .iter()
            .position(|(s, o, _, _)| *s == r.bill_success && *o == out)
        {
            Some(i) => i,
            None => {
                groups.push((r.bill_success, out, Vec::new(), Vec::new()));
                groups.len() - 1
            }
        };
        let g = &mut groups[i];
        if r.amounts_equal {
            g.2.push(r.local_status);
        } else {
            g.3.push(r.local_status);
        }
    }
    let mut sql = String::new();
    for (success, out, mut equal, mut unequal) in groups {
        equal.sort_unstable();
        unequal.sort_unstable();
        let bill = if success {
            format!("b.status = '{BILL_SUCCESS}'")
        } else {
            format!("b.status <> '{BILL_SUCCESS}'")
        };
        let list = |v: &[&'static str]| in_list(v.iter().copied());
        let mut when = |amount: &str, statuses: &[&'static str]| {
            if !statuses.is_empty() {
                sql.push_str(&format!(
                    " WHEN {bill}{amount} AND {local}.status IN ({}) THEN {out}",
                    list(statuses)
                ));
            }
        };
        if equal == unequal {
            when("", &equal);
        } else {
            when(&format!(" AND b.amount = {local}.amount"), &equal);
            when(&format!(" AND b.amount <> {local}.amount"), &unequal);
        }
    }
    Ok(sql)
}

/// The discrepancy kind of a joined bill row (`p`: its payment, `r`: its refund), `NULL` when
/// it agrees.
fn kind_case(rules: &[MatchRule]) -> Result<String> {
    let then = |r: &MatchRule| safe_word(r.kind).ok().map(|k| format!("'{k}'"));
    for r in rules {
        safe_word(r.kind)?;
    }
    Ok(format!(
        "CASE WHEN b.refund = 0 THEN (CASE WHEN p.id IS NULL THEN '{MISSING_LOCALLY}'{} END) \
         ELSE (CASE WHEN r.id IS NULL THEN '{MISSING_LOCALLY}'{} END) END",
        arms(rules, false, "p", then)?,
        arms(rules, true, "r", then)?
    ))
}

fn healable_case(rules: &[MatchRule]) -> Result<String> {
    let then = |r: &MatchRule| r.healable.then(|| "TRUE".to_string());
    // `CASE ELSE FALSE END` is not SQL: a side without healable rules is plain FALSE.
    let side = |arms: String| {
        if arms.is_empty() {
            "FALSE".to_string()
        } else {
            format!("(CASE{arms} ELSE FALSE END)")
        }
    };
    Ok(format!(
        "CASE WHEN b.refund = 0 AND p.id IS NOT NULL THEN {} \
         WHEN b.refund = 1 AND r.id IS NOT NULL THEN {} ELSE FALSE END",
        side(arms(rules, false, "p", then)?),
        side(arms(rules, true, "r", then)?)
    ))
}

/// The join every bill row goes through: its payment (a refund row's too: the refund is
/// looked up under it), and for refund rows the refund.
const BILL_JOIN: &str = "FROM recon_bill b \
    LEFT JOIN payments p ON p.account = $1 AND p.out_trade_no = b.out_trade_no \
    LEFT JOIN refunds r ON b.refund = 1 AND r.payment_id = p.id \
      AND r.out_refund_no = b.out_refund_no";

/// The bill side of the matching, for the staged rows with `$4 <= seq < $5` (`$1` account,
/// `[$2, $3)` the day): every row with a discrepancy, and every matched row whose local row
/// settled outside the day, into `recon_out`.
fn bill_side_sql(rules: &[MatchRule]) -> Result<String> {
    Ok(format!(
            "INSERT INTO recon_out ({OUT_COLS}) SELECT {OUT_COLS} FROM (SELECT b.seq, \
             {kind} AS kind, CASE WHEN b.refund = 1 THEN 'refund' ELSE 'payment' END AS entity, \
             b.out_trade_no, b.out_refund_no, \
             CASE WHEN b.refund = 1 THEN r.payment_id ELSE p.id END AS payment_id, \
             r.id AS refund_id, NULLIF(b.provider_trade_no, '') AS provider_trade_no, \
             b.amount AS bill_amount, \
             CASE WHEN b.refund = 1 THEN r.amount ELSE p.amount END AS local_amount, \
             b.status AS bill_status, \
             CASE WHEN b.refund = 1 THEN r.status ELSE p.status END AS local_status, \
             {healable} AS healable, \
             CASE WHEN b.refund = 1 THEN r.id ELSE p.id END AS local_id, \
             CASE WHEN b.refund = 1 THEN r.succeeded_at ELSE p.paid_at END AS local_at \
             {BILL_JOIN} WHERE b.seq >= $4 AND b.seq < $5) x \
             WHERE kind IS NOT NULL OR (local_at IS NOT NULL AND (local_at < $2 OR local_at >= $3))",
        kind = kind_case(rules)?,
        healable = healable_case(rules)?,
    ))
}

/// Settled local payments (`$1` account, `[$2, $3)`) that no bill row names and no run matched
/// on a neighbouring day; `cols` is the select list.
fn missing_payments(cols: &str) -> String {
    format!(
        "SELECT {cols} FROM payments p WHERE p.account = $1 AND p.paid_at >= $2 \
         AND p.paid_at < $3 AND p.status IN ({}) \
         AND NOT EXISTS (SELECT 1 FROM recon_bill b WHERE b.refund = 0 \
           AND b.out_trade_no = p.out_trade_no) \
         AND NOT EXISTS (SELECT 1 FROM reconciliation_matches m WHERE m.entity_id = p.id)",
        in_list(SETTLED_PAYMENT.iter().map(|s| s.as_str()))
    )
}

fn missing_refunds(cols: &str) -> String {
    format!(
        "SELECT {cols} FROM refunds r JOIN payments rp ON rp.id = r.payment_id \
         WHERE r.account = $1 AND r.succeeded_at >= $2 AND r.succeeded_at < $3 \
         AND r.status = '{}' \
         AND NOT EXISTS (SELECT 1 FROM recon_bill b WHERE b.refund = 1 \
           AND b.out_trade_no = rp.out_trade_no AND b.out_refund_no = r.out_refund_no) \
         AND NOT EXISTS (SELECT 1 FROM reconciliation_matches m WHERE m.entity_id = r.id)",
        RefundStatus::Succeeded.as_str()
    )
}

/// One field of PostgreSQL's `COPY` text format.
fn copy_field(out: &mut Vec<u8>, s: &str) {
    if !s
        .bytes()
        .any(|b| matches!(b, b'\\' | b'\t' | b'\n' | b'\r'))
    {
        out.extend_from_slice(s.as_bytes());
        return;
    }
    for b in s.bytes() {
        match b {
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\t' => out.extend_from_slice(b"\\t"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            _ => out.push(b),
        }
    }
}

impl Store {
    /// Opens a stage for one account's bill: a connection of its own with empty temporary
    /// tables.
    pub async fn stage_bill(&self, account: &str) -> Result<BillStage> {
        let conn = match self.backend() {
            Backend::Sqlite(p) => StageConn::Sqlite(p.acquire().await?),
            Backend::Postgres(p) => StageConn::Postgres(p.acquire().await?),
        };
        let mut stage = BillStage {
            conn,
            account: account.to_string(),
            rows: 0,
            joined: 0,
            eager: None,
        };
        stage.create_tables().await?;
        Ok(stage)
    }
}

impl BillStage {
    async fn create_tables(&mut self) -> Result<()> {
        // A connection given back by an interrupted run may still hold its tables.
        // SQLite keys the rows by seq (its rowid: appending is free, and a batch's range is a
        // range scan, see match_while_loading); PostgreSQL's COPY is fastest into a bare heap.
        let seq = match self.conn {
            StageConn::Sqlite(_) => "seq INTEGER PRIMARY KEY",
            StageConn::Postgres(_) => "seq BIGINT NOT NULL",
        };
        let statements = [
            "DROP TABLE IF EXISTS recon_bill".to_string(),
            "DROP TABLE IF EXISTS recon_out".to_string(),
            format!(
                "CREATE TEMP TABLE recon_bill ({seq}, refund SMALLINT NOT NULL, \
                 out_trade_no TEXT NOT NULL, out_refund_no TEXT, provider_trade_no TEXT NOT NULL, \
                 amount BIGINT NOT NULL, status TEXT NOT NULL)"
            ),
            "CREATE TEMP TABLE recon_out (seq BIGINT, kind TEXT, entity TEXT NOT NULL, \
             out_trade_no TEXT NOT NULL, out_refund_no TEXT, payment_id TEXT, refund_id TEXT, \
             provider_trade_no TEXT, bill_amount BIGINT, local_amount BIGINT, bill_status TEXT, \
             local_status TEXT, healable BOOLEAN NOT NULL, local_id TEXT, local_at BIGINT)"
                .to_string(),
        ];
        with_conn!(self, |conn, d| {
            if d == Dialect::Sqlite {
                // The bundled SQLite keeps temporary tables in memory by default: a million
                // staged rows would be ~80 MB of heap. On disk (the OS caches it) memory stays
                // at SQLite's page cache. Switching drops the connection's temporary tables,
                // which the statements below do anyway.
                sqlx::query("PRAGMA temp_store = FILE")
                    .persistent(false)
                    .execute(&mut *conn)
                    .await?;
            }
            for s in &statements {
                sqlx::query(s).persistent(false).execute(&mut *conn).await?;
            }
            if d == Dialect::Postgres {
                // The joins hash a whole day of payments (and of bill rows): with the default
                // 4 MB they spill to disk in 8-16 batches. Reset by close().
                for set in PG_SETTINGS {
                    sqlx::query(set)
                        .persistent(false)
                        .execute(&mut *conn)
                        .await?;
                }
            }
        });
        Ok(())
    }

    /// Bill rows staged so far.
    pub fn rows(&self) -> i64 {
        self.rows
    }

    /// Appends rows, in bill order (PostgreSQL: one `COPY`; SQLite: one transaction of
    /// multi-row inserts into the temporary table, which locks nothing else).
    pub async fn load(&mut self, rows: &[BillRow]) -> Result<()> {
        if rows.is_empty() {
            return Ok(());
        }
        let first = self.rows;
        match &mut self.conn {
            StageConn::Postgres(conn) => {
                let mut buf = Vec::with_capacity(rows.len() * 96);
                for (i, r) in rows.iter().enumerate() {
                    let seq = first + i as i64;
                    buf.extend_from_slice(format!("{seq}\t{}\t", u8::from(r.refund)).as_bytes());
                    copy_field(&mut buf, &r.out_trade_no);
                    buf.push(b'\t');
                    match &r.out_refund_no {
                        Some(no) => copy_field(&mut buf, no),
                        None => buf.extend_from_slice(b"\\N"),
                    }
                    buf.push(b'\t');
                    copy_field(&mut buf, &r.provider_trade_no);
                    buf.extend_from_slice(format!("\t{}\t", r.amount.0).as_bytes());
                    copy_field(&mut buf, &r.status);
                    buf.push(b'\n');
                }
                let mut copy = conn
                    .copy_in_raw(&format!("COPY recon_bill ({STAGE_COLS}) FROM STDIN"))
                    .await?;
                match copy.send(buf).await {
                    Ok(_) => {
                        copy.finish().await?;
                    }
                    Err(e) => {
                        copy.abort(e.to_string()).await?;
                        return Err(e.into());
                    }
                }
            }
            StageConn::Sqlite(conn) => {
                let mut tx = sqlx::Connection::begin(&mut **conn).await?;
                for (c, chunk) in rows.chunks(SQLITE_ROWS_PER_INSERT).enumerate() {
                    // Anonymous `?` parameters: SQLite looks a named one (`$n`) up by a linear
                    // scan at bind time, which made 3500-parameter inserts quadratic.
                    let values = vec!["(?, ?, ?, ?, ?, ?, ?)"; chunk.len()];
                    let sql = format!(
                        "INSERT INTO recon_bill ({STAGE_COLS}) VALUES {}",
                        values.join(", ")
                    );
                    let mut q = sqlx::query(&sql);
                    for (i, r) in chunk.iter().enumerate() {
                        let seq = first + (c * SQLITE_ROWS_PER_INSERT + i) as i64;
                        q = q
                            .bind(seq)
                            .bind(i16::from(r.refund))
                            // Borrowed `&str`s: binding a `&String` copies it.
                            .bind(r.out_trade_no.as_str())
                            .bind(r.out_refund_no.as_deref())
                            .bind(r.provider_trade_no.as_str())
                            .bind(r.amount.0)
                            .bind(r.status.as_ref());
                    }
                    q.execute(&mut *tx).await?;
                }
                tx.commit().await?;
            }
        }
        self.rows += rows.len() as i64;
        if let Some((sql, window)) = self.eager.take() {
            let result = self.join_bill_side(&sql, window).await;
            self.eager = Some((sql, window));
            result?;
        }
        Ok(())
    }

    /// SQLite: join each batch's rows as it is loaded, while the parser reads the next one,
    /// instead of all of them after the last. Its joins are index lookups either way, so the
    /// work is the same and overlaps the parse; PostgreSQL keeps one hash join after the load
    /// (a hash of the day's payments per batch would cost more than it saves).
    pub fn match_while_loading(&mut self, rules: &[MatchRule], window: DayWindow) -> Result<()> {
        if matches!(self.conn, StageConn::Sqlite(_)) {
            self.eager = Some((bill_side_sql(rules)?, window));
        }
        Ok(())
    }

    /// Runs the bill side's join over the rows not joined yet.
    async fn join_bill_side(&mut self, sql: &str, window: DayWindow) -> Result<()> {
        let (from, to) = (self.joined, self.rows);
        if from == to {
            return Ok(());
        }
        let account = self.account.clone();
        with_conn!(self, |conn, d| {
            sqlx::query(sql)
                .persistent(false)
                .bind(&account)
                .bind(window.from)
                .bind(window.day_end)
                .bind(from)
                .bind(to)
                .execute(&mut *conn)
                .await?;
        });
        self.joined = to;
        Ok(())
    }

    /// After the last [`BillStage::load`]: what the planner needs to join the staged rows
    /// well (PostgreSQL: statistics, never gathered on temporary tables by autovacuum; SQLite:
    /// an index for the "missing at the provider" probes).
    pub async fn loaded(&mut self) -> Result<()> {
        let sql = match &self.conn {
            StageConn::Postgres(_) => "ANALYZE recon_bill",
            StageConn::Sqlite(_) => {
                "CREATE INDEX recon_bill_out ON recon_bill (out_trade_no, refund)"
            }
        };
        with_conn!(self, |conn, d| {
            sqlx::query(sql)
                .persistent(false)
                .execute(&mut *conn)
                .await?;
        });
        Ok(())
    }

    /// Matches the staged bill against the local books (one join for the bill's side, one
    /// anti-join each for payments and refunds missing from it) into the stage's result
    /// table; nothing is written to the database's own tables yet.
    pub async fn find_discrepancies(
        &mut self,
        rules: &[MatchRule],
        window: DayWindow,
    ) -> Result<MatchCounts> {
        let payments = format!(
            "INSERT INTO recon_out ({OUT_COLS}) {}",
            missing_payments(&format!(
                "NULL, '{MISSING_AT_PROVIDER}', 'payment', p.out_trade_no, NULL, p.id, NULL, \
                 p.provider_trade_no, NULL, p.amount, NULL, p.status, FALSE, p.id, p.paid_at"
            ))
        );
        let refunds = format!(
            "INSERT INTO recon_out ({OUT_COLS}) {}",
            missing_refunds(&format!(
                "NULL, '{MISSING_AT_PROVIDER}', 'refund', rp.out_trade_no, r.out_refund_no, \
                 r.payment_id, r.id, NULL, NULL, r.amount, NULL, r.status, FALSE, r.id, \
                 r.succeeded_at"
            ))
        );
        let count = "SELECT kind, COUNT(*) FROM recon_out WHERE kind IS NOT NULL \
                     GROUP BY kind ORDER BY kind";
        self.join_bill_side(&bill_side_sql(rules)?, window).await?;
        let account = self.account.clone();
        let by_kind: Vec<(String, i64)> = with_conn!(self, |conn, d| {
            for sql in [&payments, &refunds] {
                sqlx::query(sql)
                    .persistent(false)
                    .bind(&account)
                    .bind(window.from)
                    .bind(window.to)
                    .execute(&mut *conn)
                    .await?;
            }
            sqlx::query_as(count)
                .persistent(false)
                .fetch_all(&mut *conn)
                .await?
        });
        Ok(MatchCounts::new(self.rows, by_kind))
    }

    /// Records what [`BillStage::find_discrepancies`] found, in one short transaction: the
    /// discrepancies (resolution `open`; ids ordered as recorded: bill rows in bill order, then
    /// local rows by id), the matches of local rows settled outside the day, and the run's
    /// counts, digest and `matched_at`. Returns the run as recorded.
    pub async fn record(
        &mut self,
        store: &Store,
        run: &ReconciliationRun,
        window: DayWindow,
        counts: &MatchCounts,
        matched: RunMatched<'_>,
    ) -> Result<ReconciliationRun> {
        let now = store.now_ms();
        let hex = run.id.trim_start_matches("rec_").to_string();
        let insert_matches = "INSERT INTO reconciliation_matches (entity_id, run_id) \
             SELECT local_id, $1 FROM recon_out WHERE seq IS NOT NULL AND local_at IS NOT NULL \
             AND (local_at < $2 OR local_at >= $3) ON CONFLICT DO NOTHING";
        let update = format!(
            "UPDATE reconciliation_runs SET rows_read = $1, rows_matched = $2, bill_sha256 = $3, \
             totals = $4, matched_at = $5, updated_at = $5 WHERE id = $6 RETURNING {RUN_COLS}"
        );
        let row: RunRow = with_conn!(self, |conn, d| {
            let pad = match d {
                Dialect::Sqlite => "printf('%012d', seq)",
                Dialect::Postgres => "lpad(seq::text, 12, '0')",
            };
            let insert_discrepancies = format!(
                "INSERT INTO reconciliation_discrepancies ({}) SELECT \
                 'dsc_' || $1 || '_' || CASE WHEN seq IS NULL THEN 'z' || local_id \
                 ELSE 'b' || {pad} END, $2, $3, $4, kind, entity, out_trade_no, out_refund_no, \
                 payment_id, refund_id, provider_trade_no, bill_amount, local_amount, \
                 bill_status, local_status, healable, 'open', NULL, $5, $5 \
                 FROM recon_out WHERE kind IS NOT NULL",
                crate::reconcile::DISCREPANCY_COLS
            );
            let mut tx = sqlx::Connection::begin_with(&mut *conn, d.begin_sql()).await?;
            sqlx::query(&insert_discrepancies)
                .persistent(false)
                .bind(&hex)
                .bind(&run.id)
                .bind(&run.account)
                .bind(&run.bill_date)
                .bind(now)
                .execute(&mut *tx)
                .await?;
            sqlx::query(insert_matches)
                .persistent(false)
                .bind(&run.id)
                .bind(window.from)
                .bind(window.day_end)
                .execute(&mut *tx)
                .await?;
            let row = sqlx::query_as(&update)
                .bind(matched.rows_read)
                .bind(counts.rows_matched)
                .bind(matched.bill_sha256)
                .bind(Json(matched.totals))
                .bind(now)
                .bind(&run.id)
                .fetch_one(&mut *tx)
                .await?;
            tx.commit().await?;
            row
        });
        Ok(row.into())
    }

    /// The yardstick of the benchmark: the same matching as one read-only statement over the
    /// staged rows (the bill's side joined, both anti-joins), discrepancies counted by kind.
    pub async fn count_discrepancies(
        &mut self,
        rules: &[MatchRule],
        window: DayWindow,
    ) -> Result<MatchCounts> {
        let sql = format!(
            "SELECT kind, COUNT(*) FROM (SELECT {kind} AS kind {BILL_JOIN} \
             UNION ALL {} UNION ALL {}) x WHERE kind IS NOT NULL GROUP BY kind ORDER BY kind",
            missing_payments(&format!("'{MISSING_AT_PROVIDER}' AS kind")),
            missing_refunds(&format!("'{MISSING_AT_PROVIDER}' AS kind")),
            kind = kind_case(rules)?,
        );
        // The bill side's window bounds are the anti-joins' ($2, $3) here: the statement only
        // counts, it has no use for the neighbouring-day matches.
        let account = self.account.clone();
        let by_kind: Vec<(String, i64)> = with_conn!(self, |conn, d| {
            sqlx::query_as(&sql)
                .persistent(false)
                .bind(&account)
                .bind(window.from)
                .bind(window.to)
                .fetch_all(&mut *conn)
                .await?
        });
        Ok(MatchCounts::new(self.rows, by_kind))
    }

    /// Drops the temporary tables and gives the connection back.
    pub async fn close(mut self) -> Result<()> {
        with_conn!(self, |conn, d| {
            for s in [
                "DROP TABLE IF EXISTS recon_bill",
                "DROP TABLE IF EXISTS recon_out",
            ] {
                sqlx::query(s).persistent(false).execute(&mut *conn).await?;
            }
        });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn rules_become_grouped_arms() {
        let rule = |amounts_equal, local_status, kind| MatchRule {
            refund: false,
            bill_success: true,
            amounts_equal,
            local_status,
            kind,
            healable: false,
        };
        let rules = vec![
            rule(false, "paid", "amount_mismatch"),
            rule(false, "pending", "amount_mismatch"),
            rule(true, "pending", "status_mismatch"),
        ];
        let sql = arms(&rules, false, "p", |r| Some(format!("'{}'", r.kind))).unwrap();
        assert_eq!(
            sql,
            " WHEN b.status = 'SUCCESS' AND b.amount <> p.amount AND p.status IN ('paid', \
             'pending') THEN 'amount_mismatch' WHEN b.status = 'SUCCESS' AND b.amount = p.amount \
             AND p.status IN ('pending') THEN 'status_mismatch'"
        );
        let bad = vec![rule(true, "paid'; --", "status_mismatch")];
        assert!(kind_case(&bad).is_err());
    }
}
