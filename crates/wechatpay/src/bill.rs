//! WeChat Pay bill files (APIv2 `downloadbill`, APIv3 trade and fund-flow bills): a UTF-8 text
//! table with a BOM and CRLF line ends; a header of column names, then records whose every value
//! is prefixed with a back-quote (to stop spreadsheets mangling long numbers), then a summary
//! header and one summary record. Amounts are yuan decimals of varying precision.
//!
//! [`BillReader`] streams records from any `BufRead`, so a month of bills never sits in memory.

use std::io::BufRead;
use std::sync::Arc;

use paybridge_core::Fen;

#[derive(Debug, thiserror::Error)]
pub enum BillError {
    #[error("bill read failed: {0}")]
    Io(#[from] std::io::Error),
    #[error("bill line {line} is not UTF-8")]
    Utf8 { line: usize },
    #[error("bill has no header line")]
    NoHeader,
    #[error("bill line {line}: {found} values for {expected} columns")]
    Width {
        line: usize,
        expected: usize,
        found: usize,
    },
    #[error("bill line {line}: column {column}: {value:?} is not a yuan amount in whole fen")]
    Amount {
        line: usize,
        column: String,
        value: String,
    },
    #[error("bill line {line}: unexpected content after the summary")]
    Trailing { line: usize },
}

/// One record (or the summary), values already stripped of their back-quotes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BillRow {
    pub line: usize,
    columns: Arc<[String]>,
    pub values: Vec<String>,
}

impl BillRow {
    pub fn columns(&self) -> &[String] {
        &self.columns
    }

    pub fn get(&self, column: &str) -> Option<&str> {
        let i = self.columns.iter().position(|c| c == column)?;
        self.values.get(i).map(String::as_str)
    }

    /// A yuan amount column as fen; `None` when the column is absent or empty.
    pub fn amount(&self, column: &str) -> Result<Option<Fen>, BillError> {
        match self.get(column) {
            None | Some("") => Ok(None),
            Some(v) => parse_bill_amount(v)
                .map(Some)
                .ok_or_else(|| BillError::Amount {
                    line: self.line,
                    column: column.to_string(),
                    value: v.to_string(),
                }),
        }
    }

    pub fn pairs(&self) -> impl Iterator<Item = (&str, &str)> {
        self.columns
            .iter()
            .map(String::as_str)
            .zip(self.values.iter().map(String::as_str))
    }
}

/// A trade-bill record with typed money (columns of the `ALL`/`SUCCESS`/`REFUND` bills; a
/// column the bill type lacks is `None`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TradeBillRecord {
    pub trade_time: Option<String>,
    pub appid: Option<String>,
    pub mch_id: Option<String>,
    pub sub_mch_id: Option<String>,
    pub transaction_id: Option<String>,
    pub out_trade_no: Option<String>,
    pub openid: Option<String>,
    pub trade_type: Option<String>,
    pub trade_state: Option<String>,
    /// 应结订单金额: order amount minus non-settled coupons.
    pub settlement_total: Option<Fen>,
    pub coupon_fee: Option<Fen>,
    pub refund_id: Option<String>,
    pub out_refund_no: Option<String>,
    pub refund_fee: Option<Fen>,
    pub coupon_refund_fee: Option<Fen>,
    pub refund_status: Option<String>,
    pub body: Option<String>,
    pub attach: Option<String>,
    /// 手续费
    pub service_fee: Option<Fen>,
    pub rate: Option<String>,
    /// 订单金额
    pub order_total: Option<Fen>,
    /// 申请退款金额
    pub applied_refund: Option<Fen>,
}

impl TradeBillRecord {
    /// One row, its columns looked up by name (see [`TradeBillLayout`] for many rows).
    pub fn from_row(row: &BillRow) -> Result<TradeBillRecord, BillError> {
        TradeBillLayout::new(row.columns()).record(row)
    }
}

