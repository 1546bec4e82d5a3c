//! APIv3 request signatures and the `Authorization` header.

use paybridge_crypto::{CryptoError, RsaPrivateKey};

/// The only schema WeChat Pay defines for merchant requests.
pub const SCHEMA: &str = "WECHATPAY2-SHA256-RSA2048";

/// `METHOD\nPATH_WITH_QUERY\nTIMESTAMP\nNONCE\nBODY\n`: always five line feeds, also for an
/// empty body or one that already ends in `\n`.
pub fn request_message(
    method: &str,
    url: &str,
    timestamp: &str,
    nonce: &str,
    body: &str,
) -> String {
    let mut m = String::with_capacity(method.len() + url.len() + body.len() + 64);
    for part in [method, url, timestamp, nonce, body] {
        m.push_str(part);
        m.push('\n');
    }
    m
}

/// [`request_message`] over a raw body (the provider side verifies bytes as received).
pub fn request_message_bytes(
    method: &str,
    url: &str,
    timestamp: &str,
    nonce: &str,
    body: &[u8],
) -> Vec<u8> {
    let mut m = Vec::with_capacity(method.len() + url.len() + body.len() + 64);
    for part in [
        method.as_bytes(),
        url.as_bytes(),
        timestamp.as_bytes(),
        nonce.as_bytes(),
        body,
    ] {
        m.extend_from_slice(part);
        m.push(b'\n');
    }
    m
}

/// The `Authorization` header value, fields in the order the official SDKs write them.
pub fn authorization_header(
    schema: &str,
    mchid: &str,
    nonce: &str,
    timestamp: &str,
    serial_no: &str,
    signature: &str,
) -> String {
    format!(
        "{schema} mchid=\"{mchid}\",nonce_str=\"{nonce}\",timestamp=\"{timestamp}\",serial_no=\"{serial_no}\",signature=\"{signature}\""
    )
}

/// A request signature with everything that went into it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedRequest {
    pub message: String,
    pub signature: String,
    pub authorization: String,
}

/// The merchant's signing identity: `mchid`, its API certificate serial and private key.
pub struct MerchantSigner {
    pub mchid: String,
    /// Merchant API certificate serial, hex.
    pub serial_no: String,
    key: RsaPrivateKey,
}

impl std::fmt::Debug for MerchantSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "MerchantSigner(mchid={}, serial_no={})",
            self.mchid, self.serial_no
        )
    }
}

impl MerchantSigner {
    pub fn new(mchid: impl Into<String>, serial_no: impl Into<String>, key: RsaPrivateKey) -> Self {
        MerchantSigner {
            mchid: mchid.into(),
            serial_no: serial_no.into(),
            key,
        }
    }

    pub fn private_key(&self) -> &RsaPrivateKey {
        &self.key
    }

    /// SHA256withRSA over `message`, base64.
    pub fn sign(&self, message: &str) -> Result<String, CryptoError> {
        self.key.sign_sha256_base64(message.as_bytes())
    }

    pub fn sign_request(
        &self,
        method: &str,
        url: &str,
        body: &str,
        timestamp: &str,
        nonce: &str,
    ) -> Result<SignedRequest, CryptoError> {
        let message = request_message(method, url, timestamp, nonce, body);
        let signature = self.sign(&message)?;
        let authorization = authorization_header(
            SCHEMA,
            &self.mchid,
            nonce,
            timestamp,
            &self.serial_no,
            &signature,
        );
        Ok(SignedRequest {
            message,
            signature,
            authorization,
        })
    }
}

