//! Every Alipay vector in the shared vectors folder, loaded from the files and checked.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use paybridge_alipay::cert_mode::{cert_sn_from_pem, root_cert_sn};
use paybridge_alipay::notify::{NotifyForm, NotifyRule};
use paybridge_alipay::response::{extract_node, split_response, verify_content};
use paybridge_alipay::sign::{decrypt_content, encrypt_content, sign_params};
use paybridge_alipay::{AesKey, AlipayKeys};
use paybridge_crypto::{Certificate, RsaPrivateKey, RsaPublicKey};
use paybridge_testkit::{load_vectors, s, vector_text};
use serde_json::Value;

fn id(v: &Value) -> &str {
    s(v, "/id")
}

fn public_key(v: &Value) -> RsaPublicKey {
    RsaPublicKey::from_text(&vector_text(s(v, "/input/alipay_public_key_file"))).unwrap()
}

fn pairs(v: &Value) -> Vec<(String, String)> {
    v.pointer("/input/params")
        .and_then(Value::as_object)
        .unwrap()
        .iter()
        .map(|(k, val)| (k.clone(), val.as_str().unwrap().to_string()))
        .collect()
}

fn check_aes(v: &Value) {
    assert_eq!(s(v, "/input/iv_hex"), "0".repeat(32), "{}", id(v));
    let key = AesKey::from_base64(s(v, "/input/key_b64")).unwrap();
    assert_eq!(
        (key.bytes().len() * 8) as u64,
        v.pointer("/expected/aes_key_bits")
            .and_then(Value::as_u64)
            .unwrap()
    );
    let plain = s(v, "/input/plaintext");
    let cipher = encrypt_content(&key, plain).unwrap();
    assert_eq!(cipher, s(v, "/expected/ciphertext_b64"), "{}", id(v));
    assert_eq!(decrypt_content(&key, &cipher).unwrap(), plain);
}

fn check_cert_sn(v: &Value) {
    let text = vector_text(s(v, "/input/cert_file"));
    let members = Certificate::bundle_from_pem(&text).unwrap();
    if let Some(n) = v.pointer("/expected/member_count").and_then(Value::as_u64) {
        assert_eq!(members.len() as u64, n, "{}", id(v));
    }
    if let Some(n) = v.pointer("/expected/cert_count").and_then(Value::as_u64) {
        assert_eq!(members.len() as u64, n, "{}", id(v));
    }
    if v.pointer("/input/root").and_then(Value::as_bool) == Some(true) {
        assert_eq!(
            root_cert_sn(&text).unwrap(),
            s(v, "/expected/sn"),
            "{}",
            id(v)
        );
        return;
    }
    assert_eq!(
        cert_sn_from_pem(&text).unwrap(),
        s(v, "/expected/sn"),
        "{}",
        id(v)
    );
    let cert = Certificate::from_pem(&text).unwrap();
    if v.pointer("/expected/issuer_dn").is_some() {
        assert_eq!(cert.issuer_rfc2253(), s(v, "/expected/issuer_dn"));
    }
    if v.pointer("/expected/serial_decimal").is_some() {
        assert_eq!(cert.serial_decimal(), s(v, "/expected/serial_decimal"));
    }
    if v.pointer("/expected/public_key_b64").is_some() {
        assert_eq!(
            cert.public_key().unwrap().to_base64(),
            s(v, "/expected/public_key_b64")
        );
    }
}

fn check_notify(v: &Value, rule: NotifyRule) {
    let form = NotifyForm::from_pairs(pairs(v));
    let key = public_key(v);
    let valid = v
        .pointer("/expected/valid")
        .and_then(Value::as_bool)
        .unwrap();
    // verified_content() tries V1 then V2, each with empty values dropped then kept: a V2
    // vector verifying as V2 also proves V1 rejects it, and the string that verified is the
    // one the vector names.
    let got = form.verified_content(&[&key]);
    assert_eq!(
        got.as_ref().map(|g| g.0),
        valid.then_some(rule),
        "{}",
        id(v)
    );
    if let Some(expected) = v.pointer("/expected/sign_content").and_then(Value::as_str) {
        let built = match &got {
            Some((_, content)) => content.clone(),
            None => form.string_to_sign(rule),
        };
        assert_eq!(built, expected, "{}", id(v));
    }
}

fn check_extract(v: &Value) {
    let response = s(v, "/input/response");
    let node = s(v, "/input/method_node");
    assert_eq!(
        extract_node(response, node),
        Some(s(v, "/expected/sign_content")),
        "{}",
        id(v)
    );
}

