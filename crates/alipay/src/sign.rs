//! The string-to-sign rule shared by requests and notifications, RSA2 signing, and the
//! `encrypt_type=AES` content encryption.

use paybridge_crypto::{
    aes_cbc_zero_iv_decrypt, aes_cbc_zero_iv_encrypt, b64_decode, b64_encode, RsaPrivateKey,
    RsaPublicKey,
};

use crate::{AesKey, AlipayError};

/// Fields never signed by a request (and by a V2 notification).
pub const REQUEST_EXCLUDED: &[&str] = &["sign"];
/// Fields a V1 (trade) notification leaves out of the signature.
pub const NOTIFY_V1_EXCLUDED: &[&str] = &["sign", "sign_type"];

/// `k=v&k=v` over every pair whose key is not in `exclude` and whose value is non-empty, keys
/// sorted bytewise, values raw (not URL-encoded).
pub fn string_to_sign<'a, I>(params: I, exclude: &[&str]) -> String
where
    I: IntoIterator<Item = (&'a str, &'a str)>,
{
    join_sorted(params.into_iter().filter(|(_, v)| !v.is_empty()), exclude)
}

/// As [`string_to_sign`] but with empty values kept as `k=`: how the python, npm and PHP SDKs
/// build the string a notification may have been signed over.
pub fn string_to_sign_keeping_empty<'a, I>(params: I, exclude: &[&str]) -> String
where
    I: IntoIterator<Item = (&'a str, &'a str)>,
{
    join_sorted(params, exclude)
}

fn join_sorted<'a, I>(params: I, exclude: &[&str]) -> String
where
    I: IntoIterator<Item = (&'a str, &'a str)>,
{
    let mut pairs: Vec<(&str, &str)> = params
        .into_iter()
        .filter(|(k, _)| !exclude.contains(k))
        .collect();
    pairs.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
    let mut out = String::with_capacity(pairs.iter().map(|(k, v)| k.len() + v.len() + 2).sum());
    for (i, (k, v)) in pairs.iter().enumerate() {
        if i > 0 {
            out.push('&');
        }
        out.push_str(k);
        out.push('=');
        out.push_str(v);
    }
    out
}

/// RSA2 (SHA256withRSA, PKCS#1 v1.5) over the UTF-8 bytes, base64.
pub fn rsa2_sign(key: &RsaPrivateKey, content: &str) -> Result<String, AlipayError> {
    Ok(key.sign_sha256_base64(content.as_bytes())?)
}

/// Verifies an RSA2 signature; malformed base64 is simply "does not verify".
pub fn rsa2_verify(key: &RsaPublicKey, content: &str, sign_b64: &str) -> bool {
    key.verify_sha256_base64(content.as_bytes(), sign_b64.trim())
}

/// Signs request parameters: returns `(string_to_sign, sign)`.
pub fn sign_params<'a, I>(params: I, key: &RsaPrivateKey) -> Result<(String, String), AlipayError>
where
    I: IntoIterator<Item = (&'a str, &'a str)>,
{
    let content = string_to_sign(params, REQUEST_EXCLUDED);
    let sign = rsa2_sign(key, &content)?;
    Ok((content, sign))
}

/// Checks the `sign` of a parameter set under `exclude` (request: `["sign"]`).
pub fn verify_params<'a, I>(params: I, exclude: &[&str], key: &RsaPublicKey) -> bool
where
    I: IntoIterator<Item = (&'a str, &'a str)> + Clone,
{
    let Some(sign) = params
        .clone()
        .into_iter()
        .find(|(k, _)| *k == "sign")
        .map(|(_, v)| v)
    else {
        return false;
    };
    rsa2_verify(key, &string_to_sign(params, exclude), sign)
}

/// AES-CBC (zero IV, PKCS#7) then base64: the `biz_content` of an `encrypt_type=AES` request.
pub fn encrypt_content(key: &AesKey, plaintext: &str) -> Result<String, AlipayError> {
    Ok(b64_encode(aes_cbc_zero_iv_encrypt(
        key.bytes(),
        plaintext.as_bytes(),
    )?))
}

/// The inverse of [`encrypt_content`]: an encrypted response node (without its quotes).
pub fn decrypt_content(key: &AesKey, ciphertext_b64: &str) -> Result<String, AlipayError> {
    let plain = aes_cbc_zero_iv_decrypt(key.bytes(), &b64_decode(ciphertext_b64)?)?;
    String::from_utf8(plain)
        .map_err(|_| AlipayError::InvalidRequest("decrypted content is not UTF-8".into()))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn drops_empty_and_excluded_sorts_bytewise() {
        let p = [
            ("b", "2"),
            ("sign", "x"),
            ("a", ""),
            ("B", "1"),
            ("a_b", "3"),
            ("sign_type", "RSA2"),
        ];
        assert_eq!(
            string_to_sign(p, REQUEST_EXCLUDED),
            "B=1&a_b=3&b=2&sign_type=RSA2"
        );
        assert_eq!(string_to_sign(p, NOTIFY_V1_EXCLUDED), "B=1&a_b=3&b=2");
    }

    #[test]
    fn sign_then_verify() {
        let der = paybridge_crypto::generate_rsa_private_key_pkcs8().unwrap();
        let key = RsaPrivateKey::from_der(&der).unwrap();
        let mut params = vec![("app_id", "1"), ("method", "alipay.trade.query")];
        let (content, sign) = sign_params(params.clone(), &key).unwrap();
        assert_eq!(content, "app_id=1&method=alipay.trade.query");
        params.push(("sign", &sign));
        let public = key.public_key().unwrap();
        assert!(verify_params(params.clone(), REQUEST_EXCLUDED, &public));
        params[0] = ("app_id", "2");
        assert!(!verify_params(params, REQUEST_EXCLUDED, &public));
    }
}
