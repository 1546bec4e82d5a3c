use paybridge_crypto::CryptoError;
use paybridge_http::TransportError;

/// How a gateway `code`/`sub_code` should be handled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GatewayErrorKind {
    /// Alipay was unavailable or hit an internal error; the same request may be sent again.
    RetrySafe,
    /// A definite business answer (40004 with a `sub_code`): do not retry blindly.
    Refused,
    /// Our side is misconfigured (40001/40002/20001/40006, bad signature, wrong app id...).
    Configuration,
}

/// A non-success answer from the gateway (`code` other than 10000).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("alipay {method} answered {code} {msg} ({sub_code}: {sub_msg})")]
pub struct GatewayError {
    pub method: String,
    pub code: String,
    pub msg: String,
    pub sub_code: String,
    pub sub_msg: String,
    /// False when the error response carried no signature (Alipay omits it for some gateway
    /// errors); an unsigned refusal proves nothing about the order.
    pub signed: bool,
}

impl GatewayError {
    pub fn kind(&self) -> GatewayErrorKind {
        classify(&self.code, &self.sub_code)
    }

    pub fn retry_safe(&self) -> bool {
        self.kind() == GatewayErrorKind::RetrySafe
    }
}

/// Maps `code`/`sub_code` to a handling class. Unknown codes count as refusals: a retry would
/// not change a definite answer, and nothing is assumed to have succeeded.
pub fn classify(code: &str, sub_code: &str) -> GatewayErrorKind {
    match code {
        "20000" => GatewayErrorKind::RetrySafe,
        "20001" | "40001" | "40002" | "40003" | "40006" => GatewayErrorKind::Configuration,
        _ => match sub_code {
            // Fund APIs answer SYSTEM_ERROR without the ACQ. prefix ("可以考虑采用相同的
            // out_biz_no重发请求").
            "ACQ.SYSTEM_ERROR" | "SYSTEM_ERROR" | "isp.unknow-error" | "aop.unknow-error" => {
                GatewayErrorKind::RetrySafe
            }
            s if s.starts_with("isv.invalid-signature")
                || s.starts_with("isv.invalid-app-id")
                || s.starts_with("isv.missing-signature")
                || s.starts_with("isv.invalid-encrypt")
                || s.starts_with("isv.insufficient-isv-permissions")
                || s == "ACQ.INVALID_PARAMETER"
                || s == "ACQ.ACCESS_FORBIDDEN"
                || s == "ACQ.PARTNER_ERROR" =>
            {
                GatewayErrorKind::Configuration
            }
            _ => GatewayErrorKind::Refused,
        },
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AlipayError {
    #[error("key material: {0}")]
    Key(String),
    #[error(transparent)]
    Crypto(#[from] CryptoError),
    #[error(transparent)]
    Transport(#[from] TransportError),
    #[error("alipay answered HTTP {status} for {method}")]
    HttpStatus { method: String, status: u16 },
    #[error("malformed response to {method}: {reason}")]
    MalformedResponse { method: String, reason: String },
    #[error("response signature of {method} does not verify")]
    BadResponseSignature { method: String },
    #[error("response of {method} names alipay_cert_sn {sn}, which is not loaded")]
    UnknownCertSn { method: String, sn: String },
    #[error("Alipay certificate {sn} handed out by alipay.open.app.alipaycert.download: {source}")]
    CertNotTrusted {
        sn: String,
        source: crate::cert_mode::CertTrustError,
    },
    #[error(transparent)]
    Gateway(Box<GatewayError>),
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    /// A fund API (transfer, its query, the balance) on an app in public-key mode: Alipay
    /// refuses those (`isv.missing-app-cert-sn`), so the configuration must change.
    #[error(
        "alipay {method} is a fund API: Alipay accepts it only in certificate mode; configure \
         the app certificate, the Alipay public certificate and the root certificate"
    )]
    CertModeRequired { method: String },
    #[error("malformed notification: {0}")]
    MalformedNotify(String),
    #[error("bill: {0}")]
    Bill(String),
}

impl From<GatewayError> for AlipayError {
    fn from(e: GatewayError) -> Self {
        AlipayError::Gateway(Box::new(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classification() {
        assert_eq!(
            classify("20000", "isp.unknow-error"),
            GatewayErrorKind::RetrySafe
        );
        assert_eq!(
            classify("40004", "ACQ.SYSTEM_ERROR"),
            GatewayErrorKind::RetrySafe
        );
        assert_eq!(
            classify("40004", "ACQ.TRADE_NOT_EXIST"),
            GatewayErrorKind::Refused
        );
        assert_eq!(
            classify("40004", "ACQ.TRADE_STATUS_ERROR"),
            GatewayErrorKind::Refused
        );
        assert_eq!(
            classify("40002", "isv.invalid-signature"),
            GatewayErrorKind::Configuration
        );
        assert_eq!(
            classify("40001", "isv.missing-method"),
            GatewayErrorKind::Configuration
        );
        assert_eq!(
            classify("40004", "isv.invalid-signature"),
            GatewayErrorKind::Configuration
        );
    }
}