/// The fields of an `Authorization` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthorizationParts {
    pub schema: String,
    pub mchid: String,
    pub nonce_str: String,
    pub timestamp: String,
    pub serial_no: String,
    pub signature: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthorizationError {
    #[error("Authorization header has no schema")]
    NoSchema,
    #[error("unsupported Authorization schema {0:?}")]
    Schema(String),
    #[error("malformed Authorization header near byte {0}")]
    Syntax(usize),
    #[error("Authorization field {0} repeated")]
    Duplicate(String),
    #[error("Authorization lacks {0}")]
    Missing(&'static str),
}

/// Parses `SCHEMA k="v",k="v",...` with the fields in any order (SDKs differ), spaces allowed
/// after commas; unknown fields are ignored, repeated known ones refused.
pub fn parse_authorization(header: &str) -> Result<AuthorizationParts, AuthorizationError> {
    let header = header.trim();
    let (schema, rest) = header.split_once(' ').ok_or(AuthorizationError::NoSchema)?;
    if schema != SCHEMA {
        return Err(AuthorizationError::Schema(schema.to_string()));
    }
    let mut found: [Option<&str>; 5] = [None; 5];
    const NAMES: [&str; 5] = ["mchid", "nonce_str", "timestamp", "serial_no", "signature"];
    let bytes = rest.as_bytes();
    let mut i = 0;
    let offset = schema.len() + 1;
    loop {
        while i < bytes.len() && (bytes[i] == b' ' || bytes[i] == b',') {
            i += 1;
        }
        if i >= bytes.len() {
            break;
        }
        let key_start = i;
        while i < bytes.len() && bytes[i] != b'=' {
            i += 1;
        }
        let key = rest
            .get(key_start..i)
            .ok_or(AuthorizationError::Syntax(offset + i))?
            .trim();
        // `="`
        if rest.get(i..i + 2) != Some("=\"") {
            return Err(AuthorizationError::Syntax(offset + i));
        }
        i += 2;
        let value_start = i;
        while i < bytes.len() && bytes[i] != b'"' {
            i += 1;
        }
        if i >= bytes.len() {
            return Err(AuthorizationError::Syntax(offset + i));
        }
        let value = rest
            .get(value_start..i)
            .ok_or(AuthorizationError::Syntax(offset + i))?;
        i += 1;
        if let Some(pos) = NAMES.iter().position(|n| *n == key) {
            if let Some(slot) = found.get_mut(pos) {
                if slot.is_some() {
                    return Err(AuthorizationError::Duplicate(key.to_string()));
                }
                *slot = Some(value);
            }
        }
    }
    let get =
        |idx: usize| -> Result<String, AuthorizationError> {
            found.get(idx).copied().flatten().map(str::to_string).ok_or(
                AuthorizationError::Missing(NAMES.get(idx).copied().unwrap_or("field")),
            )
        };
    Ok(AuthorizationParts {
        schema: schema.to_string(),
        mchid: get(0)?,
        nonce_str: get(1)?,
        timestamp: get(2)?,
        serial_no: get(3)?,
        signature: get(4)?,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn authorization_parses_in_any_order() {
        let h = authorization_header(SCHEMA, "1", "abc", "2", "SER", "c2ln+/=");
        let p = parse_authorization(&h).unwrap();
        assert_eq!(
            (p.mchid.as_str(), p.signature.as_str(), p.serial_no.as_str()),
            ("1", "c2ln+/=", "SER")
        );
        let shuffled = format!("{SCHEMA} signature=\"s\", serial_no=\"X\",timestamp=\"9\", extra=\"e\",nonce_str=\"n\",mchid=\"m\"");
        let p = parse_authorization(&shuffled).unwrap();
        assert_eq!(
            (p.mchid.as_str(), p.timestamp.as_str(), p.signature.as_str()),
            ("m", "9", "s")
        );
        assert!(matches!(
            parse_authorization("Basic x"),
            Err(AuthorizationError::Schema(_))
        ));
        assert!(matches!(
            parse_authorization(&format!("{SCHEMA} mchid=\"1")),
            Err(AuthorizationError::Syntax(_))
        ));
        assert!(matches!(
            parse_authorization(&format!("{SCHEMA} mchid=\"1\"")),
            Err(AuthorizationError::Missing("nonce_str"))
        ));
        assert!(matches!(
            parse_authorization(&format!("{SCHEMA} mchid=\"1\",mchid=\"2\"")),
            Err(AuthorizationError::Duplicate(_))
        ));
    }
}
