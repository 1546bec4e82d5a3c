//! paybridge-crypto: every cryptographic operation paybridge performs, in one place.
//!
//! RSA, AES-GCM and randomness come from aws-lc-rs; AES-CBC/ECB (the legacy Alipay and WeChat v2
//! schemes) from RustCrypto; X.509 parsing from `x509-cert`. Callers never see those crates.

mod certgen;
mod digest;
mod error;
mod inspect;
mod keys;
mod p12;
mod password;
mod pem;
mod secret;
mod sym;
mod x509;

pub use certgen::{issue_rsa_cert, self_signed_rsa_cert, CertSpec, GeneratedCert};
pub use digest::{
    constant_time_eq, hmac_sha256, md5, md5_hex, random_bytes, random_string, sha1_hex, sha256,
    Sha1Stream, Sha256Stream,
};
pub use error::CryptoError;
pub use inspect::{inspect_key_text, Armor, KeyMaterial};
pub use keys::{generate_rsa_private_key_pkcs8, RsaPrivateKey, RsaPublicKey};
pub use p12::{pkcs12_identity, write_pkcs12, Pkcs12Identity};
pub use password::{hash_password, verify_password};
pub use pem::{decode_pem_blocks, encode_pem, PemBlock};
pub use secret::Secret;
pub use sym::{
    aes_cbc_zero_iv_decrypt, aes_cbc_zero_iv_encrypt, aes_ecb_pkcs7_decrypt, aes_ecb_pkcs7_encrypt,
    aes_gcm_decrypt, aes_gcm_encrypt,
};
pub use x509::Certificate;

/// Standard base64 with padding, the encoding both providers use for signatures.
pub fn b64_encode(data: impl AsRef<[u8]>) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(data)
}

/// Decodes standard base64, ignoring ASCII whitespace (console keys are often wrapped).
pub fn b64_decode(text: &str) -> Result<Vec<u8>, CryptoError> {
    use base64::Engine;
    let compact: String = text.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    base64::engine::general_purpose::STANDARD
        .decode(compact.as_bytes())
        .map_err(|e| CryptoError::Base64(e.to_string()))
}
