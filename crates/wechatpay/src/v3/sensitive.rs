//! Sensitive request fields (names, ID numbers) travel RSA-OAEP encrypted (SHA-1, MGF1-SHA-1)
//! under the platform key; the request then carries `Wechatpay-Serial` naming that key.

use paybridge_crypto::{b64_decode, b64_encode, CryptoError, RsaPrivateKey, RsaPublicKey};

/// Encrypts a field value for WeChat Pay, base64.
pub fn encrypt(platform_key: &RsaPublicKey, plaintext: &str) -> Result<String, CryptoError> {
    platform_key
        .encrypt_oaep_sha1(plaintext.as_bytes())
        .map(b64_encode)
}

/// Decrypts a field WeChat Pay encrypted with the merchant key (e.g. in query responses).
pub fn decrypt(merchant_key: &RsaPrivateKey, ciphertext_b64: &str) -> Result<String, CryptoError> {
    let pt = merchant_key.decrypt_oaep_sha1(&b64_decode(ciphertext_b64)?)?;
    String::from_utf8(pt).map_err(|_| CryptoError::Rsa("plaintext is not UTF-8".into()))
}
