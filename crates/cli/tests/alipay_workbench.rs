//! Runs the built `paybridge alipay ...` commands on the shared vectors' inputs.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;

use paybridge_alipay::provider::encode_form;
use paybridge_testkit::{load_vectors, s, vectors_dir};
use serde_json::Value;

mod common;

use common::Run;

fn run(args: &[&str], stdin: &[u8]) -> Run {
    common::run_group("alipay", args, stdin)
}

fn path(rel: &str) -> String {
    let p: PathBuf = vectors_dir().unwrap().join(rel);
    p.to_string_lossy().into_owned()
}

fn form(v: &Value) -> Vec<u8> {
    let fields: Vec<(String, String)> = v["input"]["params"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, val)| (k.clone(), val.as_str().unwrap().to_string()))
        .collect();
    encode_form(&fields, "utf-8").unwrap()
}

#[test]
fn sign_matches_the_request_vector() {
    let Some(vectors) = load_vectors("alipay_request_sign.json") else {
        return;
    };
    for v in &vectors {
        let params = serde_json::to_vec(&v["input"]["params"]).unwrap();
        let key = path(s(v, "/input/private_key_file"));
        let r = run(&["sign", "--private-key", &key], &params);
        assert_eq!(r.code, 0, "{}", r.stderr);
        let out = r.json();
        assert_eq!(out["string_to_sign"], v["expected"]["sign_content"]);
        assert_eq!(out["sign"], v["expected"]["sign"]);
    }
}

#[test]
fn verify_notify_reports_the_rule() {
    let (mut count, mut total) = (0, 0);
    for (file, rule) in [
        ("alipay_notify.json", "v1"),
        ("alipay_notify_v2.json", "v2"),
    ] {
        let Some(vectors) = load_vectors(file) else {
            return;
        };
        total += vectors.len();
        for v in &vectors {
            let key = path(s(v, "/input/alipay_public_key_file"));
            let r = run(&["verify-notify", "--public-key", &key], &form(v));
            let valid = v["expected"]["valid"].as_bool().unwrap();
            let id = s(v, "/id");
            assert_eq!(r.code, if valid { 0 } else { 1 }, "{id} {}", r.stderr);
            let out = r.json();
            assert_eq!(out["valid"], valid);
            if valid {
                assert_eq!(out["rule"], rule);
                assert_eq!(out["string_to_sign"], v["expected"]["sign_content"]);
            } else {
                assert_eq!(out["rule"], Value::Null);
            }
            count += 1;
        }
    }
    assert!(count > 0);
    assert_eq!(count, total);
}

#[test]
fn verify_response_and_tampering() {
    let Some(vectors) = load_vectors("alipay_response_verify.json") else {
        return;
    };
    let with_response: Vec<&Value> = vectors
        .iter()
        .filter(|v| v["input"]["response"].is_string())
        .collect();
    assert!(!with_response.is_empty());
    for v in with_response {
        let node = s(v, "/input/method_node");
        let method = node.trim_end_matches("_response").replace('_', ".");
        let key = path(s(v, "/input/alipay_public_key_file"));
        let mut response = s(v, "/input/response").to_string();
        if let Some(bad) = v["input"]["sign"].as_str() {
            // The vector's own signature replaced by the one it gives.
            let doc: Value = serde_json::from_str(&response).unwrap();
            response = response.replace(doc["sign"].as_str().unwrap(), bad);
        }
        let args = ["verify-response", "--public-key", &key, "--method", &method];
        let r = run(&args, response.as_bytes());
        let valid = v["expected"]["valid"].as_bool().unwrap();
        assert_eq!(
            r.code,
            if valid { 0 } else { 1 },
            "{}: {}",
            s(v, "/id"),
            r.stderr
        );
        assert_eq!(r.json()["valid"], valid);
        assert_eq!(r.json()["signed_content"], v["expected"]["sign_content"]);
    }
}

#[test]
fn cert_sn_for_leaf_and_root() {
    for file in ["alipay_cert_sn.json", "alipay_cert_sn_more.json"] {
        let Some(vectors) = load_vectors(file) else {
            return;
        };
        for v in &vectors {
            let cert = path(s(v, "/input/cert_file"));
            let mut args = vec!["cert-sn", cert.as_str()];
            if v["input"]["root"].as_bool() == Some(true) {
                args.push("--root");
            }
            let r = run(&args, b"");
            assert_eq!(r.code, 0, "{}", r.stderr);
            assert_eq!(r.json()["sn"], v["expected"]["sn"], "{}", s(v, "/id"));
        }
    }
}