/// Where each trade-bill column sits in a bill's header: looked up once per bill, not once per
/// row and column (a million-row bill spent most of its parse comparing column names).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TradeBillLayout {
    trade_time: Option<usize>,
    appid: Option<usize>,
    mch_id: Option<usize>,
    sub_mch_id: Option<usize>,
    sub_mch_id_alt: Option<usize>,
    transaction_id: Option<usize>,
    out_trade_no: Option<usize>,
    openid: Option<usize>,
    trade_type: Option<usize>,
    trade_state: Option<usize>,
    settlement_total: Option<usize>,
    coupon_fee: Option<usize>,
    refund_id: Option<usize>,
    out_refund_no: Option<usize>,
    refund_fee: Option<usize>,
    coupon_refund_fee: Option<usize>,
    refund_status: Option<usize>,
    body: Option<usize>,
    attach: Option<usize>,
    service_fee: Option<usize>,
    rate: Option<usize>,
    order_total: Option<usize>,
    applied_refund: Option<usize>,
}

impl TradeBillLayout {
    pub fn new(columns: &[String]) -> TradeBillLayout {
        let at = |name: &str| columns.iter().position(|c| c == name);
        TradeBillLayout {
            trade_time: at("交易时间"),
            appid: at("公众账号ID"),
            mch_id: at("商户号"),
            sub_mch_id: at("特约商户号"),
            sub_mch_id_alt: at("子商户号"),
            transaction_id: at("微信订单号"),
            out_trade_no: at("商户订单号"),
            openid: at("用户标识"),
            trade_type: at("交易类型"),
            trade_state: at("交易状态"),
            settlement_total: at("应结订单金额"),
            coupon_fee: at("代金券金额"),
            refund_id: at("微信退款单号"),
            out_refund_no: at("商户退款单号"),
            refund_fee: at("退款金额"),
            coupon_refund_fee: at("充值券退款金额"),
            refund_status: at("退款状态"),
            body: at("商品名称"),
            attach: at("商户数据包"),
            service_fee: at("手续费"),
            rate: at("费率"),
            order_total: at("订单金额"),
            applied_refund: at("申请退款金额"),
        }
    }

    /// The record of a row read under this layout's header.
    pub fn record(&self, row: &BillRow) -> Result<TradeBillRecord, BillError> {
        self.take_record(row.clone())
    }

    /// [`TradeBillLayout::record`], moving the row's texts into the record instead of copying
    /// them.
    pub fn take_record(&self, row: BillRow) -> Result<TradeBillRecord, BillError> {
        let line = row.line;
        let mut values = row.values;
        let amount = |values: &[String], i: Option<usize>, column: &str| match i
            .and_then(|i| values.get(i))
            .map(String::as_str)
        {
            None | Some("") => Ok(None),
            Some(v) => parse_bill_amount(v)
                .map(Some)
                .ok_or_else(|| BillError::Amount {
                    line,
                    column: column.into(),
                    value: v.to_string(),
                }),
        };
        let settlement_total = amount(&values, self.settlement_total, "应结订单金额")?;
        let coupon_fee = amount(&values, self.coupon_fee, "代金券金额")?;
        let refund_fee = amount(&values, self.refund_fee, "退款金额")?;
        let coupon_refund_fee = amount(&values, self.coupon_refund_fee, "充值券退款金额")?;
        let service_fee = amount(&values, self.service_fee, "手续费")?;
        let order_total = amount(&values, self.order_total, "订单金额")?;
        let applied_refund = amount(&values, self.applied_refund, "申请退款金额")?;
        let mut text = |i: Option<usize>| {
            i.and_then(|i| values.get_mut(i))
                .map(std::mem::take)
                .filter(|v| !v.is_empty())
        };
        Ok(TradeBillRecord {
            trade_time: text(self.trade_time),
            appid: text(self.appid),
            mch_id: text(self.mch_id),
            sub_mch_id: text(self.sub_mch_id).or_else(|| text(self.sub_mch_id_alt)),
            transaction_id: text(self.transaction_id),
            out_trade_no: text(self.out_trade_no),
            openid: text(self.openid),
            trade_type: text(self.trade_type),
            trade_state: text(self.trade_state),
            settlement_total,
            coupon_fee,
            refund_id: text(self.refund_id),
            out_refund_no: text(self.out_refund_no),
            refund_fee,
            coupon_refund_fee,
            refund_status: text(self.refund_status),
            body: text(self.body),
            attach: text(self.attach),
            service_fee,
            rate: text(self.rate),
            order_total,
            applied_refund,
        })
    }
}

