//! The APIv3 operations as pure request builders and response parsers. Direct merchants and
//! service providers (partner mode) share every function: [`Merchant`] supplies the paths and
//! identity fields that differ.

use paybridge_core::Fen;
use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::error::V3Error;
use super::model::{Refund, Transaction};

/// Who is calling: a direct merchant, or a service provider acting for a sub-merchant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Merchant {
    Direct {
        mchid: String,
        appid: String,
    },
    Partner {
        sp_mchid: String,
        sp_appid: String,
        sub_mchid: String,
        /// The sub-merchant's own app, when the buyer pays inside it.
        sub_appid: Option<String>,
    },
}

impl Merchant {
    /// The `mchid` that signs requests.
    pub fn signing_mchid(&self) -> &str {
        match self {
            Merchant::Direct { mchid, .. } => mchid,
            Merchant::Partner { sp_mchid, .. } => sp_mchid,
        }
    }

    /// The app the buyer's client runs in (for client invocation parameters).
    pub fn client_appid(&self) -> &str {
        match self {
            Merchant::Direct { appid, .. } => appid,
            Merchant::Partner {
                sp_appid,
                sub_appid,
                ..
            } => sub_appid.as_deref().unwrap_or(sp_appid),
        }
    }

    /// The merchant id the buyer pays (`partnerid` of APP parameters).
    pub fn payee_mchid(&self) -> &str {
        match self {
            Merchant::Direct { mchid, .. } => mchid,
            Merchant::Partner { sub_mchid, .. } => sub_mchid,
        }
    }

    fn transactions(&self) -> &'static str {
        match self {
            Merchant::Direct { .. } => "/v3/pay/transactions",
            Merchant::Partner { .. } => "/v3/pay/partner/transactions",
        }
    }

    fn identity(&self, with_app: bool) -> Map<String, Value> {
        let mut m = Map::new();
        match self {
            Merchant::Direct { mchid, appid } => {
                if with_app {
                    m.insert("appid".into(), appid.clone().into());
                }
                m.insert("mchid".into(), mchid.clone().into());
            }
            Merchant::Partner {
                sp_mchid,
                sp_appid,
                sub_mchid,
                sub_appid,
            } => {
                if with_app {
                    m.insert("sp_appid".into(), sp_appid.clone().into());
                    if let Some(a) = sub_appid {
                        m.insert("sub_appid".into(), a.clone().into());
                    }
                }
                m.insert("sp_mchid".into(), sp_mchid.clone().into());
                m.insert("sub_mchid".into(), sub_mchid.clone().into());
            }
        }
        m
    }

    fn query(&self) -> String {
        match self {
            Merchant::Direct { mchid, .. } => format!("mchid={}", enc(mchid)),
            Merchant::Partner {
                sp_mchid,
                sub_mchid,
                ..
            } => {
                format!("sp_mchid={}&sub_mchid={}", enc(sp_mchid), enc(sub_mchid))
            }
        }
    }

    fn payer(&self, openid: &str) -> Value {
        match self {
            Merchant::Direct { .. } => json!({ "openid": openid }),
            Merchant::Partner {
                sub_appid: Some(_), ..
            } => json!({ "sub_openid": openid }),
            Merchant::Partner {
                sub_appid: None, ..
            } => json!({ "sp_openid": openid }),
        }
    }

    fn sub_mchid(&self) -> Option<&str> {
        match self {
            Merchant::Direct { .. } => None,
            Merchant::Partner { sub_mchid, .. } => Some(sub_mchid),
        }
    }
}

use crate::common::percent_encode as enc;

/// A request before signing: path with query (what gets signed), JSON body or empty.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiRequest {
    pub method: &'static str,
    pub path: String,
    pub body: String,
    /// Safe to repeat after it may have arrived (queries, close, refunds keyed by out_refund_no).
    pub idempotent: bool,
}

