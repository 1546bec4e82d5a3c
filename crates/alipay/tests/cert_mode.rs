//! Certificate mode end to end on certificates made here: SNs sent and signed with requests,
//! the verifying certificate chosen by the response's `alipay_cert_sn`, two Alipay certificates
//! trusted at once while Alipay rotates them.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use paybridge_alipay::cert_mode::{cert_sn_from_pem, root_cert_sn};
use paybridge_alipay::notify::{NotifyForm, NotifyRule};
use paybridge_alipay::provider::{encode_form, sign_notify, signed_method_response};
use paybridge_alipay::request::{build_request, CallOptions};
use paybridge_alipay::response::open_response;
use paybridge_alipay::{AlipayConfig, AlipayError, AlipayKeys};
use paybridge_crypto::{
    b64_encode, generate_rsa_private_key_pkcs8, issue_rsa_cert, self_signed_rsa_cert, CertSpec,
    RsaPrivateKey,
};

fn key() -> RsaPrivateKey {
    RsaPrivateKey::from_der(&generate_rsa_private_key_pkcs8().unwrap()).unwrap()
}

fn spec(cn: &str, serial: u8, not_after: i64, ca: bool) -> CertSpec {
    CertSpec {
        common_name: cn.into(),
        organization: Some("Ant Financial".into()),
        organizational_unit: Some("Certification Authority".into()),
        country: Some("CN".into()),
        serial: vec![0x40, serial, 0x11, 0x22],
        not_before_unix: 1_700_000_000,
        not_after_unix: not_after,
        is_ca: ca,
    }
}

struct World {
    config: AlipayConfig,
    alipay_old: RsaPrivateKey,
    alipay_new: RsaPrivateKey,
    sn_old: String,
    sn_new: String,
    root_pem: String,
}

fn world() -> World {
    let (root_key, app_key, alipay_old, alipay_new) = (key(), key(), key(), key());
    let root_spec = spec("Test Root", 1, 2_000_000_000, true);
    let root = self_signed_rsa_cert(&root_key, &root_spec).unwrap();
    let issue = |k: &RsaPrivateKey, cn: &str, serial: u8, not_after: i64| {
        issue_rsa_cert(
            k,
            &spec(cn, serial, not_after, false),
            &root_key,
            &root_spec,
        )
        .unwrap()
        .pem
    };
    let app_pem = issue(&app_key, "app", 2, 1_900_000_000);
    let old_pem = issue(&alipay_old, "alipay old", 3, 1_800_000_000);
    let new_pem = issue(&alipay_new, "alipay new", 4, 1_900_000_000);
    let app_b64 = b64_encode(app_key.to_pkcs8_der());
    let keys = AlipayKeys::cert_mode(&app_b64, &app_pem, &[&old_pem, &new_pem], &root.pem).unwrap();
    assert_eq!(keys.app_cert_sn, Some(cert_sn_from_pem(&app_pem).unwrap()));
    // Someone else's app certificate is refused at start-up.
    assert!(matches!(
        AlipayKeys::cert_mode(&app_b64, &old_pem, &[&new_pem], &root.pem),
        Err(AlipayError::Key(_))
    ));
    World {
        config: AlipayConfig::new("2021000000000002", keys),
        alipay_old,
        alipay_new,
        sn_old: cert_sn_from_pem(&old_pem).unwrap(),
        sn_new: cert_sn_from_pem(&new_pem).unwrap(),
        root_pem: root.pem,
    }
}

const CONTENT: &str = r#"{"code":"10000","msg":"Success","out_trade_no":"T1","trade_no":"1","trade_status":"TRADE_SUCCESS","total_amount":"1.00"}"#;
const METHOD: &str = "alipay.trade.query";

#[test]
fn requests_carry_and_sign_both_sns() {
    let w = world();
    let req = build_request(&w.config, METHOD, Some("{}"), &CallOptions::default(), 0).unwrap();
    let app_sn = w.config.keys.app_cert_sn.clone().unwrap();
    let root_sn = root_cert_sn(&w.root_pem).unwrap();
    assert_eq!(req.param("app_cert_sn"), Some(app_sn.as_str()));
    assert_eq!(req.param("alipay_root_cert_sn"), Some(root_sn.as_str()));
    assert!(req.string_to_sign.starts_with(&format!(
        "alipay_root_cert_sn={root_sn}&app_cert_sn={app_sn}&"
    )));
}