/// The summary record of a trade bill (总交易单数 and the totals), typed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TradeBillSummary {
    pub trade_count: Option<u64>,
    /// 应结订单总金额
    pub settlement_total: Option<Fen>,
    /// 退款总金额
    pub refund_total: Option<Fen>,
    /// 充值券退款总金额
    pub coupon_refund_total: Option<Fen>,
    /// 手续费总金额
    pub service_fee_total: Option<Fen>,
    /// 订单总金额
    pub order_total: Option<Fen>,
    /// 申请退款总金额
    pub applied_refund_total: Option<Fen>,
}

impl TradeBillSummary {
    pub fn from_row(row: &BillRow) -> Result<TradeBillSummary, BillError> {
        let trade_count = match row.get("总交易单数") {
            None | Some("") => None,
            Some(v) => Some(parse_bill_count(v).ok_or_else(|| BillError::Amount {
                line: row.line,
                column: "总交易单数".into(),
                value: v.to_string(),
            })?),
        };
        Ok(TradeBillSummary {
            trade_count,
            settlement_total: row.amount("应结订单总金额")?,
            refund_total: row.amount("退款总金额")?,
            coupon_refund_total: row.amount("充值券退款总金额")?,
            service_fee_total: row.amount("手续费总金额")?,
            order_total: row.amount("订单总金额")?,
            applied_refund_total: row.amount("申请退款总金额")?,
        })
    }
}

/// Parses a bill amount exactly: yuan with any number of decimals, provided nothing finer than
/// a fen is non-zero ("0.01000" is 1 fen; "0.005" is refused rather than rounded).
pub fn parse_bill_amount(s: &str) -> Option<Fen> {
    let (neg, body) = match s.trim().strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, s.trim()),
    };
    let (int_part, frac) = body.split_once('.').unwrap_or((body, ""));
    if int_part.is_empty() || int_part.len() > 15 || !int_part.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if !frac.bytes().all(|b| b.is_ascii_digit()) || (body.contains('.') && frac.is_empty()) {
        return None;
    }
    let (fen_digits, rest) = frac.split_at(frac.len().min(2));
    if rest.bytes().any(|b| b != b'0') {
        return None;
    }
    let mut fen: i64 = 0;
    for (i, b) in fen_digits.bytes().enumerate() {
        let d = i64::from(b - b'0');
        fen += if i == 0 { d * 10 } else { d };
    }
    let int: i64 = int_part.parse().ok()?;
    let total = int.checked_mul(100)?.checked_add(fen)?;
    Some(Fen(if neg { -total } else { total }))
}

/// Parses a count written as a decimal ("45.0" in summaries).
pub fn parse_bill_count(s: &str) -> Option<u64> {
    let (int_part, frac) = s.trim().split_once('.').unwrap_or((s.trim(), ""));
    if !frac.bytes().all(|b| b == b'0') {
        return None;
    }
    int_part.parse().ok()
}

/// Streams records; after the iterator ends, [`BillReader::summary`] holds the summary record.
pub struct BillReader<R: BufRead> {
    input: R,
    line_no: usize,
    columns: Arc<[String]>,
    summary: Option<BillRow>,
    done: bool,
    buf: Vec<u8>,
}

impl<R: BufRead> BillReader<R> {
    pub fn new(mut input: R) -> Result<Self, BillError> {
        let mut buf = Vec::new();
        if input.read_until(b'\n', &mut buf)? == 0 {
            return Err(BillError::NoHeader);
        }
        let header = decode_line(&buf, 1)?;
        let header = header.strip_prefix('\u{feff}').unwrap_or(header);
        if header.is_empty() {
            return Err(BillError::NoHeader);
        }
        let columns: Arc<[String]> = header
            .split(',')
            .map(|c| c.trim_start_matches('`').to_string())
            .collect();
        Ok(BillReader {
            input,
            line_no: 1,
            columns,
            summary: None,
            done: false,
            buf,
        })
    }

    pub fn columns(&self) -> &[String] {
        &self.columns
    }

    pub fn summary(&self) -> Option<&BillRow> {
        self.summary.as_ref()
    }

    /// Reads the next non-empty line into `self.buf`; `false` at the end.
    fn read_line(&mut self) -> Result<bool, BillError> {
        loop {
            self.buf.clear();
            if self.input.read_until(b'\n', &mut self.buf)? == 0 {
                return Ok(false);
            }
            self.line_no += 1;
            if !decode_line(&self.buf, self.line_no)?.is_empty() {
                return Ok(true);
            }
        }
    }

