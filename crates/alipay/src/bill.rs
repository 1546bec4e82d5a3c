//! The trade bill (`bill_type=trade`): a ZIP of GBK CSV files. The detail file is streamed
//! line by line out of the ZIP entry, so a bill of any size is read in bounded memory.
//!
//! Layout of the detail file: `#` metadata lines, a 25-column header, one row per payment or
//! refund (values often end in a tab), then `#` closing and summary lines.

use std::io::{BufRead, BufReader, Cursor, Read, Write};

use paybridge_core::Fen;
use zip::ZipArchive;

use crate::AlipayError;

/// The detail table's columns, in Alipay's order.
pub const DETAIL_COLUMNS: [&str; 25] = [
    "支付宝交易号",
    "商户订单号",
    "业务类型",
    "商品名称",
    "创建时间",
    "完成时间",
    "门店编号",
    "门店名称",
    "操作员",
    "终端号",
    "对方账户",
    "订单金额（元）",
    "商家实收（元）",
    "支付宝红包（元）",
    "集分宝（元）",
    "支付宝优惠（元）",
    "商家优惠（元）",
    "券核销金额（元）",
    "券名称",
    "商家红包消费金额（元）",
    "卡消费金额（元）",
    "退款批次号/请求号",
    "服务费（元）",
    "分润（元）",
    "备注",
];

/// `业务类型`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BillKind {
    /// 交易
    Payment,
    /// 退款
    Refund,
}

impl BillKind {
    pub fn parse(s: &str) -> Option<BillKind> {
        match s {
            "交易" => Some(BillKind::Payment),
            "退款" => Some(BillKind::Refund),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            BillKind::Payment => "交易",
            BillKind::Refund => "退款",
        }
    }
}

/// One detail row. Refund amounts are negative, as Alipay writes them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BillRecord {
    pub trade_no: String,
    pub out_trade_no: String,
    pub kind: BillKind,
    pub subject: String,
    pub created_at: String,
    pub finished_at: String,
    pub store_id: String,
    pub store_name: String,
    pub operator: String,
    pub terminal_id: String,
    pub counterparty: String,
    pub order_amount: Fen,
    pub merchant_received: Fen,
    pub alipay_red_packet: Fen,
    pub jifenbao: Fen,
    pub alipay_discount: Fen,
    pub merchant_discount: Fen,
    pub coupon_amount: Fen,
    pub coupon_name: String,
    pub merchant_red_packet: Fen,
    pub card_amount: Fen,
    /// The refund's `out_request_no`.
    pub refund_request_no: String,
    pub service_fee: Fen,
    pub profit_share: Fen,
    pub remark: String,
}

/// Splits one CSV line; double-quoted fields may hold commas and `""`.
fn split_csv(line: &str) -> Vec<String> {
    let mut fields = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                cur.push('"');
                chars.next();
            }
            ('"', true) => quoted = false,
            ('"', false) if cur.trim().is_empty() => {
                cur.clear();
                quoted = true;
            }
            (',', false) => fields.push(std::mem::take(&mut cur)),
            _ => cur.push(c),
        }
    }
    fields.push(cur);
    fields
}

/// Values carry trailing tabs (and sometimes spaces) so spreadsheets keep them as text.
fn clean(field: &str) -> &str {
    field.trim_matches(|c: char| c == '\t' || c == ' ' || c == '\r')
}

/// Counts from the closing `#交易合计：N笔，退款合计：M笔` line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BillSummary {
    pub trade_count: u64,
    pub refund_count: u64,
}

