//! One typed request + response per Alipay API. Building ([`prepare`]) and reading ([`parse`])
//! are pure; [`crate::client::AlipayClient`] runs them.

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::config::AlipayConfig;
use crate::request::{build_request, CallOptions, SignedRequest};
use crate::response::{check_code, open_response};
use crate::AlipayError;

pub mod app_pay;
pub mod bill_url;
pub mod cancel;
pub mod cert_download;
pub mod close;
pub mod create;
pub mod fund_account;
pub mod fund_query;
pub mod fund_transfer;
pub mod generic;
pub mod page_pay;
pub mod pay;
pub mod precreate;
pub mod query;
pub mod refund;
pub mod refund_query;
pub mod wap_pay;

pub use app_pay::TradeAppPay;
pub use bill_url::{BillDownloadUrlQuery, BillDownloadUrlResponse};
pub use cancel::{TradeCancel, TradeCancelResponse};
pub use cert_download::{AlipayCertDownload, AlipayCertDownloadResponse};
pub use close::{TradeClose, TradeCloseResponse};
pub use create::{TradeCreate, TradeCreateResponse};
pub use fund_account::{FundAccountQuery, FundAccountQueryResponse};
pub use fund_query::{FundTransCommonQuery, FundTransCommonQueryResponse};
pub use fund_transfer::{
    FundTransStatus, FundTransUniTransfer, FundTransUniTransferResponse, Payee, PayeeIdentity,
    TransferSceneReportInfo,
};
pub use generic::GenericRequest;
pub use page_pay::TradePagePay;
pub use pay::{TradePay, TradePayResponse};
pub use precreate::{TradePrecreate, TradePrecreateResponse};
pub use query::{TradeQuery, TradeQueryResponse};
pub use refund::{TradeRefund, TradeRefundResponse};
pub use refund_query::{RefundQueryResponse, TradeFastpayRefundQuery};
pub use wap_pay::TradeWapPay;

/// An Alipay API: its method name, `biz_content` and typed answer.
pub trait AlipayApi {
    type Response: DeserializeOwned;

    fn method(&self) -> &str;

    /// The `biz_content` JSON text.
    fn biz_content(&self) -> Result<String, AlipayError>;

    /// Codes that are an answer rather than an error (barcode pay adds 10003, "waiting").
    fn accepted_codes(&self) -> &'static [&'static str] {
        &["10000"]
    }

    /// Whether sending the request twice is harmless.
    fn idempotent(&self) -> bool {
        false
    }

    /// Fund APIs (transfers and their queries): Alipay accepts them only from apps in
    /// certificate mode ("资金类接口必须使用公钥证书").
    fn requires_cert_mode(&self) -> bool {
        false
    }
}

/// Implements [`AlipayApi`] for a request whose `biz_content` is its serde form.
macro_rules! alipay_api {
    ($ty:ty, $method:literal, $resp:ty) => {
        alipay_api!($ty, $method, $resp, idempotent = false);
    };
    ($ty:ty, $method:literal, $resp:ty, idempotent = $idem:expr) => {
        impl $crate::api::AlipayApi for $ty {
            type Response = $resp;

            fn method(&self) -> &str {
                $method
            }

            fn biz_content(&self) -> Result<String, $crate::AlipayError> {
                $crate::api::to_biz_content(self)
            }

            fn idempotent(&self) -> bool {
                $idem
            }
        }
    };
}
pub(crate) use alipay_api;

/// The order fields every payment-opening API shares.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OrderInfo {
    pub out_trade_no: String,
    #[serde(with = "yuan")]
    pub total_amount: paybridge_core::Fen,
    pub subject: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    /// Beijing `yyyy-MM-dd HH:mm:ss`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub time_expire: Option<String>,
    /// Echoed back in the notification.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub passback_params: Option<String>,
}

impl OrderInfo {
    pub fn new(
        out_trade_no: impl Into<String>,
        total_amount: paybridge_core::Fen,
        subject: impl Into<String>,
    ) -> Self {
        OrderInfo {
            out_trade_no: out_trade_no.into(),
            total_amount,
            subject: subject.into(),
            body: None,
            time_expire: None,
            passback_params: None,
        }
    }
}

