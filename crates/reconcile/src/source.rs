//! Where bills come from: a download through the protocol crates' clients ([`BillSource`]), or
//! a file on disk; either way rows are streamed by the providers' parsers, never collected.

use std::io::{BufRead, BufReader, Cursor, Read, Seek};
use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use paybridge_alipay::bill::BillReader as AlipayReader;
use paybridge_alipay::client::AlipayClient;
use paybridge_alipay::request::CallOptions;
use paybridge_crypto::Sha256Stream;
use paybridge_http::Transport;
use paybridge_wechatpay::bill::{parse_bill_count, BillReader as WechatReader, TradeBillLayout};
use paybridge_wechatpay::v2::client::V2Client;
use paybridge_wechatpay::v2::error::V2Error;
use paybridge_wechatpay::v3::{V3Client, V3Error};
use time::Date;

use crate::engine::dashed;
use crate::line::BillLine;
use crate::ReconcileError;

/// Bill bytes: as downloaded, or a file (a saved download, a generated benchmark bill, or a
/// download streamed to a temporary file, removed when the last clone is dropped).
#[derive(Debug, Clone)]
pub enum BillBytes {
    Memory(Vec<u8>),
    File(PathBuf),
    Temp(Arc<tempfile::NamedTempFile>),
}

/// A bill in its provider's format.
#[derive(Debug, Clone)]
pub enum BillFile {
    /// Alipay's trade bill: a ZIP whose detail CSV (GBK) holds the rows.
    AlipayZip(BillBytes),
    /// WeChat Pay's trade bill text (APIv2 `downloadbill`, APIv3 `tradebill`, hash checked).
    WechatText(BillBytes),
    /// The provider has no bill for the day (WeChat answers so when nothing happened).
    Empty,
}

fn open_file(path: &PathBuf) -> Result<std::fs::File, ReconcileError> {
    std::fs::File::open(path).map_err(|e| ReconcileError::Bill(format!("{}: {e}", path.display())))
}

/// What reading a whole bill found besides its rows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BillRead {
    pub rows: u64,
    /// SHA-256 (hex) of the bill's bytes: the ZIP for Alipay, the text for WeChat Pay; `None`
    /// for [`BillFile::Empty`].
    pub sha256: Option<String>,
}

/// Hashes what passes through it, so a streamed bill is digested in the same read as it is
/// parsed.
struct Hashing<'a, R> {
    inner: R,
    hash: &'a mut Sha256Stream,
}

impl<R: Read> Read for Hashing<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hash.update(&buf[..n]);
        Ok(n)
    }
}

fn digest_of(bytes: &[u8]) -> String {
    let mut h = Sha256Stream::default();
    h.update(bytes);
    h.finish_hex()
}

impl BillFile {
    /// Streams every row as a [`BillLine`] to `f`, checking the bill's own row counts at the
    /// end, and digests the bill on the way. Blocking (file and decompression I/O): run it on a
    /// blocking thread.
    pub fn for_each_line(
        self,
        mut f: impl FnMut(BillLine) -> Result<(), ReconcileError>,
    ) -> Result<BillRead, ReconcileError> {
        let (rows, sha256) = match self {
            BillFile::AlipayZip(BillBytes::Memory(b)) => {
                let digest = digest_of(&b);
                (alipay_lines(Cursor::new(b), &mut f)?, digest)
            }
            BillFile::AlipayZip(BillBytes::Temp(t)) => {
                return BillFile::AlipayZip(BillBytes::File(t.path().to_path_buf()))
                    .for_each_line(f)
            }
            BillFile::WechatText(BillBytes::Temp(t)) => {
                return BillFile::WechatText(BillBytes::File(t.path().to_path_buf()))
                    .for_each_line(f)
            }
            BillFile::AlipayZip(BillBytes::File(p)) => {
                // A ZIP is read from its end (the central directory): digest it in a pass of
                // its own (it is small, ~9 MB per million rows).
                let mut hash = Sha256Stream::default();
                let mut reader = Hashing {
                    inner: open_file(&p)?,
                    hash: &mut hash,
                };
                std::io::copy(&mut reader, &mut std::io::sink())
                    .map_err(|e| ReconcileError::Bill(format!("{}: {e}", p.display())))?;
                (alipay_lines(open_file(&p)?, &mut f)?, hash.finish_hex())
            }
            BillFile::WechatText(BillBytes::Memory(b)) => {
                let digest = digest_of(&b);
                (wechat_lines(Cursor::new(b), &mut f)?, digest)
            }
            BillFile::WechatText(BillBytes::File(p)) => {
                let mut hash = Sha256Stream::default();
                let reader = Hashing {
                    inner: open_file(&p)?,
                    hash: &mut hash,
                };
                let rows = wechat_lines(BufReader::with_capacity(1 << 16, reader), &mut f)?;
                (rows, hash.finish_hex())
            }
            BillFile::Empty => {
                return Ok(BillRead {
                    rows: 0,
                    sha256: None,
                })
            }
        };
        Ok(BillRead {
            rows,
            sha256: Some(sha256),
        })
    }
}

