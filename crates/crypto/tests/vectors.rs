//! Vectors that exercise the primitives directly (AES-GCM, RSA-OAEP, RSA signatures).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use paybridge_crypto::*;
use paybridge_testkit::{load_vectors, s, vector_text};
use serde_json::Value;

fn get<'a>(v: &'a Value, keys: &[&str]) -> Option<&'a str> {
    keys.iter().find_map(|k| v.get(*k).and_then(Value::as_str))
}

#[test]
fn wechat_v3_sign_vectors() {
    let Some(vectors) = load_vectors("wechat_v3_sign.json") else {
        return;
    };
    let mut checked = 0;
    for v in vectors.iter().filter(|v| v["kind"] == "wechat.v3.sign") {
        let key = RsaPrivateKey::from_text(&vector_text(s(v, "/input/private_key_file"))).unwrap();
        let msg = s(v, "/input/message");
        // PKCS#1 v1.5 is deterministic, so the signature must match to the byte.
        assert_eq!(
            key.sign_sha256_base64(msg.as_bytes()).unwrap(),
            s(v, "/expected/signature"),
            "{}",
            v["id"]
        );
        checked += 1;
    }
    assert!(checked > 0);
}

#[test]
fn aes_gcm_vectors() {
    let mut checked = 0;
    for file in ["wechat_v3_aes_gcm.json", "wechat_v3_aes_gcm_more.json"] {
        let Some(vectors) = load_vectors(file) else {
            return;
        };
        for v in vectors.iter().filter(|v| v["kind"] == "wechat.v3.aes_gcm") {
            let input = &v["input"];
            let key = get(input, &["key", "apiv3_key"]).unwrap();
            let nonce = get(input, &["nonce"]).unwrap();
            let aad = get(input, &["associated_data", "aad"]).unwrap_or("");
            let exp = &v["expected"];
            if let Some(ct) = get(input, &["ciphertext", "ciphertext_b64"]) {
                let res = b64_decode(ct).and_then(|ct| {
                    aes_gcm_decrypt(key.as_bytes(), nonce.as_bytes(), aad.as_bytes(), &ct)
                });
                if exp.get("decrypt_error").and_then(Value::as_bool) == Some(true) {
                    assert!(res.is_err(), "{} should fail", v["id"]);
                } else {
                    let pt = String::from_utf8(res.unwrap()).unwrap();
                    assert_eq!(pt, get(exp, &["plaintext"]).unwrap(), "{}", v["id"]);
                }
            } else {
                let pt = get(input, &["plaintext"]).unwrap();
                let ct = aes_gcm_encrypt(
                    key.as_bytes(),
                    nonce.as_bytes(),
                    aad.as_bytes(),
                    pt.as_bytes(),
                )
                .unwrap();
                assert_eq!(
                    b64_encode(ct),
                    get(exp, &["ciphertext", "ciphertext_b64"]).unwrap(),
                    "{}",
                    v["id"]
                );
            }
            checked += 1;
        }
    }
    assert!(checked > 0);
}