#[test]
fn aes_round_trip() {
    let Some(vectors) = load_vectors("alipay_aes.json") else {
        return;
    };
    for v in &vectors {
        let key = s(v, "/input/key_b64");
        let plain = format!("{}\n", s(v, "/input/plaintext"));
        let enc = run(&["encrypt", "--aes-key", key], plain.as_bytes());
        assert_eq!(enc.code, 0, "{}", enc.stderr);
        assert_eq!(enc.stdout.trim_end(), s(v, "/expected/ciphertext_b64"));
        let dec = run(&["decrypt", "--aes-key", key], enc.stdout.as_bytes());
        assert_eq!(dec.code, 0, "{}", dec.stderr);
        assert_eq!(dec.stdout.trim_end(), s(v, "/input/plaintext"));
        let other_key = "AAAAAAAAAAAAAAAAAAAAAA==";
        let wrong = run(&["decrypt", "--aes-key", other_key], enc.stdout.as_bytes());
        assert_eq!(wrong.code, 1);
    }
}

#[test]
fn input_errors_exit_2_with_one_line() {
    let r = run(&["sign", "--private-key", "/nonexistent/key.pem"], b"{}");
    assert_eq!(r.code, 2);
    assert_eq!(r.stderr.lines().count(), 1);
    assert!(r.stderr.starts_with("error: "));
    let r = run(&["encrypt", "--aes-key", "short"], b"x");
    assert_eq!(r.code, 2);
    let Some(vectors) = load_vectors("alipay_request_sign.json") else {
        return;
    };
    let key = path(s(&vectors[0], "/input/private_key_file"));
    let r = run(&["sign", "--private-key", &key], b"[1,2]");
    assert_eq!(r.code, 2);
    assert_eq!(r.stderr.lines().count(), 1);
    let Some(responses) = load_vectors("alipay_response_verify.json") else {
        return;
    };
    let pubkey = path(s(&responses[0], "/input/alipay_public_key_file"));
    let args = [
        "verify-response",
        "--public-key",
        &pubkey,
        "--method",
        "alipay.trade.query",
    ];
    let r = run(&args, b"{\"x\":1}");
    assert_eq!(r.code, 2);
    let r = run(&["verify-notify", "--public-key", &pubkey], b"a=1&a=2");
    assert_eq!(r.code, 2);
}

#[test]
fn public_key_may_be_bare_base64_or_a_certificate() {
    use paybridge_alipay::notify::NotifyRule;
    use paybridge_alipay::provider::sign_notify;
    use paybridge_crypto::{
        generate_rsa_private_key_pkcs8, self_signed_rsa_cert, CertSpec, RsaPrivateKey,
    };

    let key = RsaPrivateKey::from_der(&generate_rsa_private_key_pkcs8().unwrap()).unwrap();
    let spec = CertSpec {
        common_name: "Alipay test".into(),
        organization: None,
        organizational_unit: None,
        country: Some("CN".into()),
        serial: vec![0x01, 0x02],
        not_before_unix: 1_700_000_000,
        not_after_unix: 2_000_000_000,
        is_ca: false,
    };
    let dir = std::env::temp_dir().join(format!("paybridge-alipay-wb-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let cert_file = dir.join("alipayCertPublicKey_RSA2.crt");
    std::fs::write(&cert_file, self_signed_rsa_cert(&key, &spec).unwrap().pem).unwrap();
    let bare_file = dir.join("alipay_public_key.txt");
    std::fs::write(&bare_file, key.public_key().unwrap().to_base64()).unwrap();

    let fields = vec![
        ("app_id".to_string(), "2021000000000001".to_string()),
        ("sign_type".to_string(), "RSA2".to_string()),
        ("trade_status".to_string(), "TRADE_SUCCESS".to_string()),
    ];
    let body = encode_form(&sign_notify(fields, NotifyRule::V2, &key).unwrap(), "utf-8").unwrap();
    for file in [&cert_file, &bare_file] {
        let r = run(
            &["verify-notify", "--public-key", file.to_str().unwrap()],
            &body,
        );
        assert_eq!(r.code, 0, "{}", r.stderr);
        assert_eq!(r.json()["rule"], "v2");
    }
    let r = run(&["cert-sn", cert_file.to_str().unwrap()], b"");
    assert_eq!(r.code, 0);
    assert_eq!(r.json()["issuer"], "CN=Alipay test,C=CN");
    assert_eq!(r.json()["serial_decimal"], "258");
    std::fs::remove_dir_all(&dir).unwrap();
}