/// Names an existing trade by the merchant's number or Alipay's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TradeRef {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub out_trade_no: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trade_no: Option<String>,
}

impl TradeRef {
    pub fn out_trade_no(no: impl Into<String>) -> Self {
        TradeRef {
            out_trade_no: Some(no.into()),
            trade_no: None,
        }
    }

    pub fn trade_no(no: impl Into<String>) -> Self {
        TradeRef {
            out_trade_no: None,
            trade_no: Some(no.into()),
        }
    }
}

/// `biz_content` of a serialisable request (absent options are left out, never sent empty).
pub fn to_biz_content<T: Serialize>(value: &T) -> Result<String, AlipayError> {
    serde_json::to_string(value).map_err(|e| AlipayError::InvalidRequest(e.to_string()))
}

/// Builds and signs `req`.
pub fn prepare<A: AlipayApi>(
    config: &AlipayConfig,
    req: &A,
    opts: &CallOptions,
    now_unix: i64,
) -> Result<SignedRequest, AlipayError> {
    if req.requires_cert_mode() && config.keys.app_cert_sn.is_none() {
        return Err(AlipayError::CertModeRequired {
            method: req.method().to_string(),
        });
    }
    let biz = req.biz_content()?;
    let mut signed = build_request(config, req.method(), Some(&biz), opts, now_unix)?;
    signed.idempotent = req.idempotent();
    Ok(signed)
}

/// Verifies a raw response to `req` and reads its typed answer.
pub fn parse<A: AlipayApi>(
    config: &AlipayConfig,
    req: &A,
    raw: &str,
) -> Result<A::Response, AlipayError> {
    let method = req.method();
    let node = open_response(config, method, raw)?;
    let node = check_code(method, node, req.accepted_codes())?;
    serde_json::from_value(node).map_err(|e| AlipayError::MalformedResponse {
        method: method.to_string(),
        reason: e.to_string(),
    })
}

