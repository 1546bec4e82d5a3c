//! `paybridge wechat ...` run as a binary on the WeChat vectors: outputs and exit codes.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;

use paybridge_testkit::{load_vectors, s, vectors_dir};
use serde_json::Value;

mod common;

use common::Run;

fn run(args: &[&str], stdin: &[u8]) -> Run {
    common::run_group("wechat", args, stdin)
}

/// A temporary file holding `content` (keys are passed by file, as in production).
fn temp(name: &str, content: &str) -> String {
    let path = std::env::temp_dir().join(format!("paybridge-wb-{}-{name}", std::process::id()));
    std::fs::write(&path, content).unwrap();
    path.to_string_lossy().into_owned()
}

fn vector_path(rel: &str) -> String {
    let p: PathBuf = vectors_dir().unwrap().join(rel);
    p.to_string_lossy().into_owned()
}

fn find<'a>(vectors: &'a [Value], id: &str) -> &'a Value {
    vectors.iter().find(|v| v["id"] == id).unwrap()
}

#[test]
fn v2_sign_verify_and_decrypt_refund() {
    let Some(vectors) = load_vectors("wechat_v2_sign.json") else {
        return;
    };
    let mut checked = 0;
    for v in &vectors {
        let key = temp(
            &format!("{}.key", s(v, "/id")),
            &format!("{}\n", s(v, "/input/key")),
        );
        let sign_type = if s(v, "/kind").ends_with("md5") {
            "MD5"
        } else {
            "HMAC-SHA256"
        };
        let params = v["input"]["params"].to_string();
        let out = run(
            &["v2", "sign", "--key", &key, "--sign-type", sign_type],
            params.as_bytes(),
        );
        assert_eq!(out.code, 0, "{}", out.stderr);
        assert_eq!(
            out.json()["string_to_sign"],
            v["expected"]["string_to_sign"]
        );
        assert_eq!(out.json()["sign"], v["expected"]["sign"]);

        // The signed document verifies; a changed field does not.
        let mut xml = String::from("<xml>");
        for (k, val) in v["input"]["params"].as_object().unwrap() {
            xml.push_str(&format!("<{k}><![CDATA[{}]]></{k}>", val.as_str().unwrap()));
        }
        let signed = format!("{xml}<sign>{}</sign></xml>", s(v, "/expected/sign"));
        let out = run(&["v2", "verify", "--key", &key], signed.as_bytes());
        assert_eq!(
            (out.code, out.json()["valid"].as_bool()),
            (0, Some(true)),
            "{}",
            out.stdout
        );
        let tampered = signed.replacen("<![CDATA[", "<![CDATA[x", 1);
        let out = run(&["v2", "verify", "--key", &key], tampered.as_bytes());
        assert_eq!((out.code, out.json()["valid"].as_bool()), (1, Some(false)));
        checked += 1;
    }
    assert!(checked > 0);

    let Some(vectors) = load_vectors("wechat_v2_req_info_more.json") else {
        return;
    };
    let v = find(&vectors, "gopay-refund-req-info-decrypt");
    let key = temp("refund.key", s(v, "/input/api_key"));
    let out = run(
        &["v2", "decrypt-refund", "--key", &key],
        s(v, "/input/req_info").as_bytes(),
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stdout.starts_with("<root>")
            && out
                .stdout
                .contains("<out_refund_no><![CDATA[50fd012ed1b311e7af7800163e32c503]]>"),
        "{}",
        out.stdout
    );
    let wrong = temp("wrong.key", "not-the-key");
    let out = run(
        &["v2", "decrypt-refund", "--key", &wrong],
        s(v, "/input/req_info").as_bytes(),
    );
    assert_eq!(out.code, 1);
    assert_eq!(out.stderr.lines().count(), 1);

    // Input errors: exit 2 with one line on stderr.
    let out = run(&["v2", "verify", "--key", &key], b"<!DOCTYPE x><xml/>");
    assert_eq!(out.code, 2);
    assert_eq!(out.stderr.lines().count(), 1, "{}", out.stderr);
    let out = run(&["v2", "sign", "--key", &key], b"[1,2]");
    assert_eq!(out.code, 2);
}