impl ApiRequest {
    fn get(path: String) -> Self {
        ApiRequest {
            method: "GET",
            path,
            body: String::new(),
            idempotent: true,
        }
    }
    fn post(path: String, body: Value, idempotent: bool) -> Self {
        ApiRequest {
            method: "POST",
            path,
            body: body.to_string(),
            idempotent,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PrepayKind {
    /// JSAPI / mini-program: the buyer's openid under the paying app.
    Jsapi {
        openid: String,
    },
    App,
    /// H5 in a mobile browser; needs the buyer's IP.
    H5,
    /// A QR code.
    Native,
}

impl PrepayKind {
    fn path(&self) -> &'static str {
        match self {
            PrepayKind::Jsapi { .. } => "jsapi",
            PrepayKind::App => "app",
            PrepayKind::H5 => "h5",
            PrepayKind::Native => "native",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrepayRequest {
    pub kind: PrepayKind,
    pub out_trade_no: String,
    pub description: String,
    pub amount: Fen,
    pub notify_url: String,
    /// Unix seconds.
    pub time_expire: Option<i64>,
    pub attach: Option<String>,
    pub payer_client_ip: Option<String>,
}

/// What a prepay returns, by kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PrepayResponse {
    PrepayId(String),
    H5Url(String),
    CodeUrl(String),
}

pub fn prepay(m: &Merchant, r: &PrepayRequest) -> Result<ApiRequest, V3Error> {
    if r.out_trade_no.is_empty() || r.out_trade_no.len() > 32 {
        return Err(V3Error::Config(format!(
            "out_trade_no {:?} must be 1..=32 characters",
            r.out_trade_no
        )));
    }
    let mut body = m.identity(true);
    body.insert("description".into(), r.description.clone().into());
    body.insert("out_trade_no".into(), r.out_trade_no.clone().into());
    body.insert("notify_url".into(), r.notify_url.clone().into());
    body.insert(
        "amount".into(),
        json!({"total": r.amount.0, "currency": "CNY"}),
    );
    if let Some(t) = r.time_expire {
        body.insert("time_expire".into(), crate::time::v3_time(t).into());
    }
    if let Some(a) = &r.attach {
        body.insert("attach".into(), a.clone().into());
    }
    match &r.kind {
        PrepayKind::Jsapi { openid } => {
            body.insert("payer".into(), m.payer(openid));
        }
        PrepayKind::H5 => {
            let ip = r
                .payer_client_ip
                .clone()
                .ok_or_else(|| V3Error::Config("H5 payments need the buyer's IP".into()))?;
            body.insert(
                "scene_info".into(),
                json!({"payer_client_ip": ip, "h5_info": {"type": "Wap"}}),
            );
        }
        PrepayKind::App | PrepayKind::Native => {
            if let Some(ip) = &r.payer_client_ip {
                body.insert("scene_info".into(), json!({"payer_client_ip": ip}));
            }
        }
    }
    // Prepay with the same out_trade_no and parameters returns the same prepay id.
    Ok(ApiRequest::post(
        format!("{}/{}", m.transactions(), r.kind.path()),
        Value::Object(body),
        true,
    ))
}

pub fn parse_prepay(kind: &PrepayKind, body: &[u8]) -> Result<PrepayResponse, V3Error> {
    #[derive(Deserialize)]
    struct R {
        prepay_id: Option<String>,
        h5_url: Option<String>,
        code_url: Option<String>,
    }
    let r: R = json_body(body)?;
    let missing = |f: &str| V3Error::Json(format!("prepay response lacks {f}"));
    match kind {
        PrepayKind::Jsapi { .. } | PrepayKind::App => r
            .prepay_id
            .map(PrepayResponse::PrepayId)
            .ok_or_else(|| missing("prepay_id")),
        PrepayKind::H5 => r
            .h5_url
            .map(PrepayResponse::H5Url)
            .ok_or_else(|| missing("h5_url")),
        PrepayKind::Native => r
            .code_url
            .map(PrepayResponse::CodeUrl)
            .ok_or_else(|| missing("code_url")),
    }
}

pub fn query_by_out_trade_no(m: &Merchant, out_trade_no: &str) -> ApiRequest {
    ApiRequest::get(format!(
        "{}/out-trade-no/{}?{}",
        m.transactions(),
        enc(out_trade_no),
        m.query()
    ))
}

pub fn query_by_transaction_id(m: &Merchant, transaction_id: &str) -> ApiRequest {
    ApiRequest::get(format!(
        "{}/id/{}?{}",
        m.transactions(),
        enc(transaction_id),
        m.query()
    ))
}

pub fn parse_transaction(body: &[u8]) -> Result<Transaction, V3Error> {
    json_body(body)
}

/// Close answers 204 with an empty body.
pub fn close(m: &Merchant, out_trade_no: &str) -> ApiRequest {
    ApiRequest::post(
        format!(
            "{}/out-trade-no/{}/close",
            m.transactions(),
            enc(out_trade_no)
        ),
        Value::Object(m.identity(false)),
        true,
    )
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefundRequest {
    pub out_trade_no: String,
    pub transaction_id: Option<String>,
    pub out_refund_no: String,
    pub refund: Fen,
    pub total: Fen,
    pub reason: Option<String>,
    pub notify_url: Option<String>,
}

/// The same `out_refund_no` makes a repeated refund harmless, hence idempotent.
pub fn refund(m: &Merchant, r: &RefundRequest) -> ApiRequest {
    let mut body = Map::new();
    if let Some(sub) = m.sub_mchid() {
        body.insert("sub_mchid".into(), sub.into());
    }
    match &r.transaction_id {
        Some(t) => body.insert("transaction_id".into(), t.clone().into()),
        None => body.insert("out_trade_no".into(), r.out_trade_no.clone().into()),
    };
    body.insert("out_refund_no".into(), r.out_refund_no.clone().into());
    if let Some(reason) = &r.reason {
        body.insert("reason".into(), reason.clone().into());
    }
    if let Some(u) = &r.notify_url {
        body.insert("notify_url".into(), u.clone().into());
    }
    body.insert(
        "amount".into(),
        json!({"refund": r.refund.0, "total": r.total.0, "currency": "CNY"}),
    );
    ApiRequest::post(
        "/v3/refund/domestic/refunds".into(),
        Value::Object(body),
        true,
    )
}

pub fn query_refund(m: &Merchant, out_refund_no: &str) -> ApiRequest {
    let q = m
        .sub_mchid()
        .map(|s| format!("?sub_mchid={}", enc(s)))
        .unwrap_or_default();
    ApiRequest::get(format!(
        "/v3/refund/domestic/refunds/{}{q}",
        enc(out_refund_no)
    ))
}

pub fn parse_refund(body: &[u8]) -> Result<Refund, V3Error> {
    json_body(body)
}

/// `GET /v3/bill/tradebill`: `bill_date` is `YYYY-MM-DD`, `bill_type` ALL/SUCCESS/REFUND.
pub fn trade_bill(m: &Merchant, bill_date: &str, bill_type: &str, gzip: bool) -> ApiRequest {
    let mut q = format!("bill_date={}&bill_type={}", enc(bill_date), enc(bill_type));
    if let Some(sub) = m.sub_mchid() {
        q.push_str(&format!("&sub_mchid={}", enc(sub)));
    }
    if gzip {
        q.push_str("&tar_type=GZIP");
    }
    ApiRequest::get(format!("/v3/bill/tradebill?{q}"))
}

/// `GET /v3/bill/fundflowbill`: `account_type` BASIC/OPERATION/FEES.
pub fn fundflow_bill(bill_date: &str, account_type: &str, gzip: bool) -> ApiRequest {
    let mut q = format!(
        "bill_date={}&account_type={}",
        enc(bill_date),
        enc(account_type)
    );
    if gzip {
        q.push_str("&tar_type=GZIP");
    }
    ApiRequest::get(format!("/v3/bill/fundflowbill?{q}"))
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct BillLink {
    pub hash_type: String,
    pub hash_value: String,
    pub download_url: String,
}

pub fn parse_bill_link(body: &[u8]) -> Result<BillLink, V3Error> {
    json_body(body)
}

/// The signed-GET path of a download URL (the part after the host).
pub fn download_path(download_url: &str) -> Result<String, V3Error> {
    let rest = download_url
        .strip_prefix("https://")
        .or_else(|| download_url.strip_prefix("http://"))
        .ok_or_else(|| V3Error::Bill(format!("download_url {download_url:?} is not absolute")))?;
    Ok(rest
        .find('/')
        .map(|i| rest[i..].to_string())
        .unwrap_or_else(|| "/".into()))
}

/// Checks a downloaded bill (gunzipped first when requested) against `hash_value` (SHA-1) and
/// returns the text bytes.
pub fn check_bill(link: &BillLink, downloaded: &[u8], gzip: bool) -> Result<Vec<u8>, V3Error> {
    let mut out = Vec::new();
    check_bill_into(link, downloaded, gzip, &mut out)?;
    Ok(out)
}

/// A bill of a busy merchant is tens of MB; cap what a hostile gzip can expand to.
pub const MAX_BILL_BYTES: u64 = 512 * 1024 * 1024;

/// [`check_bill`] of a download held in memory, the text written to `out`.
pub fn check_bill_into(
    link: &BillLink,
    downloaded: &[u8],
    gzip: bool,
    out: &mut impl std::io::Write,
) -> Result<u64, V3Error> {
    let mut check = BillCheck::new(link, gzip, out)?;
    std::io::Write::write_all(&mut check, downloaded).map_err(bill_io)?;
    check.finish()
}

fn bill_io(e: std::io::Error) -> V3Error {
    V3Error::Bill(e.to_string())
}

/// A bill checked as it is written, so neither the download nor its text is ever one buffer:
/// gunzipped when asked, the SHA-1 of the text taken on the way, at most [`MAX_BILL_BYTES`] of
/// text passed to `out` (a temporary file). [`BillCheck::finish`] compares the digest; until
/// it has, `out` holds a bill that must not be used.
pub struct BillCheck<'a, W: std::io::Write> {
    hash_value: String,
    stage: Stage<'a, W>,
}

enum Stage<'a, W: std::io::Write> {
    Plain(Hashing<'a, W>),
    Gzip(Box<flate2::write::GzDecoder<Hashing<'a, W>>>),
}

struct Hashing<'a, W: std::io::Write> {
    hash: paybridge_crypto::Sha1Stream,
    out: &'a mut W,
    total: u64,
    limit: u64,
}

impl<W: std::io::Write> std::io::Write for Hashing<'_, W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.total + buf.len() as u64 > self.limit {
            return Err(std::io::Error::other(format!(
                "the bill exceeds {} bytes",
                self.limit
            )));
        }
        self.hash.update(buf);
        self.out.write_all(buf)?;
        self.total += buf.len() as u64;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.out.flush()
    }
}

impl<'a, W: std::io::Write> BillCheck<'a, W> {
    pub fn new(link: &BillLink, gzip: bool, out: &'a mut W) -> Result<Self, V3Error> {
        if !link.hash_type.eq_ignore_ascii_case("SHA1") {
            return Err(V3Error::Bill(format!(
                "unsupported hash_type {}",
                link.hash_type
            )));
        }
        let hashing = Hashing {
            hash: paybridge_crypto::Sha1Stream::default(),
            out,
            total: 0,
            limit: MAX_BILL_BYTES,
        };
        Ok(BillCheck {
            hash_value: link.hash_value.to_ascii_lowercase(),
            stage: if gzip {
                Stage::Gzip(Box::new(flate2::write::GzDecoder::new(hashing)))
            } else {
                Stage::Plain(hashing)
            },
        })
    }

    /// A smaller cap than [`MAX_BILL_BYTES`] on the text.
    pub fn with_limit(mut self, bytes: u64) -> Self {
        match &mut self.stage {
            Stage::Plain(h) => h.limit = bytes,
            Stage::Gzip(gz) => gz.get_mut().limit = bytes,
        }
        self
    }

    /// Ends the bill (a gzip stream must be complete) and checks its SHA-1. Returns the length
    /// of the text.
    pub fn finish(self) -> Result<u64, V3Error> {
        let mut hashing = match self.stage {
            Stage::Plain(h) => h,
            Stage::Gzip(gz) => gz
                .finish()
                .map_err(|e| V3Error::Bill(format!("gzip: {e}")))?,
        };
        std::io::Write::flush(&mut hashing).map_err(bill_io)?;
        let actual = hashing.hash.finish_hex();
        if !paybridge_crypto::constant_time_eq(actual.as_bytes(), self.hash_value.as_bytes()) {
            return Err(V3Error::Bill(format!(
                "SHA-1 {actual} does not match hash_value {}",
                self.hash_value
            )));
        }
        Ok(hashing.total)
    }
}

impl<W: std::io::Write> std::io::Write for BillCheck<'_, W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match &mut self.stage {
            Stage::Plain(h) => h.write(buf),
            Stage::Gzip(gz) => gz.write(buf),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match &mut self.stage {
            Stage::Plain(h) => h.flush(),
            Stage::Gzip(gz) => gz.flush(),
        }
    }
}

