//! APIv2 signatures: MD5 or HMAC-SHA256 over `k=v&...&key=API_KEY`, uppercase hex.

use paybridge_crypto::{constant_time_eq, hmac_sha256, md5};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum SignType {
    #[default]
    Md5,
    HmacSha256,
}

impl SignType {
    pub fn as_str(self) -> &'static str {
        match self {
            SignType::Md5 => "MD5",
            SignType::HmacSha256 => "HMAC-SHA256",
        }
    }

    pub fn parse(s: &str) -> Option<SignType> {
        match s {
            "MD5" => Some(SignType::Md5),
            "HMAC-SHA256" => Some(SignType::HmacSha256),
            _ => None,
        }
    }

    /// The algorithm a received document was signed with: its `sign_type` field when present
    /// (it is itself covered by the signature), otherwise by the length of `sign`
    /// (32 hex digits = MD5, 64 = HMAC-SHA256), which is how replies without `sign_type` are told
    /// apart. `None` when neither says anything usable.
    pub fn detect<'a>(fields: impl IntoIterator<Item = (&'a str, &'a str)>) -> Option<SignType> {
        let mut sign_len = None;
        for (k, v) in fields {
            match k {
                "sign_type" if !v.is_empty() => return SignType::parse(v),
                "sign" => sign_len = Some(v.len()),
                _ => {}
            }
        }
        match sign_len {
            Some(32) => Some(SignType::Md5),
            Some(64) => Some(SignType::HmacSha256),
            _ => None,
        }
    }
}

impl std::str::FromStr for SignType {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        SignType::parse(s).ok_or_else(|| format!("unknown sign type {s:?} (MD5 or HMAC-SHA256)"))
    }
}

/// `stringA`: every non-empty field except `sign`, sorted by name (byte order), `k=v` joined by
/// `&`, values raw (no URL encoding).
pub fn string_a<'a>(fields: impl IntoIterator<Item = (&'a str, &'a str)>) -> String {
    let mut pairs: Vec<(&str, &str)> = fields
        .into_iter()
        .filter(|(k, v)| !v.is_empty() && *k != "sign")
        .collect();
    pairs.sort_unstable_by(|a, b| a.0.cmp(b.0));
    let mut out = String::new();
    for (k, v) in pairs {
        if !out.is_empty() {
            out.push('&');
        }
        out.push_str(k);
        out.push('=');
        out.push_str(v);
    }
    out
}

/// `stringA&key=API_KEY`, the exact bytes that are hashed.
pub fn string_to_sign<'a>(
    fields: impl IntoIterator<Item = (&'a str, &'a str)>,
    key: &str,
) -> String {
    let mut s = string_a(fields);
    s.push_str("&key=");
    s.push_str(key);
    s
}

/// Signs an already built string-to-sign.
pub fn sign_string(string_to_sign: &str, key: &str, sign_type: SignType) -> String {
    match sign_type {
        SignType::Md5 => upper_hex(&md5(string_to_sign.as_bytes())),
        SignType::HmacSha256 => upper_hex(&hmac_sha256(key.as_bytes(), string_to_sign.as_bytes())),
    }
}

pub fn sign<'a>(
    fields: impl IntoIterator<Item = (&'a str, &'a str)>,
    key: &str,
    sign_type: SignType,
) -> String {
    sign_string(&string_to_sign(fields, key), key, sign_type)
}

/// Verifies `sign` (case-insensitively: some SDKs lowercase hex) in constant time.
pub fn verify<'a>(
    fields: impl IntoIterator<Item = (&'a str, &'a str)>,
    key: &str,
    sign_type: SignType,
    sign: &str,
) -> bool {
    let expected = self::sign(fields, key, sign_type);
    constant_time_eq(expected.as_bytes(), sign.to_ascii_uppercase().as_bytes())
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignError {
    #[error("no sign field")]
    Missing,
    #[error("unsupported sign_type {0:?}")]
    UnknownType(String),
    #[error("signature mismatch ({0})")]
    Mismatch(&'static str),
    #[error(
        "field {0:?} holds a separator: the signed string would not split back into these fields"
    )]
    Ambiguous(String),
}

/// Refuses a field list whose `stringA` could be split into other fields: values are joined
/// raw, so a `&` in one (merchant text such as `attach` or `body`, echoed in notifications)
/// lets a genuine signature be re-split to name another order or amount. For notifications
/// only: some replies carry URLs with `&` (`mweb_url`) and are not re-split by anyone.
pub fn refuse_ambiguous(fields: &[(String, String)]) -> Result<(), SignError> {
    match fields
        .iter()
        .find(|(k, v)| k.contains(['&', '=']) || (k != "sign" && v.contains('&')))
    {
        Some((k, _)) => Err(SignError::Ambiguous(k.clone())),
        None => Ok(()),
    }
}

/// Verifies a received field list (every field but `sign` is covered, unknown ones included),
/// detecting the algorithm with [`SignType::detect`]. Returns the algorithm that matched.
pub fn verify_fields(fields: &[(String, String)], key: &str) -> Result<SignType, SignError> {
    let iter = || fields.iter().map(|(k, v)| (k.as_str(), v.as_str()));
    let sign = iter()
        .find(|(k, _)| *k == "sign")
        .map(|(_, v)| v)
        .filter(|v| !v.is_empty())
        .ok_or(SignError::Missing)?;
    let sign_type = match SignType::detect(iter()) {
        Some(t) => t,
        None => {
            let declared = iter().find(|(k, _)| *k == "sign_type").map(|(_, v)| v);
            return Err(SignError::UnknownType(declared.unwrap_or(sign).to_string()));
        }
    };
    if verify(iter(), key, sign_type, sign) {
        Ok(sign_type)
    } else {
        Err(SignError::Mismatch(sign_type.as_str()))
    }
}

fn upper_hex(bytes: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(HEX[usize::from(b >> 4)] as char);
        s.push(HEX[usize::from(b & 15)] as char);
    }
    s
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn verify_detects_algorithm_and_covers_unknown_fields() {
        let mut fields = vec![
            ("appid".to_string(), "wx1".to_string()),
            ("zz_new".to_string(), "later".to_string()),
        ];
        let key = "k";
        let s = sign(
            fields.iter().map(|(a, b)| (a.as_str(), b.as_str())),
            key,
            SignType::HmacSha256,
        );
        fields.push(("sign".into(), s.to_ascii_lowercase()));
        assert_eq!(verify_fields(&fields, key), Ok(SignType::HmacSha256));
        fields[1].1 = "tampered".into();
        assert_eq!(
            verify_fields(&fields, key),
            Err(SignError::Mismatch("HMAC-SHA256"))
        );
        fields.push(("sign_type".into(), "SHA1".into()));
        assert!(matches!(
            verify_fields(&fields, key),
            Err(SignError::UnknownType(_))
        ));
        assert_eq!(verify_fields(&[], key), Err(SignError::Missing));
    }
}