    fn next_inner(&mut self) -> Result<Option<BillRow>, BillError> {
        if !self.read_line()? {
            return Ok(None);
        }
        let line = decode_line(&self.buf, self.line_no)?;
        if line.starts_with('`') {
            let values = split_record(line);
            if values.len() != self.columns.len() {
                return Err(BillError::Width {
                    line: self.line_no,
                    expected: self.columns.len(),
                    found: values.len(),
                });
            }
            return Ok(Some(BillRow {
                line: self.line_no,
                columns: self.columns.clone(),
                values,
            }));
        }
        // A line without the back-quote after the records is the summary header.
        let columns: Arc<[String]> = line.split(',').map(str::to_string).collect();
        if self.read_line()? {
            let values = split_record(decode_line(&self.buf, self.line_no)?);
            if values.len() != columns.len() {
                return Err(BillError::Width {
                    line: self.line_no,
                    expected: columns.len(),
                    found: values.len(),
                });
            }
            self.summary = Some(BillRow {
                line: self.line_no,
                columns,
                values,
            });
        }
        if self.read_line()? {
            return Err(BillError::Trailing { line: self.line_no });
        }
        Ok(None)
    }
}

impl<R: BufRead> Iterator for BillReader<R> {
    type Item = Result<BillRow, BillError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        match self.next_inner() {
            Ok(Some(row)) => Some(Ok(row)),
            Ok(None) => {
                self.done = true;
                None
            }
            Err(e) => {
                self.done = true;
                Some(Err(e))
            }
        }
    }
}

fn decode_line(buf: &[u8], line: usize) -> Result<&str, BillError> {
    let text = std::str::from_utf8(buf).map_err(|_| BillError::Utf8 { line })?;
    Ok(text.trim_end_matches(['\r', '\n']))
}

/// Record values are separated by ",`" (a bare comma may occur inside a product name).
fn split_record(line: &str) -> Vec<String> {
    line.strip_prefix('`')
        .unwrap_or(line)
        .split(",`")
        .map(str::to_string)
        .collect()
}

/// Writes a bill in WeChat's format (BOM, CRLF, back-quoted values): for the sandbox and tests.
pub fn write_bill(
    columns: &[&str],
    records: &[Vec<String>],
    summary_columns: &[&str],
    summary: &[String],
) -> String {
    let mut out = String::from("\u{feff}");
    out.push_str(&columns.join(","));
    out.push_str("\r\n");
    let quoted = |vals: &[String]| {
        vals.iter()
            .map(|v| format!("`{v}"))
            .collect::<Vec<_>>()
            .join(",")
    };
    for r in records {
        out.push_str(&quoted(r));
        out.push_str("\r\n");
    }
    out.push_str(&summary_columns.join(","));
    out.push_str("\r\n");
    out.push_str(&quoted(summary));
    out.push_str("\r\n");
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn amounts_are_exact() {
        assert_eq!(parse_bill_amount("0.01000"), Some(Fen(1)));
        assert_eq!(parse_bill_amount("45.0"), Some(Fen(4500)));
        assert_eq!(parse_bill_amount("-1.5"), Some(Fen(-150)));
        assert_eq!(parse_bill_amount("12"), Some(Fen(1200)));
        assert_eq!(parse_bill_amount("0.005"), None);
        assert_eq!(parse_bill_amount("1."), None);
        assert_eq!(parse_bill_amount("x"), None);
        assert_eq!(parse_bill_count("45.0"), Some(45));
    }

    #[test]
    fn written_bill_reads_back() {
        let text = write_bill(
            &["交易时间", "商户订单号", "订单金额"],
            &[vec![
                "2024-01-01 00:00:00".into(),
                "o,1".into(),
                "1.23".into(),
            ]],
            &["总交易单数", "订单总金额"],
            &["1".into(), "1.23".into()],
        );
        let mut r = BillReader::new(text.as_bytes()).unwrap();
        let row = r.next().unwrap().unwrap();
        assert_eq!(row.get("商户订单号"), Some("o,1"));
        assert_eq!(row.amount("订单金额").unwrap(), Some(Fen(123)));
        assert!(r.next().is_none());
        assert_eq!(
            r.summary().unwrap().amount("订单总金额").unwrap(),
            Some(Fen(123))
        );
        let bad = "a,b\r\n`1\r\n";
        let mut r = BillReader::new(bad.as_bytes()).unwrap();
        assert!(matches!(r.next(), Some(Err(BillError::Width { .. }))));
    }
}
