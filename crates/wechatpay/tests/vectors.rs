//! Every WeChat Pay vector of ../shared/vectors, loaded from the files and checked by kind.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use paybridge_core::Fen;
use paybridge_crypto::{b64_decode, sha256, Certificate, RsaPrivateKey, RsaPublicKey};
use paybridge_testkit::{load_vectors, s, vector_file, vector_text};
use paybridge_wechatpay::bill::{parse_bill_amount, parse_bill_count, BillReader};
use paybridge_wechatpay::v2::{notify, sign as v2sign, xml};
use paybridge_wechatpay::v3::{
    aead, certs, client_params, notify as v3notify, sign as v3sign, verify,
};
use serde_json::Value;

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn params(v: &Value) -> Vec<(String, String)> {
    v["input"]["params"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
        .collect()
}

fn file_text(v: &Value, field: &str) -> String {
    vector_text(s(v, &format!("/input/{field}")))
}

/// Runs every vector of a file through `check`, requiring at least one.
fn run(file: &str, check: impl Fn(&Value)) {
    let Some(vectors) = load_vectors(file) else {
        return;
    };
    assert!(!vectors.is_empty(), "{file}");
    for v in &vectors {
        eprintln!("{file}: {}", v["id"]);
        check(v);
    }
}

fn check(v: &Value) {
    let kind = s(v, "/kind");
    let exp = &v["expected"];
    match kind {
        "wechat.v2.sign_md5" | "wechat.v2.sign_hmac_sha256" => {
            let t = if kind.ends_with("md5") {
                v2sign::SignType::Md5
            } else {
                v2sign::SignType::HmacSha256
            };
            let p = params(v);
            let key = s(v, "/input/key");
            let it = || p.iter().map(|(a, b)| (a.as_str(), b.as_str()));
            assert_eq!(
                v2sign::string_to_sign(it(), key),
                s(v, "/expected/string_to_sign")
            );
            let sig = v2sign::sign(it(), key, t);
            assert_eq!(sig, s(v, "/expected/sign"));
            let mut with_sign = p.clone();
            with_sign.push(("sign".into(), sig));
            assert_eq!(v2sign::verify_fields(&with_sign, key), Ok(t));
            with_sign.push(("extra".into(), "x".into()));
            assert!(v2sign::verify_fields(&with_sign, key).is_err());
        }
        "wechat.v2.sign_string" => {
            let p = params(v);
            assert_eq!(
                v2sign::string_a(p.iter().map(|(a, b)| (a.as_str(), b.as_str()))),
                s(v, "/expected/string_a")
            );
        }
        "wechat.v2.req_info_decrypt" => {
            let plain = if let Some(key) = v["input"]["aes_key"].as_str() {
                notify::decrypt_req_info_with_aes_key(s(v, "/input/ciphertext"), key.as_bytes())
                    .unwrap()
            } else {
                let api_key = s(v, "/input/api_key");
                let p = notify::decrypt_req_info(s(v, "/input/req_info"), api_key).unwrap();
                assert!(notify::decrypt_req_info(s(v, "/input/req_info"), "wrong-key").is_err());
                p
            };
            if let Some(p) = exp["plaintext"].as_str() {
                assert_eq!(plain, p);
            }
            if let Some(h) = exp["plaintext_sha256"].as_str() {
                assert_eq!(hex(&sha256(plain.as_bytes())), h);
            }
            if let Some(fields) = exp["fields"].as_object() {
                let doc = xml::parse_xml(plain.as_bytes()).unwrap();
                assert_eq!(doc.root, s(v, "/expected/root"));
                assert_eq!(doc.fields.len(), fields.len());
                for (k, val) in fields {
                    assert_eq!(doc.get(k), val.as_str(), "{k}");
                }
            }
        }
        "wechat.v2.xxe_reject" => {
            let bytes = vector_file(s(v, "/input/xml_file"));
            let r = xml::parse_xml(&bytes);
            if exp["reject"].as_bool().unwrap() {
                let err = r.unwrap_err();
                let reason = s(v, "/expected/reason");
                let family = reason.split(' ').next().unwrap();
                assert!(err.to_string().starts_with(family), "{err} vs {reason}");
            } else {
                let doc = r.unwrap();
                assert_eq!(doc.root, s(v, "/expected/root"));
                let fields = exp["fields"].as_object().unwrap();
                assert_eq!(doc.fields.len(), fields.len());
                for (k, val) in fields {
                    assert_eq!(doc.get(k), val.as_str(), "{k}");
                }
            }
        }
        "wechat.v3.sign" => {
            let key = RsaPrivateKey::from_text(&file_text(v, "private_key_file")).unwrap();
            let signer = v3sign::MerchantSigner::new("m", "s", key);
            assert_eq!(
                signer.sign(s(v, "/input/message")).unwrap(),
                s(v, "/expected/signature")
            );
        }
        "wechat.v3.auth_message" => {
            let i = &v["input"];
            let g = |k: &str| s(v, &format!("/input/{k}")).to_string();
            let message = v3sign::request_message(
                &g("method"),
                &g("canonical_url"),
                &g("timestamp"),
                &g("nonce_str"),
                &g("body"),
            );
            assert_eq!(message, s(v, "/expected/message"));
            let signature = if let Some(prefix) = i["mock_signature_prefix"].as_str() {
                format!("{prefix}{message}")
            } else {
                let key = RsaPrivateKey::from_text(&file_text(v, "private_key_file")).unwrap();
                let signer = v3sign::MerchantSigner::new(g("mchid"), g("serial_no"), key);
                let signed = signer
                    .sign_request(
                        &g("method"),
                        &g("canonical_url"),
                        &g("body"),
                        &g("timestamp"),
                        &g("nonce_str"),
                    )
                    .unwrap();
                assert_eq!(signed.message, message);
                let parts = v3sign::parse_authorization(&signed.authorization).unwrap();
                assert_eq!(parts.signature, signed.signature);
                signed.signature
            };
            if let Some(sig) = exp["signature"].as_str() {
                assert_eq!(signature, sig);
            }
            let header = v3sign::authorization_header(
                &g("schema"),
                &g("mchid"),
                &g("nonce_str"),
                &g("timestamp"),
                &g("serial_no"),
                &signature,
            );
            if let Some(a) = exp["authorization"].as_str() {
                assert_eq!(header, a);
            }
        }
        "wechat.v3.verify" => {
            let i = &v["input"];
            let (key, cert) = if i["cert_file"].is_string() {
                let text = file_text(v, "cert_file");
                match Certificate::from_pem(&text) {
                    Ok(c) => (c.public_key().unwrap(), Some(c)),
                    // yansongda's "cert" file is a bare public key.
                    Err(_) => (RsaPublicKey::from_text(&text).unwrap(), None),
                }
            } else {
                (
                    RsaPublicKey::from_text(&file_text(v, "public_key_file")).unwrap(),
                    None,
                )
            };
            let valid = exp["valid"].as_bool().unwrap();
            if let Some(h) = i["headers"].as_object() {
                let pairs: Vec<(String, String)> = h
                    .iter()
                    .map(|(k, x)| (k.clone(), x.as_str().unwrap().to_string()))
                    .collect();
                let headers = verify::SignatureHeaders::from_pairs(&pairs).unwrap();
                let body = s(v, "/input/body").as_bytes();
                assert_eq!(
                    verify::response_message(&headers.timestamp, &headers.nonce, body),
                    s(v, "/expected/message").as_bytes()
                );
                let now: i64 = s(v, "/input/now").parse().unwrap();
                if let (Some(c), Some(m)) = (&cert, exp["serial_matches_cert"].as_bool()) {
                    assert_eq!(c.serial_hex() == headers.serial, m);
                }
                let mut verifier = verify::Verifier::new();
                match (&cert, exp["serial_matches_cert"].as_bool()) {
                    (Some(c), Some(true)) => {
                        verifier.add_certificate(c).unwrap();
                    }
                    // The upstream test maps the header serial to this key.
                    _ => verifier.add_public_key(&headers.serial, key.clone()),
                }
                assert_eq!(verifier.verify(&headers, body, now).is_ok(), valid);
                // The window is enforced: the same signature a day later is refused.
                assert!(matches!(
                    verifier.verify(&headers, body, now + 86_400),
                    Err(verify::VerifyError::Stale { .. })
                ));
                let probe = verify::SignatureHeaders {
                    signature: format!("{}{}", verify::SIGNTEST_PREFIX, headers.signature),
                    ..headers.clone()
                };
                assert_eq!(
                    verifier.verify(&probe, body, now),
                    Err(verify::VerifyError::SignTest)
                );
            } else {
                let serial = s(v, "/input/serial");
                if let (Some(c), Some(m)) = (&cert, exp["serial_matches_cert"].as_bool()) {
                    assert_eq!(c.serial_hex() == serial, m);
                }
                let mut verifier = verify::Verifier::new();
                verifier.add_public_key(serial, key);
                let r = verifier.verify_message(
                    serial,
                    s(v, "/input/message").as_bytes(),
                    s(v, "/input/signature"),
                );
                assert_eq!(r.is_ok(), valid, "{r:?}");
            }
        }
        "wechat.v3.notify_decrypt" => {
            let key = s(v, "/input/apiv3_key").as_bytes();
            let n = v3notify::decrypt_notify(s(v, "/input/body").as_bytes(), key).unwrap();
            assert_eq!(n.plaintext, s(v, "/expected/plaintext"));
            assert_eq!(n.envelope.id, s(v, "/expected/id"));
            assert_eq!(n.envelope.event_type, s(v, "/expected/event_type"));
            assert_eq!(
                n.envelope.resource_type.as_deref(),
                exp["resource_type"].as_str()
            );
            assert_eq!(n.envelope.summary.as_deref(), exp["summary"].as_str());
            assert_eq!(
                n.envelope.resource.original_type.as_deref(),
                exp["original_type"].as_str()
            );
            assert_eq!(n.envelope.resource.algorithm, s(v, "/expected/algorithm"));
            assert_eq!(
                key.len() * 8,
                exp["aes_key_bits"].as_u64().unwrap() as usize
            );
            assert!(matches!(
                n.event().unwrap(),
                v3notify::NotifyEvent::Other(_)
            ));
            assert!(
                v3notify::decrypt_notify(s(v, "/input/body").as_bytes(), b"testMchAPIv3Key1")
                    .is_err()
            );
        }
        "wechat.v3.aes_gcm" => {
            let key = s(v, "/input/key").as_bytes();
            let nonce = s(v, "/input/nonce");
            let aad = s(v, "/input/associated_data");
            if let Some(bits) = exp["aes_key_bits"].as_u64() {
                assert_eq!(key.len() * 8, bits as usize);
            }
            if let Some(pt) = v["input"]["plaintext"].as_str() {
                let ct = aead::encrypt(key, nonce, aad, pt.as_bytes()).unwrap();
                assert_eq!(ct, s(v, "/expected/ciphertext"));
                assert_eq!(aead::decrypt(key, nonce, aad, &ct).unwrap(), pt.as_bytes());
            } else {
                let r = aead::decrypt(key, nonce, aad, s(v, "/input/ciphertext"));
                if exp["decrypt_error"].as_bool() == Some(true) {
                    assert!(r.is_err());
                } else {
                    assert_eq!(r.unwrap(), s(v, "/expected/plaintext").as_bytes());
                }
            }
        }
        "wechat.v3.cert_download_decrypt" => {
            let key = s(v, "/input/apiv3_key").as_bytes();
            let cert = if v["input"]["response_file"].is_string() {
                let body = vector_file(s(v, "/input/response_file"));
                let all = certs::decrypt_certificates(&body, key).unwrap();
                let idx = v["input"]["index"].as_u64().unwrap() as usize;
                all.into_iter().nth(idx).unwrap()
            } else {
                let resource: aead::EncryptedResource =
                    serde_json::from_value(v["input"]["resource"].clone()).unwrap();
                let entry = certs::CertificateEntry {
                    serial_no: s(v, "/expected/serial_no").to_string(),
                    effective_time: None,
                    expire_time: None,
                    encrypt_certificate: resource,
                };
                certs::decrypt_entry(&entry, key).unwrap()
            };
            assert_eq!(cert.certificate.serial_hex(), s(v, "/expected/serial_no"));
            assert_eq!(
                hex(&sha256(cert.pem.as_bytes())),
                s(v, "/expected/pem_sha256")
            );
            assert_eq!(cert.pem.len() as u64, exp["pem_length"].as_u64().unwrap());
            if let Some(f) = exp["same_der_as_cert_file"].as_str() {
                let other = Certificate::from_pem(&vector_text(f)).unwrap();
                assert_eq!(other.der(), cert.certificate.der());
            }
        }
        "wechat.v3.jsapi_pay_sign" | "wechat.v3.app_pay_sign" => {
            let key = RsaPrivateKey::from_text(&file_text(v, "private_key_file")).unwrap();
            let g = |k: &str| s(v, &format!("/input/{k}")).to_string();
            let (message, params, sig_field) = if kind == "wechat.v3.jsapi_pay_sign" {
                let prepay = g("package").strip_prefix("prepay_id=").unwrap().to_string();
                (
                    client_params::jsapi_message(
                        &g("appid"),
                        &g("timestamp"),
                        &g("nonce_str"),
                        &g("package"),
                    ),
                    client_params::jsapi_params(
                        &key,
                        &g("appid"),
                        &prepay,
                        &g("timestamp"),
                        &g("nonce_str"),
                    )
                    .unwrap(),
                    "paySign",
                )
            } else {
                (
                    client_params::app_message(
                        &g("appid"),
                        &g("timestamp"),
                        &g("nonce_str"),
                        &g("prepayid"),
                    ),
                    client_params::app_params(
                        &key,
                        &g("appid"),
                        "1900000109",
                        &g("prepayid"),
                        &g("timestamp"),
                        &g("nonce_str"),
                    )
                    .unwrap(),
                    "sign",
                )
            };
            assert_eq!(message, s(v, "/expected/message"));
            assert_eq!(params.get(sig_field).unwrap(), s(v, "/expected/signature"));
        }
        "wechat.v3.rsa_oaep_decrypt" => {
            let key = RsaPrivateKey::from_text(&file_text(v, "private_key_file")).unwrap();
            let ct = b64_decode(s(v, "/input/ciphertext")).unwrap();
            let pt = paybridge_wechatpay::v3::sensitive::decrypt(&key, s(v, "/input/ciphertext"))
                .unwrap();
            assert_eq!(pt, s(v, "/expected/plaintext"));
            assert_eq!(
                key.decrypt_oaep_sha1(&ct).unwrap(),
                s(v, "/expected/plaintext").as_bytes()
            );
            let again = paybridge_wechatpay::v3::sensitive::encrypt(
                &key.public_key().unwrap(),
                "yansongda",
            )
            .unwrap();
            assert_eq!(
                paybridge_wechatpay::v3::sensitive::decrypt(&key, &again).unwrap(),
                "yansongda"
            );
        }
        "wechat.bill_parse" => {
            let bytes = vector_file(s(v, "/input/csv_file"));
            assert_eq!(
                bytes.starts_with("\u{feff}".as_bytes()),
                exp["utf8_bom"].as_bool().unwrap()
            );
            assert!(bytes
                .windows(2)
                .any(|w| w == s(v, "/expected/line_ending").as_bytes()));
            let mut reader = BillReader::new(&bytes[..]).unwrap();
            let cols: Vec<&str> = exp["columns"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| c.as_str().unwrap())
                .collect();
            assert_eq!(reader.columns(), cols.as_slice());
            let rows: Vec<_> = reader.by_ref().collect::<Result<_, _>>().unwrap();
            assert_eq!(rows.len() as u64, exp["record_count"].as_u64().unwrap());
            for (k, val) in exp["first_record"].as_object().unwrap() {
                assert_eq!(rows[0].get(k), val.as_str(), "{k}");
            }
            let summary = reader.summary().unwrap();
            for (k, val) in exp["summary"].as_object().unwrap() {
                assert_eq!(summary.get(k), val.as_str(), "{k}");
            }
            assert_eq!(
                parse_bill_count(summary.get("总交易单数").unwrap()),
                Some(rows.len() as u64)
            );
            for (col, sum) in exp["column_sums"].as_object().unwrap() {
                let total: i64 = rows
                    .iter()
                    .map(|r| r.amount(col).unwrap().unwrap_or_default().0)
                    .sum();
                assert_eq!(
                    Fen(total),
                    parse_bill_amount(sum.as_str().unwrap()).unwrap(),
                    "{col}"
                );
            }
            for (status, n) in exp["status_counts"].as_object().unwrap() {
                let c = rows
                    .iter()
                    .filter(|r| r.get("交易状态") == Some(status.as_str()))
                    .count();
                assert_eq!(c as u64, n.as_u64().unwrap());
            }
            let typed = paybridge_wechatpay::bill::TradeBillRecord::from_row(&rows[0]).unwrap();
            assert_eq!(typed.refund_fee, Some(Fen(1)));
            let totals = paybridge_wechatpay::bill::TradeBillSummary::from_row(summary).unwrap();
            assert_eq!(totals.trade_count, Some(rows.len() as u64));
            let fees: i64 = rows
                .iter()
                .map(|r| {
                    paybridge_wechatpay::bill::TradeBillRecord::from_row(r)
                        .unwrap()
                        .service_fee
                        .unwrap_or_default()
                        .0
                })
                .sum();
            assert_eq!(totals.service_fee_total, Some(Fen(fees)));
        }
        other => panic!("vector {} has unknown kind {other}", v["id"]),
    }
}

#[test]
fn wechat_v2_sign() {
    run("wechat_v2_sign.json", check);
    run("wechat_v2_sign_more.json", check);
}

#[test]
fn wechat_v2_req_info() {
    run("wechat_v2_req_info.json", check);
    run("wechat_v2_req_info_more.json", check);
}

#[test]
fn wechat_v2_xml() {
    run("wechat_v2_xml.json", check);
}

#[test]
fn wechat_bill() {
    run("wechat_bill.json", check);
}

#[test]
fn wechat_v3_sign() {
    run("wechat_v3_sign.json", check);
    run("wechat_v3_sign_more.json", check);
}

#[test]
fn wechat_v3_verify_and_notify() {
    run("wechat_v3_verify.json", check);
    run("wechat_v3_notify.json", check);
}

#[test]
fn wechat_v3_aes_gcm() {
    run("wechat_v3_aes_gcm.json", check);
    run("wechat_v3_aes_gcm_more.json", check);
}

#[test]
fn wechat_v3_cert_download() {
    run("wechat_v3_cert_download.json", check);
}

#[test]
fn wechat_v3_pay_sign_and_oaep() {
    run("wechat_v3_pay_sign.json", check);
    run("wechat_v3_rsa_oaep.json", check);
}

/// Every wechat_*.json in the folder is covered by one of the tests above.
#[test]
fn every_wechat_vector_file_is_checked() {
    let Some(dir) = paybridge_testkit::vectors_dir() else {
        return;
    };
    let covered = [
        "wechat_bill.json",
        "wechat_v2_req_info.json",
        "wechat_v2_req_info_more.json",
        "wechat_v2_sign.json",
        "wechat_v2_sign_more.json",
        "wechat_v2_xml.json",
        "wechat_v3_aes_gcm.json",
        "wechat_v3_aes_gcm_more.json",
        "wechat_v3_cert_download.json",
        "wechat_v3_notify.json",
        "wechat_v3_pay_sign.json",
        "wechat_v3_rsa_oaep.json",
        "wechat_v3_sign.json",
        "wechat_v3_sign_more.json",
        "wechat_v3_verify.json",
    ];
    for entry in std::fs::read_dir(dir).unwrap() {
        let name = entry.unwrap().file_name().to_string_lossy().into_owned();
        if name.starts_with("wechat_") && name.ends_with(".json") {
            assert!(covered.contains(&name.as_str()), "{name} is not checked");
        }
    }
}