fn count_after(line: &str, label: &str) -> Option<u64> {
    let rest = &line[line.find(label)? + label.len()..];
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

/// Streams the records of a detail CSV (GBK bytes) from any reader.
pub struct BillReader<R: Read> {
    input: BufReader<R>,
    buf: Vec<u8>,
    line_no: usize,
    /// Column index of each of [`DETAIL_COLUMNS`], once the header was read.
    columns: Option<Vec<usize>>,
    in_table: bool,
    metadata: Vec<String>,
    summary: Option<BillSummary>,
    /// Set by a read error: the input cannot be read past it, and a reader that kept failing
    /// would never end a `for` loop that skips bad rows.
    failed: bool,
}

impl<R: Read> BillReader<R> {
    pub fn new(input: R) -> Self {
        BillReader {
            input: BufReader::new(input),
            buf: Vec::new(),
            line_no: 0,
            columns: None,
            in_table: false,
            metadata: Vec::new(),
            summary: None,
            failed: false,
        }
    }

    /// The `#` lines seen so far, without the `#`.
    pub fn metadata(&self) -> &[String] {
        &self.metadata
    }

    /// The closing counts, once the reader has passed them.
    pub fn summary(&self) -> Option<BillSummary> {
        self.summary
    }

    fn err(&self, reason: impl std::fmt::Display) -> AlipayError {
        AlipayError::Bill(format!("line {}: {reason}", self.line_no))
    }

    fn read_header(&mut self, line: &str) -> Result<(), AlipayError> {
        let names: Vec<String> = split_csv(line)
            .iter()
            .map(|f| clean(f).to_string())
            .collect();
        let mut columns = Vec::with_capacity(DETAIL_COLUMNS.len());
        for col in DETAIL_COLUMNS {
            let idx = names
                .iter()
                .position(|n| n == col)
                .ok_or_else(|| self.err(format!("header lacks column {col}")))?;
            columns.push(idx);
        }
        self.columns = Some(columns);
        self.in_table = true;
        Ok(())
    }

    fn read_record(&self, line: &str, columns: &[usize]) -> Result<BillRecord, AlipayError> {
        let fields = split_csv(line);
        let text = |i: usize| -> String {
            columns
                .get(i)
                .and_then(|c| fields.get(*c))
                .map(|f| clean(f).to_string())
                .unwrap_or_default()
        };
        let amount = |i: usize| -> Result<Fen, AlipayError> {
            let t = text(i);
            if t.is_empty() {
                return Ok(Fen(0));
            }
            Fen::parse_yuan(&t).map_err(|e| self.err(format!("{}: {e}", DETAIL_COLUMNS[i])))
        };
        if fields.len() < DETAIL_COLUMNS.len() {
            return Err(self.err(format!(
                "{} fields, expected {}",
                fields.len(),
                DETAIL_COLUMNS.len()
            )));
        }
        let kind_text = text(2);
        let kind = BillKind::parse(&kind_text)
            .ok_or_else(|| self.err(format!("unknown business type {kind_text:?}")))?;
        Ok(BillRecord {
            trade_no: text(0),
            out_trade_no: text(1),
            kind,
            subject: text(3),
            created_at: text(4),
            finished_at: text(5),
            store_id: text(6),
            store_name: text(7),
            operator: text(8),
            terminal_id: text(9),
            counterparty: text(10),
            order_amount: amount(11)?,
            merchant_received: amount(12)?,
            alipay_red_packet: amount(13)?,
            jifenbao: amount(14)?,
            alipay_discount: amount(15)?,
            merchant_discount: amount(16)?,
            coupon_amount: amount(17)?,
            coupon_name: text(18),
            merchant_red_packet: amount(19)?,
            card_amount: amount(20)?,
            refund_request_no: text(21),
            service_fee: amount(22)?,
            profit_share: amount(23)?,
            remark: text(24),
        })
    }
}

impl<R: Read> Iterator for BillReader<R> {
    type Item = Result<BillRecord, AlipayError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        loop {
            self.buf.clear();
            // GBK trail bytes are >= 0x40, so a 0x0A byte always ends a line.
            match self.input.read_until(b'\n', &mut self.buf) {
                Ok(0) => return None,
                Ok(_) => {}
                Err(e) => {
                    self.failed = true;
                    return Some(Err(self.err(e)));
                }
            }
            self.line_no += 1;
            let Some(line) = encoding_rs::GBK
                .decode_without_bom_handling_and_without_replacement(&self.buf)
                .map(|c| c.trim_end_matches(['\r', '\n']).to_string())
            else {
                return Some(Err(self.err("not GBK text")));
            };
            if let Some(meta) = line.strip_prefix('#') {
                self.in_table = false;
                if line.contains("交易合计") {
                    self.summary = Some(BillSummary {
                        trade_count: count_after(&line, "交易合计：").unwrap_or(0),
                        refund_count: count_after(&line, "退款合计：").unwrap_or(0),
                    });
                }
                self.metadata.push(meta.to_string());
                continue;
            }
            if line.trim().is_empty() {
                continue;
            }
            match &self.columns {
                None => {
                    if let Err(e) = self.read_header(&line) {
                        return Some(Err(e));
                    }
                }
                Some(columns) if self.in_table => {
                    return Some(self.read_record(&line, columns));
                }
                Some(_) => return Some(Err(self.err("row outside the detail table"))),
            }
        }
    }
}