fn json_body<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, V3Error> {
    serde_json::from_slice(body).map_err(|e| V3Error::Json(e.to_string()))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn direct() -> Merchant {
        Merchant::Direct {
            mchid: "1900".into(),
            appid: "wxA".into(),
        }
    }
    fn partner() -> Merchant {
        Merchant::Partner {
            sp_mchid: "1900".into(),
            sp_appid: "wxSP".into(),
            sub_mchid: "1901".into(),
            sub_appid: Some("wxSUB".into()),
        }
    }

    fn req(kind: PrepayKind) -> PrepayRequest {
        PrepayRequest {
            kind,
            out_trade_no: "o1".into(),
            description: "d".into(),
            amount: Fen(101),
            notify_url: "https://n".into(),
            time_expire: Some(1_624_523_846),
            attach: None,
            payer_client_ip: Some("1.2.3.4".into()),
        }
    }

    #[test]
    fn wire_forms_direct_and_partner() {
        let r = prepay(
            &direct(),
            &req(PrepayKind::Jsapi {
                openid: "op".into(),
            }),
        )
        .unwrap();
        assert_eq!(r.path, "/v3/pay/transactions/jsapi");
        let v: Value = serde_json::from_str(&r.body).unwrap();
        assert_eq!(v["amount"], json!({"total": 101, "currency": "CNY"}));
        assert_eq!(
            (
                v["appid"].as_str(),
                v["mchid"].as_str(),
                v["payer"]["openid"].as_str()
            ),
            (Some("wxA"), Some("1900"), Some("op"))
        );
        assert_eq!(v["time_expire"], "2021-06-24T16:37:26+08:00");
        let r = prepay(
            &partner(),
            &req(PrepayKind::Jsapi {
                openid: "op".into(),
            }),
        )
        .unwrap();
        assert_eq!(r.path, "/v3/pay/partner/transactions/jsapi");
        let v: Value = serde_json::from_str(&r.body).unwrap();
        assert_eq!(
            (
                v["sp_mchid"].as_str(),
                v["sub_mchid"].as_str(),
                v["payer"]["sub_openid"].as_str()
            ),
            (Some("1900"), Some("1901"), Some("op"))
        );
        let v: Value =
            serde_json::from_str(&prepay(&direct(), &req(PrepayKind::H5)).unwrap().body).unwrap();
        assert_eq!(v["scene_info"]["h5_info"]["type"], "Wap");
        assert!(prepay(
            &direct(),
            &PrepayRequest {
                out_trade_no: "x".repeat(33),
                ..req(PrepayKind::Native)
            }
        )
        .is_err());

        assert_eq!(
            query_by_out_trade_no(&direct(), "o 1").path,
            "/v3/pay/transactions/out-trade-no/o%201?mchid=1900"
        );
        assert_eq!(
            query_by_transaction_id(&partner(), "42").path,
            "/v3/pay/partner/transactions/id/42?sp_mchid=1900&sub_mchid=1901"
        );
        assert_eq!(close(&direct(), "o1").body, "{\"mchid\":\"1900\"}");
        let rf = refund(
            &partner(),
            &RefundRequest {
                out_trade_no: "o1".into(),
                transaction_id: None,
                out_refund_no: "r1".into(),
                refund: Fen(1),
                total: Fen(2),
                reason: None,
                notify_url: None,
            },
        );
        let v: Value = serde_json::from_str(&rf.body).unwrap();
        assert_eq!(
            (v["sub_mchid"].as_str(), v["amount"]["refund"].as_i64()),
            (Some("1901"), Some(1))
        );
        assert_eq!(
            query_refund(&partner(), "r1").path,
            "/v3/refund/domestic/refunds/r1?sub_mchid=1901"
        );
        assert_eq!(
            trade_bill(&direct(), "2024-01-02", "ALL", true).path,
            "/v3/bill/tradebill?bill_date=2024-01-02&bill_type=ALL&tar_type=GZIP"
        );
        assert_eq!(
            fundflow_bill("2024-01-02", "BASIC", false).path,
            "/v3/bill/fundflowbill?bill_date=2024-01-02&account_type=BASIC"
        );
    }

    #[test]
    fn parses_responses() {
        assert_eq!(
            parse_prepay(&PrepayKind::Native, b"{\"code_url\":\"weixin://x\"}").unwrap(),
            PrepayResponse::CodeUrl("weixin://x".into())
        );
        assert!(parse_prepay(&PrepayKind::App, b"{\"code_url\":\"weixin://x\"}").is_err());
        let t = parse_transaction(br#"{"appid":"wx","mchid":"1","out_trade_no":"o","transaction_id":"t","trade_state":"SUCCESS","payer":{"openid":"op"},"amount":{"total":100,"payer_total":90}}"#).unwrap();
        assert_eq!(t.amount.unwrap().payer_total, Some(Fen(90)));
        let r = parse_refund(br#"{"refund_id":"x","out_refund_no":"r","status":"PROCESSING","amount":{"refund":5,"total":10}}"#).unwrap();
        assert_eq!(r.status, "PROCESSING");
        assert_eq!(
            download_path("https://api.mch.weixin.qq.com/v3/billdownload/file?token=x").unwrap(),
            "/v3/billdownload/file?token=x"
        );
    }

    #[test]
    fn bill_hash_is_checked_plain_and_gzip() {
        use std::io::Write;
        let text = b"\xef\xbb\xbfa\r\n`1\r\n";
        let link = BillLink {
            hash_type: "SHA1".into(),
            hash_value: paybridge_crypto::sha1_hex(text).to_uppercase(),
            download_url: "https://x/y".into(),
        };
        assert_eq!(check_bill(&link, text, false).unwrap(), text);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(text).unwrap();
        let gz = gz.finish().unwrap();
        assert_eq!(check_bill(&link, &gz, true).unwrap(), text);
        assert!(check_bill(&link, b"tampered", false).is_err());
        assert!(check_bill(&link, text, true).is_err());
        // Streamed a byte at a time, as a download arrives: the same text, the same check.
        let mut out = Vec::new();
        let mut check = BillCheck::new(&link, true, &mut out).unwrap();
        for b in &gz {
            check.write_all(std::slice::from_ref(b)).unwrap();
        }
        assert_eq!(check.finish().unwrap(), text.len() as u64);
        assert_eq!(out, text);
        // A gzip stream cut short is not a bill.
        let mut out = Vec::new();
        let mut check = BillCheck::new(&link, true, &mut out).unwrap();
        check.write_all(&gz[..gz.len() - 8]).unwrap();
        assert!(check.finish().is_err());
    }

    #[test]
    fn a_gzip_bomb_stops_at_the_bill_cap() {
        use std::io::Write;
        let link = BillLink {
            hash_type: "SHA1".into(),
            hash_value: "00".into(),
            download_url: "https://x/y".into(),
        };
        // 8 MiB of zeros in 8 KiB of gzip, against a 1 MiB cap (the real one is 512 MiB).
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        gz.write_all(&vec![0u8; 8 << 20]).unwrap();
        let gz = gz.finish().unwrap();
        assert!(gz.len() < 64 * 1024);
        let mut sink = std::io::sink();
        let mut check = BillCheck::new(&link, true, &mut sink)
            .unwrap()
            .with_limit(1 << 20);
        let err = check.write_all(&gz).unwrap_err();
        assert!(err.to_string().contains("exceeds"), "{err}");
    }
}
