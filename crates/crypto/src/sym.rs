use aes::cipher::{block_padding::Pkcs7, BlockDecryptMut, BlockEncryptMut, KeyInit, KeyIvInit};
use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_128_GCM, AES_256_GCM};

use crate::CryptoError;

const ZERO_IV: [u8; 16] = [0u8; 16];

/// AES-CBC with an all-zero IV and PKCS#7 padding: Alipay's `encrypt_type=AES`.
/// The key length (16/24/32 bytes) selects AES-128/192/256.
pub fn aes_cbc_zero_iv_encrypt(key: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, CryptoError> {
    Ok(match key.len() {
        16 => cbc::Encryptor::<aes::Aes128>::new_from_slices(key, &ZERO_IV)
            .map_err(|e| CryptoError::cipher("AES-CBC", e.to_string()))?
            .encrypt_padded_vec_mut::<Pkcs7>(plaintext),
        24 => cbc::Encryptor::<aes::Aes192>::new_from_slices(key, &ZERO_IV)
            .map_err(|e| CryptoError::cipher("AES-CBC", e.to_string()))?
            .encrypt_padded_vec_mut::<Pkcs7>(plaintext),
        32 => cbc::Encryptor::<aes::Aes256>::new_from_slices(key, &ZERO_IV)
            .map_err(|e| CryptoError::cipher("AES-CBC", e.to_string()))?
            .encrypt_padded_vec_mut::<Pkcs7>(plaintext),
        n => {
            return Err(CryptoError::cipher(
                "AES-CBC",
                format!("key is {n} bytes, expected 16, 24 or 32"),
            ))
        }
    })
}

pub fn aes_cbc_zero_iv_decrypt(key: &[u8], ciphertext: &[u8]) -> Result<Vec<u8>, CryptoError> {
    let pad = |_| CryptoError::cipher("AES-CBC", "bad padding (wrong key or corrupted data)");
    if ciphertext.is_empty() || !ciphertext.len().is_multiple_of(16) {
        return Err(CryptoError::cipher(
            "AES-CBC",
            format!(
                "ciphertext length {} is not a positive multiple of 16",
                ciphertext.len()
            ),
        ));
    }
    match key.len() {
        16 => cbc::Decryptor::<aes::Aes128>::new_from_slices(key, &ZERO_IV)
            .map_err(|e| CryptoError::cipher("AES-CBC", e.to_string()))?
            .decrypt_padded_vec_mut::<Pkcs7>(ciphertext)
            .map_err(pad),
        24 => cbc::Decryptor::<aes::Aes192>::new_from_slices(key, &ZERO_IV)
            .map_err(|e| CryptoError::cipher("AES-CBC", e.to_string()))?
            .decrypt_padded_vec_mut::<Pkcs7>(ciphertext)
            .map_err(pad),
        32 => cbc::Decryptor::<aes::Aes256>::new_from_slices(key, &ZERO_IV)
            .map_err(|e| CryptoError::cipher("AES-CBC", e.to_string()))?
            .decrypt_padded_vec_mut::<Pkcs7>(ciphertext)
            .map_err(pad),
        n => Err(CryptoError::cipher(
            "AES-CBC",
            format!("key is {n} bytes, expected 16, 24 or 32"),
        )),
    }
}

/// AES-256-ECB with PKCS#7: WeChat v2 refund notification `req_info`.
pub fn aes_ecb_pkcs7_encrypt(key: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, CryptoError> {
    let cipher = ecb::Encryptor::<aes::Aes256>::new_from_slice(key).map_err(|_| {
        CryptoError::cipher(
            "AES-256-ECB",
            format!("key is {} bytes, expected 32", key.len()),
        )
    })?;
    Ok(cipher.encrypt_padded_vec_mut::<Pkcs7>(plaintext))
}

pub fn aes_ecb_pkcs7_decrypt(key: &[u8], ciphertext: &[u8]) -> Result<Vec<u8>, CryptoError> {
    if ciphertext.is_empty() || !ciphertext.len().is_multiple_of(16) {
        return Err(CryptoError::cipher(
            "AES-256-ECB",
            format!(
                "ciphertext length {} is not a positive multiple of 16",
                ciphertext.len()
            ),
        ));
    }
    let cipher = ecb::Decryptor::<aes::Aes256>::new_from_slice(key).map_err(|_| {
        CryptoError::cipher(
            "AES-256-ECB",
            format!("key is {} bytes, expected 32", key.len()),
        )
    })?;
    cipher
        .decrypt_padded_vec_mut::<Pkcs7>(ciphertext)
        .map_err(|_| {
            CryptoError::cipher("AES-256-ECB", "bad padding (wrong key or corrupted data)")
        })
}

/// WeChat always sends 12-character nonces; some SDKs (wechatpay-axios-plugin) use 16-byte IVs,
/// which GCM allows by deriving J0 through GHASH. aws-lc-rs takes only 12, so the rarer 16-byte
/// form goes through RustCrypto's generic-nonce GCM.
fn gcm(
    key: &[u8],
    nonce: &[u8],
    aad: &[u8],
    data: &[u8],
    encrypt: bool,
) -> Result<Vec<u8>, CryptoError> {
    if !matches!(key.len(), 16 | 32) {
        return Err(CryptoError::cipher(
            "AES-GCM",
            format!("key is {} bytes, expected 32 (or 16)", key.len()),
        ));
    }
    if !encrypt && data.len() < 16 {
        return Err(CryptoError::cipher(
            "AES-GCM",
            "ciphertext shorter than the 16-byte tag",
        ));
    }
    let auth_failed = || {
        CryptoError::cipher(
            "AES-GCM",
            "authentication failed (wrong key, nonce or associated data)",
        )
    };
    match nonce.len() {
        12 => {
            let alg = if key.len() == 16 {
                &AES_128_GCM
            } else {
                &AES_256_GCM
            };
            let key = UnboundKey::new(alg, key)
                .map(LessSafeKey::new)
                .map_err(|_| CryptoError::cipher("AES-GCM", "key rejected"))?;
            let nonce = Nonce::try_assume_unique_for_key(nonce)
                .map_err(|_| CryptoError::cipher("AES-GCM", "nonce rejected"))?;
            let mut buf = data.to_vec();
            if encrypt {
                key.seal_in_place_append_tag(nonce, Aad::from(aad), &mut buf)
                    .map_err(|_| CryptoError::cipher("AES-GCM", "encryption failed"))?;
                Ok(buf)
            } else {
                let plain = key
                    .open_in_place(nonce, Aad::from(aad), &mut buf)
                    .map_err(|_| auth_failed())?;
                Ok(plain.to_vec())
            }
        }
        16 => {
            use aes_gcm::aead::consts::U16;
            use aes_gcm::aead::{Aead, Payload};
            use aes_gcm::{AesGcm, KeyInit as _};
            let payload = Payload { msg: data, aad };
            let nonce = aes_gcm::aead::generic_array::GenericArray::from_slice(nonce);
            let out = if key.len() == 16 {
                let c = AesGcm::<aes::Aes128, U16>::new_from_slice(key)
                    .map_err(|_| CryptoError::cipher("AES-GCM", "key rejected"))?;
                if encrypt {
                    c.encrypt(nonce, payload)
                } else {
                    c.decrypt(nonce, payload)
                }
            } else {
                let c = AesGcm::<aes::Aes256, U16>::new_from_slice(key)
                    .map_err(|_| CryptoError::cipher("AES-GCM", "key rejected"))?;
                if encrypt {
                    c.encrypt(nonce, payload)
                } else {
                    c.decrypt(nonce, payload)
                }
            };
            out.map_err(|_| auth_failed())
        }
        n => Err(CryptoError::cipher(
            "AES-GCM",
            format!("nonce is {n} bytes, expected 12 (or 16)"),
        )),
    }
}

/// AEAD AES-GCM decryption of `ciphertext || tag`; the key length picks AES-128 or AES-256.
pub fn aes_gcm_decrypt(
    key: &[u8],
    nonce: &[u8],
    aad: &[u8],
    ciphertext_and_tag: &[u8],
) -> Result<Vec<u8>, CryptoError> {
    gcm(key, nonce, aad, ciphertext_and_tag, false)
}

/// AEAD AES-GCM encryption, returning `ciphertext || tag`.
pub fn aes_gcm_encrypt(
    key: &[u8],
    nonce: &[u8],
    aad: &[u8],
    plaintext: &[u8],
) -> Result<Vec<u8>, CryptoError> {
    gcm(key, nonce, aad, plaintext, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrips_and_errors() {
        let k16 = [7u8; 16];
        let k32 = [9u8; 32];
        let ct = aes_cbc_zero_iv_encrypt(&k16, b"{\"a\":1}").unwrap_or_default();
        assert_eq!(
            aes_cbc_zero_iv_decrypt(&k16, &ct).ok().as_deref(),
            Some(&b"{\"a\":1}"[..])
        );
        assert!(aes_cbc_zero_iv_decrypt(&k16, &ct[..15]).is_err());
        assert!(aes_cbc_zero_iv_encrypt(&[0u8; 5], b"x").is_err());

        let ct = aes_ecb_pkcs7_encrypt(&k32, b"<root/>").unwrap_or_default();
        assert_eq!(
            aes_ecb_pkcs7_decrypt(&k32, &ct).ok().as_deref(),
            Some(&b"<root/>"[..])
        );
        assert!(aes_ecb_pkcs7_decrypt(&k16, &ct).is_err());

        let ct = aes_gcm_encrypt(&k32, b"123456789012", b"aad", b"secret").unwrap_or_default();
        assert_eq!(
            aes_gcm_decrypt(&k32, b"123456789012", b"aad", &ct)
                .ok()
                .as_deref(),
            Some(&b"secret"[..])
        );
        assert!(aes_gcm_decrypt(&k32, b"123456789012", b"aaD", &ct).is_err());
        assert!(aes_gcm_decrypt(&k32, b"short", b"aad", &ct).is_err());
        assert!(aes_gcm_decrypt(&k32, b"123456789012", b"aad", &ct[..10]).is_err());
    }
}