/// Yuan strings on the wire, [`paybridge_core::Fen`] in Rust.
pub(crate) mod yuan {
    use paybridge_core::Fen;
    use serde::{de::Error, Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(f: &Fen, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&f.to_yuan())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Fen, D::Error> {
        let s = String::deserialize(d)?;
        Fen::parse_yuan(&s).map_err(D::Error::custom)
    }
}

/// Optional yuan amounts: absent or empty is `None`.
pub(crate) mod opt_yuan {
    use paybridge_core::Fen;
    use serde::{de::Error, Deserialize, Deserializer};

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Fen>, D::Error> {
        match Option::<String>::deserialize(d)? {
            None => Ok(None),
            Some(s) if s.is_empty() => Ok(None),
            Some(s) => Fen::parse_yuan(&s).map(Some).map_err(D::Error::custom),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
pub(crate) mod testutil {
    use std::sync::OnceLock;

    use paybridge_crypto::{generate_rsa_private_key_pkcs8, RsaPrivateKey};

    use crate::config::{AlipayConfig, AlipayKeys};
    use crate::provider::signed_method_response;
    use crate::request::SignedRequest;
    use crate::sign::{verify_params, REQUEST_EXCLUDED};

    /// 2026-11-26 20:00:00 Beijing.
    pub const NOW: i64 = 1_795_694_400;

    fn ders() -> &'static (Vec<u8>, Vec<u8>) {
        static KEYS: OnceLock<(Vec<u8>, Vec<u8>)> = OnceLock::new();
        KEYS.get_or_init(|| {
            (
                generate_rsa_private_key_pkcs8().unwrap(),
                generate_rsa_private_key_pkcs8().unwrap(),
            )
        })
    }

    /// A config whose Alipay public key is the public half of the returned key.
    pub fn test_config() -> (AlipayConfig, RsaPrivateKey) {
        let (app, alipay) = ders();
        let app_b64 = paybridge_crypto::b64_encode(app);
        let alipay_key = RsaPrivateKey::from_der(alipay).unwrap();
        let alipay_pub = alipay_key.public_key().unwrap().to_base64();
        let keys = AlipayKeys::public_key_mode(&app_b64, &alipay_pub).unwrap();
        let config = AlipayConfig::new("2021000000000001", keys)
            .with_gateway("https://gw.example/gateway.do");
        (config, alipay_key)
    }

    /// A certificate-mode config (app `2021000000000002`, certificates issued here) whose
    /// Alipay certificate holds the public half of the returned key.
    pub fn cert_config() -> (AlipayConfig, RsaPrivateKey) {
        use paybridge_crypto::{issue_rsa_cert, self_signed_rsa_cert, CertSpec};
        let (app, alipay) = ders();
        let root_key = RsaPrivateKey::from_der(app).unwrap();
        let spec = |cn: &str, serial: u8, ca: bool| CertSpec {
            common_name: cn.into(),
            organization: Some("Ant Financial".into()),
            organizational_unit: Some("Certification Authority".into()),
            country: Some("CN".into()),
            serial: vec![0x40, serial],
            not_before_unix: NOW - 86_400,
            not_after_unix: NOW + 86_400 * 365,
            is_ca: ca,
        };
        let root_spec = spec("Test Root", 1, true);
        let root = self_signed_rsa_cert(&root_key, &root_spec).unwrap();
        let app_key = RsaPrivateKey::from_der(app).unwrap();
        let alipay_key = RsaPrivateKey::from_der(alipay).unwrap();
        let app_cert =
            issue_rsa_cert(&app_key, &spec("app", 2, false), &root_key, &root_spec).unwrap();
        let alipay_cert = issue_rsa_cert(
            &alipay_key,
            &spec("alipay", 3, false),
            &root_key,
            &root_spec,
        )
        .unwrap();
        let keys = AlipayKeys::cert_mode(
            &paybridge_crypto::b64_encode(app),
            &app_cert.pem,
            &[&alipay_cert.pem],
            &root.pem,
        )
        .unwrap();
        (
            AlipayConfig::new("2021000000000002", keys)
                .with_gateway("https://gw.example/gateway.do"),
            alipay_key,
        )
    }

    /// Asserts the golden string-to-sign and that the signature verifies with the app key.
    pub fn assert_signed(config: &AlipayConfig, req: &SignedRequest, expected: &str) {
        assert_eq!(req.string_to_sign, expected);
        let public = config.keys.app_key.public_key().unwrap();
        assert!(verify_params(
            req.params.iter().map(|(k, v)| (k.as_str(), v.as_str())),
            REQUEST_EXCLUDED,
            &public
        ));
    }

    /// A response as Alipay would send it, signed by the test Alipay key.
    pub fn respond(alipay: &RsaPrivateKey, method: &str, content: &str) -> String {
        signed_method_response(method, content, alipay, None).unwrap()
    }

    /// Signs `req` and checks its golden string-to-sign; returns the config and Alipay key.
    pub fn wire<A: crate::api::AlipayApi>(
        req: &A,
        opts: &crate::request::CallOptions,
        expected: &str,
    ) -> (AlipayConfig, RsaPrivateKey, SignedRequest) {
        let (config, alipay) = test_config();
        let signed = crate::api::prepare(&config, req, opts, NOW).unwrap();
        assert_signed(&config, &signed, expected);
        (config, alipay, signed)
    }

    /// Parses `content` as the signed answer to `req`.
    pub fn answer<A: crate::api::AlipayApi>(
        config: &AlipayConfig,
        alipay: &RsaPrivateKey,
        req: &A,
        content: &str,
    ) -> Result<A::Response, crate::AlipayError> {
        crate::api::parse(config, req, &respond(alipay, req.method(), content))
    }

    /// The sub_code of a gateway error, panicking on anything else.
    pub fn sub_code<T: std::fmt::Debug>(r: Result<T, crate::AlipayError>) -> String {
        match r {
            Err(crate::AlipayError::Gateway(e)) => e.sub_code,
            other => panic!("expected a gateway error, got {other:?}"),
        }
    }

    /// The common prefix/suffix of every golden string in these tests.
    pub fn golden(method: &str, biz: &str, extra_before: &str, extra_after: &str) -> String {
        format!(
            "app_id=2021000000000001&biz_content={biz}&charset=utf-8&format=JSON&method={method}\
             {extra_before}&sign_type=RSA2&timestamp=2026-11-26 20:00:00{extra_after}&version=1.0"
        )
    }
}