/// A downloaded bill ZIP.
pub struct BillArchive {
    zip: ZipArchive<Cursor<Vec<u8>>>,
}

fn decode_name(raw: &[u8]) -> String {
    match std::str::from_utf8(raw) {
        Ok(s) => s.to_string(),
        Err(_) => encoding_rs::GBK
            .decode_without_bom_handling(raw)
            .0
            .into_owned(),
    }
}

impl BillArchive {
    pub fn new(zip_bytes: Vec<u8>) -> Result<Self, AlipayError> {
        let zip = ZipArchive::new(Cursor::new(zip_bytes))
            .map_err(|e| AlipayError::Bill(format!("not a ZIP: {e}")))?;
        Ok(BillArchive { zip })
    }

    /// Entry names (Alipay writes them in GBK without the UTF-8 flag).
    pub fn entry_names(&mut self) -> Vec<String> {
        (0..self.zip.len())
            .filter_map(|i| {
                self.zip
                    .by_index_raw(i)
                    .ok()
                    .map(|f| decode_name(f.name_raw()))
            })
            .collect()
    }

    /// A streaming reader over the detail file (the entry that is not the `(汇总)` summary).
    pub fn detail(&mut self) -> Result<BillReader<impl Read + '_>, AlipayError> {
        let index = self
            .entry_names()
            .iter()
            .position(|n| n.ends_with(".csv") && !n.contains("汇总"))
            .ok_or_else(|| AlipayError::Bill("no detail CSV in the bill ZIP".into()))?;
        let file = self
            .zip
            .by_index(index)
            .map_err(|e| AlipayError::Bill(format!("bill entry: {e}")))?;
        Ok(BillReader::new(file))
    }
}

fn yuan_text(f: Fen) -> String {
    f.to_yuan()
}