/// Alipay writes entry names in GBK without the UTF-8 flag.
fn entry_name(raw: &[u8]) -> String {
    match std::str::from_utf8(raw) {
        Ok(s) => s.to_string(),
        Err(_) => encoding_rs::GBK
            .decode_without_bom_handling(raw)
            .0
            .into_owned(),
    }
}

fn alipay_lines<R: Read + Seek>(
    input: R,
    f: &mut impl FnMut(BillLine) -> Result<(), ReconcileError>,
) -> Result<u64, ReconcileError> {
    let mut zip =
        zip::ZipArchive::new(input).map_err(|e| ReconcileError::Bill(format!("not a ZIP: {e}")))?;
    let mut detail = None;
    for i in 0..zip.len() {
        let name = zip
            .by_index_raw(i)
            .map(|e| entry_name(e.name_raw()))
            .map_err(|e| ReconcileError::Bill(format!("ZIP entry {i}: {e}")))?;
        if name.ends_with(".csv") && !name.contains("汇总") {
            detail = Some(i);
        }
    }
    let index =
        detail.ok_or_else(|| ReconcileError::Bill("no detail CSV in the bill ZIP".into()))?;
    let entry = zip
        .by_index(index)
        .map_err(|e| ReconcileError::Bill(format!("bill entry: {e}")))?;
    let mut reader = AlipayReader::new(entry);
    let mut rows = 0u64;
    for record in reader.by_ref() {
        let record = record.map_err(|e| ReconcileError::Bill(e.to_string()))?;
        f(BillLine::from_alipay(&record)?)?;
        rows += 1;
    }
    if let Some(s) = reader.summary() {
        // The counts are the bill's own text: a sum past u64 is a mismatch, not a wrap.
        if s.trade_count.checked_add(s.refund_count) != Some(rows) {
            return Err(ReconcileError::Bill(format!(
                "the bill declares {} trades and {} refunds but holds {rows} rows",
                s.trade_count, s.refund_count
            )));
        }
    }
    Ok(rows)
}

fn wechat_lines<R: BufRead>(
    input: R,
    f: &mut impl FnMut(BillLine) -> Result<(), ReconcileError>,
) -> Result<u64, ReconcileError> {
    let mut reader = WechatReader::new(input).map_err(|e| ReconcileError::Bill(e.to_string()))?;
    let layout = TradeBillLayout::new(reader.columns());
    let mut rows = 0u64;
    for row in reader.by_ref() {
        let row = row.map_err(|e| ReconcileError::Bill(e.to_string()))?;
        let record = layout
            .take_record(row)
            .map_err(|e| ReconcileError::Bill(e.to_string()))?;
        f(BillLine::from_wechat(record)?)?;
        rows += 1;
    }
    let declared = reader
        .summary()
        .and_then(|s| s.get("总交易单数"))
        .and_then(parse_bill_count);
    if let Some(n) = declared.filter(|n| *n != rows) {
        return Err(ReconcileError::Bill(format!(
            "the bill declares {n} rows but holds {rows}"
        )));
    }
    Ok(rows)
}

/// Downloads an account's trade bill of one provider day.
#[async_trait]
pub trait BillSource: Send + Sync {
    async fn download(&self, date: Date) -> Result<BillFile, ReconcileError>;
}

/// A bill already at hand (a saved download) as a source: every "download" is that bill.
pub struct SavedBill(pub BillFile);