fn check_response_verify(v: &Value) {
    let key = public_key(v);
    let valid = v
        .pointer("/expected/valid")
        .and_then(Value::as_bool)
        .unwrap();
    let (content, sign) = match v.pointer("/input/response").and_then(Value::as_str) {
        Some(response) => {
            let node = s(v, "/input/method_node");
            let method = node.trim_end_matches("_response").replace('_', ".");
            let parts = split_response(response, &method).unwrap();
            assert_eq!(parts.node, node);
            let sign = v
                .pointer("/input/sign")
                .and_then(Value::as_str)
                .map(str::to_string)
                .or(parts.sign.clone())
                .unwrap();
            (parts.content.to_string(), sign)
        }
        None => (
            s(v, "/input/sign_content").to_string(),
            s(v, "/input/sign").to_string(),
        ),
    };
    if v.pointer("/expected/sign_content").is_some() {
        assert_eq!(content, s(v, "/expected/sign_content"), "{}", id(v));
    }
    assert_eq!(verify_content(&key, &content, &sign), valid, "{}", id(v));
}

fn check_request_sign(v: &Value) {
    let params = pairs(v);
    let key_text = vector_text(s(v, "/input/private_key_file"));
    let key = RsaPrivateKey::from_text(&key_text).unwrap();
    let (content, sign) =
        sign_params(params.iter().map(|(k, v)| (k.as_str(), v.as_str())), &key).unwrap();
    assert_eq!(content, s(v, "/expected/sign_content"), "{}", id(v));
    assert_eq!(sign, s(v, "/expected/sign"), "{}", id(v));
    let param = |name: &str| {
        params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    if let Some(app_cert) = v.pointer("/input/app_cert_file").and_then(Value::as_str) {
        let app_pem = vector_text(app_cert);
        let root_pem = vector_text(s(v, "/input/root_cert_file"));
        assert_eq!(
            Some(cert_sn_from_pem(&app_pem).unwrap().as_str()),
            param("app_cert_sn")
        );
        assert_eq!(
            Some(root_cert_sn(&root_pem).unwrap().as_str()),
            param("alipay_root_cert_sn")
        );
        let matches = Certificate::from_pem(&app_pem)
            .unwrap()
            .public_key()
            .unwrap()
            == key.public_key().unwrap();
        assert_eq!(
            Some(matches),
            v.pointer("/expected/app_cert_matches_key")
                .and_then(Value::as_bool)
        );
        // The certificate-mode constructor derives the same SNs (the app certificate stands in
        // for an Alipay certificate here; only its parsing matters).
        let keys = AlipayKeys::cert_mode(&key_text, &app_pem, &[&app_pem], &root_pem).unwrap();
        assert_eq!(keys.app_cert_sn.as_deref(), param("app_cert_sn"));
        assert_eq!(
            keys.alipay_root_cert_sn.as_deref(),
            param("alipay_root_cert_sn")
        );
    }
}

fn run_file(file: &str) {
    let Some(vectors) = load_vectors(file) else {
        return;
    };
    let mut checked = 0;
    for v in &vectors {
        match s(v, "/kind") {
            "alipay.aes_cbc" => check_aes(v),
            "alipay.cert_sn" => check_cert_sn(v),
            "alipay.notify_verify_v1" => check_notify(v, NotifyRule::V1),
            "alipay.notify_verify_v2" => check_notify(v, NotifyRule::V2),
            "alipay.response_extract" => check_extract(v),
            "alipay.response_verify" => check_response_verify(v),
            "alipay.request_sign" => check_request_sign(v),
            other => panic!("{file}: unexpected kind {other} in {}", id(v)),
        }
        checked += 1;
    }
    assert!(checked > 0, "{file}: no vectors checked");
    assert_eq!(checked, vectors.len());
    eprintln!("{file}: {checked} vectors passed");
}

#[test]
fn alipay_aes() {
    run_file("alipay_aes.json");
}

#[test]
fn alipay_cert_sn() {
    run_file("alipay_cert_sn.json");
}

#[test]
fn alipay_cert_sn_more() {
    run_file("alipay_cert_sn_more.json");
}

#[test]
fn alipay_notify() {
    run_file("alipay_notify.json");
}

#[test]
fn alipay_notify_v2() {
    run_file("alipay_notify_v2.json");
}

#[test]
fn alipay_request_sign() {
    run_file("alipay_request_sign.json");
}

#[test]
fn alipay_response_extract() {
    run_file("alipay_response_extract.json");
}

#[test]
fn alipay_response_extract_more() {
    run_file("alipay_response_extract_more.json");
}

#[test]
fn alipay_response_verify() {
    run_file("alipay_response_verify.json");
}

/// Every alipay_*.json file in the folder is covered by a test above.
#[test]
fn no_vector_file_left_out() {
    let Some(dir) = paybridge_testkit::vectors_dir() else {
        return;
    };
    let mut files: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("alipay_") && n.ends_with(".json"))
        .collect();
    files.sort();
    assert_eq!(
        files,
        [
            "alipay_aes.json",
            "alipay_cert_sn.json",
            "alipay_cert_sn_more.json",
            "alipay_notify.json",
            "alipay_notify_v2.json",
            "alipay_request_sign.json",
            "alipay_response_extract.json",
            "alipay_response_extract_more.json",
            "alipay_response_verify.json",
        ]
    );
}
