//! `paybridge doctor` and `paybridge serve` on a configuration with several faults: the doctor
//! lists every one (text and JSON) and exits 2; `serve` refuses to start, listing them all.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{run_group, scratch, write};

fn broken_config(dir: &std::path::Path) -> String {
    write(dir, "whsec", "short");
    write(
        dir,
        "gateway.toml",
        r#"
        [server]
        listen = "127.0.0.1:0"
        public_base_url = "https://pay.example.com/?from=doctor"
        data_dir = "data"

        [webhooks]
        endpoints = [{ id = "main", url = "https://shop.example.com/hook", signing_secret_file = "whsec" }]

        [[accounts]]
        id = "ali"
        mode = "sandbox"
        channel = "alipay"
        [accounts.alipay]
        app_id = "2021000000000001"
        app_private_key_file = "missing.key"
        alipay_public_key_env = "PB_DOCTOR_TEST_UNSET"
        "#,
    )
}

#[test]
fn doctor_lists_every_fault_and_serve_refuses_to_start() {
    let dir = scratch("doctor");
    let config = broken_config(&dir);

    let text = run_group("doctor", &["--config", &config], b"");
    assert_eq!(text.code, 2, "{}", text.stdout);
    for needle in [
        "[server]",
        "query string",
        "[webhooks.endpoints.main]",
        "too short",
        "[accounts.ali]",
        "app_private_key_file: cannot read the file",
        "PB_DOCTOR_TEST_UNSET is not set",
        "4 error(s)",
    ] {
        assert!(
            text.stdout.contains(needle),
            "{needle:?} not in\n{}",
            text.stdout
        );
    }
    assert!(text
        .stdout
        .contains(&dir.join("missing.key").display().to_string()));

    let json = run_group("doctor", &["--config", &config, "--json"], b"");
    assert_eq!(json.code, 2);
    let findings = json.json()["findings"].as_array().unwrap().clone();
    assert_eq!(findings.len(), 4, "{}", json.stdout);
    assert!(findings
        .iter()
        .all(|f| f["severity"] == "error" && f["fix"].as_str().is_some_and(|s| !s.is_empty())));

    let serve = run_group("serve", &["--config", &config], b"");
    assert_eq!(serve.code, 2, "{}", serve.stderr);
    assert!(
        serve.stderr.contains("nothing was started"),
        "{}",
        serve.stderr
    );
    assert!(serve.stderr.contains("4 error(s)"), "{}", serve.stderr);
    assert!(
        !dir.join("data").exists(),
        "serve created its data dir before refusing"
    );

    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn doctor_passes_a_configuration_serve_can_run() {
    let dir = scratch("doctor-ok");
    let config = write(
        &dir,
        "gateway.toml",
        r#"
        [server]
        listen = "127.0.0.1:0"
        public_base_url = "http://127.0.0.1:8080"
        data_dir = "data"
        "#,
    );
    let r = run_group("doctor", &["--config", &config], b"");
    assert_eq!(r.code, 0, "{}", r.stdout);
    assert!(
        r.stdout.contains("0 error(s)") || r.stdout.contains("no problems found"),
        "{}",
        r.stdout
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