#[async_trait]
impl BillSource for SavedBill {
    async fn download(&self, _date: Date) -> Result<BillFile, ReconcileError> {
        Ok(self.0.clone())
    }
}

fn download_error(date: Date, e: impl std::fmt::Display) -> ReconcileError {
    ReconcileError::Download {
        date: dashed(date),
        reason: e.to_string(),
    }
}

/// Alipay: `bill.downloadurl.query`, then the ZIP.
pub struct AlipayBills {
    pub client: AlipayClient,
    pub options: CallOptions,
}

#[async_trait]
impl BillSource for AlipayBills {
    async fn download(&self, date: Date) -> Result<BillFile, ReconcileError> {
        // Streamed into a temporary file: the ZIP is read back entry by entry.
        let mut file = tempfile::NamedTempFile::new().map_err(|e| download_error(date, e))?;
        self.client
            .download_trade_bill_into(&dashed(date), &self.options, &mut file)
            .await
            .map_err(|e| download_error(date, e))?;
        Ok(BillFile::AlipayZip(BillBytes::Temp(Arc::new(file))))
    }
}

/// WeChat Pay APIv2: `downloadbill` (`ALL`).
pub struct WechatV2Bills {
    pub client: V2Client,
}

#[async_trait]
impl BillSource for WechatV2Bills {
    async fn download(&self, date: Date) -> Result<BillFile, ReconcileError> {
        let compact: String = dashed(date).chars().filter(char::is_ascii_digit).collect();
        match self.client.download_bill(&compact, "ALL").await {
            Ok(text) => Ok(BillFile::WechatText(BillBytes::Memory(text))),
            // APIv2's answer for a day without transactions.
            Err(V2Error::Return { message }) if message == "No Bill Exist" => Ok(BillFile::Empty),
            Err(V2Error::Business(b)) if b.code == "20002" => Ok(BillFile::Empty),
            Err(e) => Err(download_error(date, e)),
        }
    }
}

/// WeChat Pay APIv3: `tradebill` (`ALL`, gzip), its SHA-1 checked by the client.
pub struct WechatV3Bills<T> {
    pub client: V3Client<T>,
}

#[async_trait]
impl<T: Transport + Send + Sync + 'static> BillSource for WechatV3Bills<T> {
    async fn download(&self, date: Date) -> Result<BillFile, ReconcileError> {
        let request = paybridge_wechatpay::v3::api::trade_bill(
            &self.client.config.merchant,
            &dashed(date),
            "ALL",
            true,
        );
        // Decompressed and SHA-1 checked into a temporary file as it arrives: a million-row bill
        // is ~150 MB of text.
        let mut file = tempfile::NamedTempFile::new().map_err(|e| download_error(date, e))?;
        match self
            .client
            .download_bill_into(&request, true, &mut file)
            .await
        {
            Ok(_) => Ok(BillFile::WechatText(BillBytes::Temp(Arc::new(file)))),
            // APIv3's answer for a day without transactions.
            Err(V3Error::Api { code, .. }) if code == "NO_STATEMENT_EXIST" => Ok(BillFile::Empty),
            Err(e) => Err(download_error(date, e)),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use std::io::Write;

    use super::*;

    fn alipay_zip(csv: &str) -> Vec<u8> {
        let (gbk, _, _) = encoding_rs::GBK.encode(csv);
        let mut w = zip::ZipWriter::new(Cursor::new(Vec::new()));
        w.start_file(
            "2088_20240101_业务明细.csv",
            zip::write::SimpleFileOptions::default(),
        )
        .unwrap();
        w.write_all(&gbk).unwrap();
        w.finish().unwrap().into_inner()
    }

    /// Seen while writing the `bill_alipay` fuzz target: declared counts whose sum overflows u64
    /// panicked (debug) or wrapped around to the row count (release).
    #[test]
    fn declared_counts_past_u64_are_a_mismatch() {
        let csv = "#交易合计：18446744073709551615笔，退款合计：1笔\r\n";
        let err = BillFile::AlipayZip(BillBytes::Memory(alipay_zip(csv)))
            .for_each_line(|_| Ok(()))
            .unwrap_err();
        assert!(err.to_string().contains("holds 0 rows"), "{err}");
    }
}