/// Writes a trade bill ZIP as Alipay does (GBK, tab-suffixed values, `#` framing): the sandbox
/// serves it, and the parser above reads it back.
pub fn write_trade_bill_zip(
    account: &str,
    bill_date: &str,
    records: &[BillRecord],
) -> Result<Vec<u8>, AlipayError> {
    let compact_date: String = bill_date.chars().filter(char::is_ascii_digit).collect();
    let mut csv = String::new();
    csv.push_str("#支付宝业务明细查询\r\n");
    csv.push_str(&format!("#账号：[{account}]\r\n"));
    csv.push_str(&format!(
        "#起始日期：[{bill_date} 00:00:00]   终止日期：[{bill_date} 23:59:59]\r\n"
    ));
    csv.push_str("#-----------------------------------------业务明细列表----------------------------------------\r\n");
    csv.push_str(&DETAIL_COLUMNS.join(","));
    csv.push_str("\r\n");
    let quote = |s: &str| -> String {
        if s.contains([',', '"', '\n']) {
            format!("\"{}\"", s.replace('"', "\"\""))
        } else {
            s.to_string()
        }
    };
    let (mut trades, mut refunds) = (0u64, 0u64);
    for r in records {
        match r.kind {
            BillKind::Payment => trades += 1,
            BillKind::Refund => refunds += 1,
        }
        let row = [
            quote(&r.trade_no),
            quote(&r.out_trade_no),
            r.kind.as_str().to_string(),
            quote(&r.subject),
            quote(&r.created_at),
            quote(&r.finished_at),
            quote(&r.store_id),
            quote(&r.store_name),
            quote(&r.operator),
            quote(&r.terminal_id),
            quote(&r.counterparty),
            yuan_text(r.order_amount),
            yuan_text(r.merchant_received),
            yuan_text(r.alipay_red_packet),
            yuan_text(r.jifenbao),
            yuan_text(r.alipay_discount),
            yuan_text(r.merchant_discount),
            yuan_text(r.coupon_amount),
            quote(&r.coupon_name),
            yuan_text(r.merchant_red_packet),
            yuan_text(r.card_amount),
            quote(&r.refund_request_no),
            yuan_text(r.service_fee),
            yuan_text(r.profit_share),
            quote(&r.remark),
        ];
        let line: Vec<String> = row.iter().map(|v| format!("{v}\t")).collect();
        csv.push_str(&line.join(","));
        csv.push_str("\r\n");
    }
    csv.push_str("#-----------------------------------------业务明细列表结束------------------------------------\r\n");
    csv.push_str(&format!("#交易合计：{trades}笔，退款合计：{refunds}笔\r\n"));
    csv.push_str(&format!("#导出时间：[{bill_date} 23:59:59]\r\n"));
    let (gbk, _, unmappable) = encoding_rs::GBK.encode(&csv);
    if unmappable {
        return Err(AlipayError::Bill(
            "bill text has characters GBK cannot hold".into(),
        ));
    }
    let zip_err = |e: zip::result::ZipError| AlipayError::Bill(format!("writing ZIP: {e}"));
    let mut writer = zip::ZipWriter::new(Cursor::new(Vec::new()));
    let options = zip::write::SimpleFileOptions::default();
    writer
        .start_file(format!("{account}_{compact_date}_业务明细.csv"), options)
        .map_err(zip_err)?;
    writer
        .write_all(&gbk)
        .map_err(|e| AlipayError::Bill(e.to_string()))?;
    let summary = format!(
        "#支付宝业务汇总查询\r\n门店编号,门店名称,交易订单总笔数,退款订单总笔数\r\n合计,,{trades},{refunds}\r\n"
    );
    writer
        .start_file(
            format!("{account}_{compact_date}_业务明细(汇总).csv"),
            options,
        )
        .map_err(zip_err)?;
    writer
        .write_all(&encoding_rs::GBK.encode(&summary).0)
        .map_err(|e| AlipayError::Bill(e.to_string()))?;
    Ok(writer.finish().map_err(zip_err)?.into_inner())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn record(i: u64, kind: BillKind) -> BillRecord {
        let sign = if kind == BillKind::Refund { -1 } else { 1 };
        BillRecord {
            trade_no: format!("20261125220014{i:014}"),
            out_trade_no: format!("ORDER{i}"),
            kind,
            subject: "中文商品, with comma".into(),
            created_at: "2026-11-25 10:00:00".into(),
            finished_at: "2026-11-25 10:00:05".into(),
            store_id: String::new(),
            store_name: String::new(),
            operator: String::new(),
            terminal_id: String::new(),
            counterparty: "abc***@example.com".into(),
            order_amount: Fen(sign * 1234),
            merchant_received: Fen(sign * 1200),
            alipay_red_packet: Fen(0),
            jifenbao: Fen(0),
            alipay_discount: Fen(34),
            merchant_discount: Fen(0),
            coupon_amount: Fen(0),
            coupon_name: String::new(),
            merchant_red_packet: Fen(0),
            card_amount: Fen(0),
            refund_request_no: if kind == BillKind::Refund {
                format!("ORDER{i}-r1")
            } else {
                String::new()
            },
            service_fee: Fen(-7),
            profit_share: Fen(0),
            remark: String::new(),
        }
    }

    #[test]
    fn gbk_zip_round_trip_with_metadata_and_summary() {
        let records = vec![record(1, BillKind::Payment), record(2, BillKind::Refund)];
        let zip = write_trade_bill_zip("20881234567890120156", "2026-11-25", &records).unwrap();
        let mut archive = BillArchive::new(zip).unwrap();
        let names = archive.entry_names();
        assert_eq!(names.len(), 2);
        assert!(names[0].ends_with("_20261125_业务明细.csv"));
        let mut reader = archive.detail().unwrap();
        let got: Vec<BillRecord> = reader.by_ref().map(|r| r.unwrap()).collect();
        assert_eq!(got, records);
        assert_eq!(got[1].order_amount, Fen(-1234));
        assert_eq!(
            reader.summary(),
            Some(BillSummary {
                trade_count: 1,
                refund_count: 1
            })
        );
        assert_eq!(reader.metadata()[1], "账号：[20881234567890120156]");
        assert_eq!(reader.metadata().len(), 7);
    }

    #[test]
    fn rows_are_trimmed_and_errors_are_per_row() {
        let header = DETAIL_COLUMNS.join(",");
        let good = "2026112522001411111111111111\t,O1\t,交易\t,s\t,t1\t,t2\t,\t,\t,\t,\t,x\t,10.00\t,9.94\t,0.00\t,0.00\t,0.00\t,0.00\t,0.00\t,\t,0.00\t,0.00\t,\t,-0.06\t,0.00\t,\t";
        let bad_kind = good.replace("交易", "转账");
        let bad_amount = good.replace("10.00", "1o.00");
        let text = format!("#meta\n{header}\n{good}\n{bad_kind}\n{bad_amount}\nshort,row\n#end\n");
        let bytes = encoding_rs::GBK.encode(&text).0.into_owned();
        let results: Vec<_> = BillReader::new(bytes.as_slice()).collect();
        assert_eq!(results.len(), 4);
        let first = results[0].as_ref().unwrap();
        assert_eq!(first.trade_no, "2026112522001411111111111111");
        assert_eq!(first.merchant_received, Fen(994));
        assert_eq!(first.service_fee, Fen(-6));
        assert!(results[1]
            .as_ref()
            .unwrap_err()
            .to_string()
            .contains("转账"));
        assert!(results[2]
            .as_ref()
            .unwrap_err()
            .to_string()
            .contains("line 5"));
        assert!(results[3].is_err());
    }

    #[test]
    fn many_rows_stream() {
        let records: Vec<BillRecord> = (0..5000).map(|i| record(i, BillKind::Payment)).collect();
        let zip = write_trade_bill_zip("2088", "2026-11-25", &records).unwrap();
        let mut archive = BillArchive::new(zip).unwrap();
        let total: i64 = archive
            .detail()
            .unwrap()
            .map(|r| r.unwrap().order_amount.as_i64())
            .sum();
        assert_eq!(total, 5000 * 1234);
    }

    /// Found by the `bill_alipay` fuzz target: a ZIP entry whose data fails to read (bad
    /// deflate stream, CRC mismatch) fails on every read, and a loop skipping bad rows spun.
    #[test]
    fn a_read_error_ends_the_rows() {
        struct Broken;
        impl Read for Broken {
            fn read(&mut self, _: &mut [u8]) -> std::io::Result<usize> {
                Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    "bad stream",
                ))
            }
        }
        let results: Vec<_> = BillReader::new(Broken).take(3).collect();
        assert_eq!(results.len(), 1);
        assert!(matches!(&results[0], Err(AlipayError::Bill(m)) if m.contains("bad stream")));
    }

    #[test]
    fn garbage_is_an_error() {
        assert!(BillArchive::new(b"PK not a zip".to_vec()).is_err());
        let bad = [0x81u8, 0x0a];
        let mut r = BillReader::new(&bad[..]);
        assert!(r.next().unwrap().is_err());
        let header_missing = encoding_rs::GBK.encode("a,b,c\n").0.into_owned();
        assert!(BillReader::new(header_missing.as_slice())
            .next()
            .unwrap()
            .is_err());
    }
}