#[test]
fn response_key_follows_alipay_cert_sn() {
    let w = world();
    let signed = |k: &RsaPrivateKey, sn: Option<&str>| {
        signed_method_response(METHOD, CONTENT, k, sn).unwrap()
    };
    // Both certificates of a rotation verify, each under its own SN.
    assert!(open_response(&w.config, METHOD, &signed(&w.alipay_old, Some(&w.sn_old))).is_ok());
    assert!(open_response(&w.config, METHOD, &signed(&w.alipay_new, Some(&w.sn_new))).is_ok());
    // Without an SN the newest certificate is used.
    assert!(open_response(&w.config, METHOD, &signed(&w.alipay_new, None)).is_ok());
    assert!(matches!(
        open_response(&w.config, METHOD, &signed(&w.alipay_old, None)),
        Err(AlipayError::BadResponseSignature { .. })
    ));
    // A signature by one key claimed under the other's SN does not verify.
    assert!(matches!(
        open_response(&w.config, METHOD, &signed(&w.alipay_old, Some(&w.sn_new))),
        Err(AlipayError::BadResponseSignature { .. })
    ));
    match open_response(&w.config, METHOD, &signed(&w.alipay_new, Some("ffff"))) {
        Err(AlipayError::UnknownCertSn { sn, .. }) => assert_eq!(sn, "ffff"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn notifications_verify_under_any_trusted_certificate() {
    let w = world();
    let keys = w.config.keys.all_verifying_keys();
    for k in [&w.alipay_old, &w.alipay_new] {
        let fields = vec![
            ("a".to_string(), "1".to_string()),
            ("sign_type".into(), "RSA2".into()),
        ];
        let body = encode_form(&sign_notify(fields, NotifyRule::V1, k).unwrap(), "utf-8").unwrap();
        assert_eq!(
            NotifyForm::parse(&body)
                .unwrap()
                .verify(&keys.iter().collect::<Vec<_>>()),
            Some(NotifyRule::V1)
        );
    }
}

/// Alipay rotated its certificate: the account holds only the old one, a response names the
/// new SN, and the download of the new certificate is trusted only when it chains to the
/// configured root, is the one asked for, is valid now and signs its own answer.
#[test]
fn a_rotated_certificate_is_trusted_only_through_the_configured_root() {
    use paybridge_alipay::api::cert_download::{accept_download, METHOD as DOWNLOAD};
    use paybridge_alipay::cert_mode::CertTrustError;

    let (root_key, app_key, old_key, new_key, stranger_key) = (key(), key(), key(), key(), key());
    let root_spec = spec("Test Root", 1, 2_000_000_000, true);
    let root = self_signed_rsa_cert(&root_key, &root_spec).unwrap();
    let issue_by = |issuer: &RsaPrivateKey, k: &RsaPrivateKey, cn: &str, serial: u8, end: i64| {
        issue_rsa_cert(k, &spec(cn, serial, end, false), issuer, &root_spec)
            .unwrap()
            .pem
    };
    let app_pem = issue_by(&root_key, &app_key, "app", 2, 1_900_000_000);
    let old_pem = issue_by(&root_key, &old_key, "alipay old", 3, 1_900_000_000);
    let new_pem = issue_by(&root_key, &new_key, "alipay new", 4, 1_900_000_000);
    // Same issuer name, another key: a certificate a forger would hand out.
    let forged_pem = issue_by(&stranger_key, &new_key, "alipay new", 4, 1_900_000_000);
    let expired_pem = issue_by(&root_key, &new_key, "alipay new", 5, 1_750_000_000);
    let keys = AlipayKeys::cert_mode(
        &b64_encode(app_key.to_pkcs8_der()),
        &app_pem,
        &[&old_pem],
        &root.pem,
    )
    .unwrap();
    let config = AlipayConfig::new("2021000000000002", keys);
    let set = config.keys.certificates().unwrap();
    let sn_new = cert_sn_from_pem(&new_pem).unwrap();
    let now = 1_800_000_000;

    let query = signed_method_response(METHOD, CONTENT, &new_key, Some(&sn_new)).unwrap();
    assert!(matches!(
        open_response(&config, METHOD, &query),
        Err(AlipayError::UnknownCertSn { .. })
    ));
    let answer = |pem: &str, signer: &RsaPrivateKey| {
        let content = serde_json::json!({
            "code": "10000",
            "msg": "Success",
            "alipay_cert_content": b64_encode(pem.as_bytes()),
        })
        .to_string();
        signed_method_response(DOWNLOAD, &content, signer, Some(&sn_new)).unwrap()
    };
    let refused = |raw: &str| match accept_download(&config, raw, &sn_new, now) {
        Err(AlipayError::CertNotTrusted { source, .. }) => source,
        other => panic!("{other:?}"),
    };
    assert!(matches!(
        refused(&answer(&forged_pem, &new_key)),
        CertTrustError::Untrusted { .. }
    ));
    assert!(matches!(
        refused(&answer(&old_pem, &new_key)),
        CertTrustError::WrongCertificate { .. }
    ));
    let expired_sn = cert_sn_from_pem(&expired_pem).unwrap();
    let expired_answer = {
        let content = serde_json::json!({
            "code": "10000", "msg": "Success",
            "alipay_cert_content": b64_encode(expired_pem.as_bytes()),
        })
        .to_string();
        signed_method_response(DOWNLOAD, &content, &new_key, Some(&expired_sn)).unwrap()
    };
    assert!(matches!(
        accept_download(&config, &expired_answer, &expired_sn, now),
        Err(AlipayError::CertNotTrusted {
            source: CertTrustError::Expired { .. },
            ..
        })
    ));
    // A genuine chain whose answer is not signed by it is refused too.
    assert!(matches!(
        accept_download(&config, &answer(&new_pem, &stranger_key), &sn_new, now),
        Err(AlipayError::BadResponseSignature { .. })
    ));
    // Nothing refused was trusted.
    assert_eq!(set.sns().len(), 1);
    assert!(open_response(&config, METHOD, &query).is_err());

    assert_eq!(
        accept_download(&config, &answer(&new_pem, &new_key), &sn_new, now).unwrap(),
        sn_new
    );
    assert!(open_response(&config, METHOD, &query).is_ok());
    assert_eq!(set.sns().len(), 2);
}