#[test]
fn v3_sign_verify_decrypt() {
    let Some(vectors) = load_vectors("wechat_v3_sign_more.json") else {
        return;
    };
    let v = find(&vectors, "wxgo-auth-header-derived-signature");
    let i = |k: &str| s(v, &format!("/input/{k}")).to_string();
    let key = vector_path(&i("private_key_file"));
    let out = run(
        &[
            "v3",
            "sign",
            "--private-key",
            &key,
            "--method",
            &i("method"),
            "--url",
            &i("canonical_url"),
            "--timestamp",
            &i("timestamp"),
            "--nonce",
            &i("nonce_str"),
            "--mchid",
            &i("mchid"),
            "--serial",
            &i("serial_no"),
        ],
        i("body").as_bytes(),
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    let j = out.json();
    assert_eq!(j["message"], v["expected"]["message"]);
    assert_eq!(j["signature"], v["expected"]["signature"]);
    assert!(j["authorization"].as_str().unwrap().starts_with(
        "WECHATPAY2-SHA256-RSA2048 mchid=\"1234567890\",nonce_str=\"A1B2C3D4E5F6G7\""
    ));

    let Some(vectors) = load_vectors("wechat_v3_notify.json") else {
        return;
    };
    let v = find(&vectors, "wxgo-notify-signature-verify");
    let h = |k: &str| s(v, &format!("/input/headers/{k}")).to_string();
    let cert = vector_path(s(v, "/input/cert_file"));
    let args = |now: &str, sig: String| {
        vec![
            "v3".to_string(),
            "verify".into(),
            "--cert".into(),
            cert.clone(),
            "--timestamp".into(),
            h("Wechatpay-Timestamp"),
            "--nonce".into(),
            h("Wechatpay-Nonce"),
            "--signature".into(),
            sig,
            "--now".into(),
            now.to_string(),
        ]
    };
    let body = s(v, "/input/body").as_bytes();
    let call = |a: Vec<String>| run(&a.iter().map(String::as_str).collect::<Vec<_>>(), body);
    let out = call(args(s(v, "/input/now"), h("Wechatpay-Signature")));
    assert_eq!(out.code, 0, "{}", out.stdout);
    assert_eq!(out.json()["message"], v["expected"]["message"]);
    assert_eq!(out.json()["cert_serial"], "D7CE59D1F522D701");
    // Outside the 300 s window, or a SIGNTEST probe: invalid.
    assert_eq!(call(args("1624524147", h("Wechatpay-Signature"))).code, 1);
    assert_eq!(
        call(args(
            s(v, "/input/now"),
            format!("WECHATPAY/SIGNTEST/{}", h("Wechatpay-Signature"))
        ))
        .code,
        1
    );

    let Some(vectors) = load_vectors("wechat_v3_aes_gcm_more.json") else {
        return;
    };
    let v = find(&vectors, "wxgo-utils-aes-gcm-16-byte-key");
    let key = temp("apiv3.key", s(v, "/input/key"));
    let decrypt = |nonce: &str| {
        run(
            &[
                "v3",
                "decrypt",
                "--apiv3-key",
                &key,
                "--nonce",
                nonce,
                "--aad",
                s(v, "/input/associated_data"),
            ],
            s(v, "/input/ciphertext").as_bytes(),
        )
    };
    let out = decrypt(s(v, "/input/nonce"));
    assert_eq!(
        (out.code, out.stdout.trim_end()),
        (0, s(v, "/expected/plaintext"))
    );
    assert_eq!(decrypt("wCq51qZv4Yfh").code, 1);
    let out = decrypt("short");
    assert_eq!((out.code, out.stderr.lines().count()), (2, 1));
}
