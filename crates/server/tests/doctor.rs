//! `paybridge doctor`'s checks on configurations broken the ways operators break them: one
//! test per fault, each asserting the finding names the account, the field and the file; a
//! good configuration has no finding; several faults are all reported at once.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;

use paybridge_crypto::{
    b64_encode, encode_pem, generate_rsa_private_key_pkcs8, issue_rsa_cert, CertSpec, RsaPrivateKey,
};
use paybridge_sandbox::SandboxConfig;
use paybridge_server::config::Resolver;
use paybridge_server::doctor::{diagnose_toml, Finding, Report, Severity};

const NOW: i64 = 1_800_000_000;

/// A working setup: an Alipay account in public-key mode, one in certificate mode and a
/// WeChat Pay account (APIv3 public key + APIv2), every key in a file under `keys/`.
struct Setup {
    dir: tempfile::TempDir,
    sandbox: SandboxConfig,
    /// Settings replaced in the template by a test: (placeholder, value).
    vars: Vec<(&'static str, String)>,
    env: Vec<(String, String)>,
}

impl Setup {
    fn new() -> Setup {
        let sandbox = SandboxConfig::generate(NOW).unwrap();
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("keys")).unwrap();
        let s = Setup {
            dir,
            sandbox,
            vars: Vec::new(),
            env: Vec::new(),
        };
        let a = &s.sandbox.alipay;
        let m = &s.sandbox.wechat.merchants[0];
        s.write("app.key", a.apps[0].app_private_key.as_deref().unwrap());
        s.write("alipay_public.txt", &alipay_public_key(&s.sandbox));
        s.write("app2.key", a.apps[1].app_private_key.as_deref().unwrap());
        s.write("app2.crt", a.apps[1].app_cert.as_deref().unwrap());
        s.write("alipay.crt", a.alipay_cert.as_deref().unwrap());
        s.write("root.crt", a.root_cert.as_deref().unwrap());
        s.write("aes.key", a.apps[0].aes_key.as_deref().unwrap());
        s.write(
            "apiclient_key.pem",
            m.merchant_private_key.as_deref().unwrap(),
        );
        s.write("apiv3.key", &m.api_v3_key);
        s.write("apiv2.key", &m.api_v2_key);
        s.write("pub_key.pem", &wechat_public_key(&s.sandbox));
        s.write("whsec", "whsec_0123456789abcdef0123456789abcdef");
        s
    }

    fn write(&self, name: &str, text: &str) -> PathBuf {
        let p = self.dir.path().join("keys").join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    fn set(&mut self, placeholder: &'static str, value: impl Into<String>) -> &mut Self {
        self.vars.push((placeholder, value.into()));
        self
    }

    fn toml(&self) -> String {
        let m = &self.sandbox.wechat.merchants[0];
        let mut text = format!(
            r#"
            [server]
            listen = "127.0.0.1:0"
            public_base_url = "@BASE@"

            [webhooks]
            endpoints = [{{ id = "main", url = "https://shop.example.com/hook", signing_secret_file = "keys/whsec" }}]

            [[accounts]]
            id = "ali-pk"
            mode = "@ALI_PK_MODE@"
            channel = "alipay"
            [accounts.alipay]
            app_id = "2021000000000001"
            app_private_key_file = "@APP_KEY@"
            alipay_public_key_file = "keys/alipay_public.txt"
            aes_key_file = "keys/aes.key"

            [[accounts]]
            id = "ali-cert"
            mode = "live"
            channel = "alipay"
            [accounts.alipay]
            app_id = "2021000000000002"
            key_mode = "certificate"
            app_private_key_file = "keys/app2.key"
            app_cert_file = "@APP_CERT@"
            alipay_cert_file = "@ALIPAY_CERT@"
            alipay_root_cert_file = "keys/root.crt"

            [[accounts]]
            id = "wx"
            mode = "live"
            channel = "wechat"
            [accounts.wechat]
            mchid = "{mchid}"
            appid = "{appid}"
            [accounts.wechat.v3]
            apiv3_key_file = "keys/apiv3.key"
            merchant_serial = "{serial}"
            merchant_private_key_file = "keys/apiclient_key.pem"
            public_key_id = "@PUB_KEY_ID@"
            public_key_file = "@PUB_KEY@"
            [accounts.wechat.v2]
            api_key_file = "keys/apiv2.key"
            "#,
            mchid = m.mchid,
            appid = m.appid,
            serial = m.merchant_serial,
        );
        let defaults = [
            ("@BASE@", "https://pay.example.com".to_string()),
            ("@ALI_PK_MODE@", "live".to_string()),
            ("@APP_KEY@", "keys/app.key".to_string()),
            ("@APP_CERT@", "keys/app2.crt".to_string()),
            ("@ALIPAY_CERT@", "keys/alipay.crt".to_string()),
            (
                "@PUB_KEY_ID@",
                self.sandbox.wechat.public_key_id.clone().unwrap(),
            ),
            ("@PUB_KEY@", "keys/pub_key.pem".to_string()),
        ];
        for (placeholder, default) in defaults {
            let value = self
                .vars
                .iter()
                .rev()
                .find(|(p, _)| *p == placeholder)
                .map_or(default, |(_, v)| v.clone());
            text = text.replace(placeholder, &value);
        }
        text
    }

    fn diagnose_text(&self, text: &str) -> Report {
        let env_pairs = self.env.clone();
        let env = move |k: &str| {
            env_pairs
                .iter()
                .find(|(name, _)| name == k)
                .map(|(_, v)| v.clone())
        };
        diagnose_toml(
            text,
            Vec::new(),
            &Resolver {
                base_dir: self.dir.path(),
                env: &env,
            },
            NOW,
        )
    }

    fn diagnose(&self) -> Report {
        self.diagnose_text(&self.toml())
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join("keys").join(name)
    }
}

fn alipay_public_key(c: &SandboxConfig) -> String {
    RsaPrivateKey::from_text(&c.alipay.private_key)
        .unwrap()
        .public_key()
        .unwrap()
        .to_base64()
}

fn wechat_public_key(c: &SandboxConfig) -> String {
    let k = RsaPrivateKey::from_text(&c.wechat.private_key)
        .unwrap()
        .public_key()
        .unwrap();
    encode_pem("PUBLIC KEY", k.spki_der())
}

fn new_key() -> RsaPrivateKey {
    RsaPrivateKey::from_der(&generate_rsa_private_key_pkcs8().unwrap()).unwrap()
}

fn spec(cn: &str, not_after: i64, ca: bool) -> CertSpec {
    CertSpec {
        common_name: cn.into(),
        organization: Some("paybridge sandbox".into()),
        organizational_unit: Some("Certification Authority".into()),
        country: Some("CN".into()),
        serial: vec![0x33, 0x44],
        not_before_unix: NOW - 86_400,
        not_after_unix: not_after,
        is_ca: ca,
    }
}

/// The single error (or warning) a test expects, with its file.
fn only<'a>(r: &'a Report, scope: &str, field: &str, severity: Severity) -> &'a Finding {
    let all: Vec<&Finding> = r
        .about(scope, field)
        .into_iter()
        .filter(|f| f.severity == severity)
        .collect();
    assert_eq!(all.len(), 1, "{scope} {field}: {}", r.render_text());
    all[0]
}

#[test]
fn a_good_configuration_has_nothing_to_report() {
    let r = Setup::new().diagnose();
    assert!(r.findings.is_empty(), "{}", r.render_text());
    assert_eq!(r.render_text(), "no problems found\n");
}

#[test]
fn a_certificate_given_as_the_private_key_is_named_as_such() {
    let mut s = Setup::new();
    s.write(
        "oops.pem",
        s.sandbox.alipay.apps[1].app_cert.as_deref().unwrap(),
    );
    let r = s.set("@APP_KEY@", "keys/oops.pem").diagnose();
    let f = only(
        &r,
        "accounts.ali-pk",
        "app_private_key_file",
        Severity::Error,
    );
    assert_eq!(f.problem, "this is a certificate, not a private key");
    assert_eq!(f.path.as_deref(), Some(s.path("oops.pem").as_path()));
    assert!(f.fix.contains("应用私钥"), "{}", f.fix);
}

#[test]
fn the_apps_own_public_key_given_as_alipays_is_caught() {
    let s = Setup::new();
    let own =
        RsaPrivateKey::from_text(s.sandbox.alipay.apps[0].app_private_key.as_deref().unwrap())
            .unwrap()
            .public_key()
            .unwrap()
            .to_base64();
    s.write("alipay_public.txt", &own);
    let r = s.diagnose();
    let f = only(
        &r,
        "accounts.ali-pk",
        "alipay_public_key_file",
        Severity::Error,
    );
    assert!(
        f.problem.contains("your own app private key"),
        "{}",
        f.problem
    );
    assert!(f.fix.contains("支付宝公钥"));
}

#[test]
fn pkcs1_where_spki_is_expected_is_a_warning_with_the_conversion() {
    let s = Setup::new();
    let spki = paybridge_crypto::b64_decode(&alipay_public_key(&s.sandbox)).unwrap();
    let pkcs1 = {
        use spki_der::SubjectPublicKeyInfo;
        SubjectPublicKeyInfo::subject_key(&spki)
    };
    s.write("alipay_public.txt", &encode_pem("RSA PUBLIC KEY", &pkcs1));
    let r = s.diagnose();
    assert!(!r.has_errors(), "{}", r.render_text());
    let f = only(
        &r,
        "accounts.ali-pk",
        "alipay_public_key_file",
        Severity::Warning,
    );
    assert!(f.problem.starts_with("PKCS#1"), "{}", f.problem);
    assert!(f.fix.contains("-RSAPublicKey_in"));
}

/// The subject key bit string of an SPKI, by hand (a test must not lean on the code it checks).
mod spki_der {
    pub struct SubjectPublicKeyInfo;
    impl SubjectPublicKeyInfo {
        pub fn subject_key(spki: &[u8]) -> Vec<u8> {
            // SEQUENCE { SEQUENCE { alg }, BIT STRING { 00 || RSAPublicKey } }: the RSA key
            // starts after the BIT STRING header and its zero "unused bits" byte.
            let bit_string = find_bit_string(spki).unwrap();
            spki[bit_string..].to_vec()
        }
    }
    fn find_bit_string(spki: &[u8]) -> Option<usize> {
        // Skip the outer SEQUENCE header, then the AlgorithmIdentifier SEQUENCE.
        let (outer_hdr, _) = header(spki, 0)?;
        let (alg_hdr, alg_len) = header(spki, outer_hdr)?;
        let bit = outer_hdr + alg_hdr + alg_len;
        let (bit_hdr, _) = header(spki, bit)?;
        Some(bit + bit_hdr + 1)
    }
    /// (header length, content length) of the DER element at `at`, from `at`.
    fn header(d: &[u8], at: usize) -> Option<(usize, usize)> {
        let len = *d.get(at + 1)? as usize;
        if len < 0x80 {
            Some((2, len))
        } else {
            let n = len & 0x7f;
            let mut v = 0usize;
            for i in 0..n {
                v = (v << 8) | *d.get(at + 2 + i)? as usize;
            }
            Some((2 + n, v))
        }
    }
}

#[test]
fn an_app_certificate_of_another_key_pair_is_refused() {
    let mut s = Setup::new();
    // A certificate for a stranger key: same issuer, wrong pair.
    let root_key =
        RsaPrivateKey::from_text(s.sandbox.alipay.root_private_key.as_deref().unwrap()).unwrap();
    let cert = issue_rsa_cert(
        &new_key(),
        &spec("2021000000000002", NOW + 400 * 86_400, false),
        &root_key,
        &spec("Sandbox Root CA", NOW + 1000 * 86_400, true),
    )
    .unwrap();
    s.write("other_app.crt", &cert.pem);
    let r = s.set("@APP_CERT@", "keys/other_app.crt").diagnose();
    let f = only(&r, "accounts.ali-cert", "app_cert_file", Severity::Error);
    assert!(f.problem.contains("different key pairs"), "{}", f.problem);
}

#[test]
fn an_alipay_certificate_outside_the_root_is_refused() {
    let mut s = Setup::new();
    let stranger_root = new_key();
    let alipay_key = RsaPrivateKey::from_text(&s.sandbox.alipay.private_key).unwrap();
    let cert = issue_rsa_cert(
        &alipay_key,
        &spec("Alipay Sandbox Public Key", NOW + 400 * 86_400, false),
        &stranger_root,
        &spec("Sandbox Root CA", NOW + 1000 * 86_400, true),
    )
    .unwrap();
    s.write("forged_alipay.crt", &cert.pem);
    let r = s.set("@ALIPAY_CERT@", "keys/forged_alipay.crt").diagnose();
    let f = only(&r, "accounts.ali-cert", "alipay_cert_file", Severity::Error);
    assert!(f.problem.contains("does not chain"), "{}", f.problem);
}

#[test]
fn a_certificate_expiring_within_30_days_is_a_warning() {
    let s = Setup::new();
    let root_key =
        RsaPrivateKey::from_text(s.sandbox.alipay.root_private_key.as_deref().unwrap()).unwrap();
    let alipay_key = RsaPrivateKey::from_text(&s.sandbox.alipay.private_key).unwrap();
    let issue = |not_after: i64| {
        let mut leaf = spec("Alipay Sandbox Public Key", not_after, false);
        leaf.not_before_unix = NOW - 400 * 86_400;
        issue_rsa_cert(
            &alipay_key,
            &leaf,
            &root_key,
            &spec("Sandbox Root CA", NOW + 1000 * 86_400, true),
        )
        .unwrap()
        .pem
    };
    s.write("soon.crt", &issue(NOW + 10 * 86_400));
    let soon = Setup {
        vars: vec![("@ALIPAY_CERT@", "keys/soon.crt".into())],
        ..s
    }
    .diagnose();
    let f = only(
        &soon,
        "accounts.ali-cert",
        "alipay_cert_file",
        Severity::Warning,
    );
    assert!(f.problem.contains("expires in 10 day(s)"), "{}", f.problem);
    assert!(!soon.has_errors(), "{}", soon.render_text());
}

#[test]
fn an_expired_certificate_is_an_error() {
    let mut s = Setup::new();
    let root_key =
        RsaPrivateKey::from_text(s.sandbox.alipay.root_private_key.as_deref().unwrap()).unwrap();
    let alipay_key = RsaPrivateKey::from_text(&s.sandbox.alipay.private_key).unwrap();
    let mut leaf = spec("Alipay Sandbox Public Key", NOW - 86_400, false);
    leaf.not_before_unix = NOW - 400 * 86_400;
    let pem = issue_rsa_cert(
        &alipay_key,
        &leaf,
        &root_key,
        &spec("Sandbox Root CA", NOW + 1000 * 86_400, true),
    )
    .unwrap()
    .pem;
    s.write("gone.crt", &pem);
    let r = s.set("@ALIPAY_CERT@", "keys/gone.crt").diagnose();
    let f = only(&r, "accounts.ali-cert", "alipay_cert_file", Severity::Error);
    assert!(f.problem.contains("expired"), "{}", f.problem);
}

#[test]
fn wechat_key_lengths_and_public_key_id_format_are_checked() {
    let mut s = Setup::new();
    s.write("apiv3.key", "too-short");
    s.write("apiv2.key", &"k".repeat(31));
    let r = s.set("@PUB_KEY_ID@", "PUBKEY_0119").diagnose();
    let f = only(&r, "accounts.wx", "v3.apiv3_key_file", Severity::Error);
    assert_eq!(f.problem, "9 characters, not 32");
    only(&r, "accounts.wx", "v2.api_key_file", Severity::Error);
    let f = only(&r, "accounts.wx", "v3.public_key_id", Severity::Error);
    assert!(f.problem.contains("PUB_KEY_ID_"), "{}", f.problem);
}

#[test]
fn the_merchants_own_key_as_wechats_public_key_is_caught() {
    let mut s = Setup::new();
    let own = RsaPrivateKey::from_text(
        s.sandbox.wechat.merchants[0]
            .merchant_private_key
            .as_deref()
            .unwrap(),
    )
    .unwrap()
    .public_key()
    .unwrap();
    s.write("own.pem", &encode_pem("PUBLIC KEY", own.spki_der()));
    let r = s.set("@PUB_KEY@", "keys/own.pem").diagnose();
    let f = only(&r, "accounts.wx", "v3.public_key_file", Severity::Error);
    assert!(f.problem.contains("merchant's own key"), "{}", f.problem);
}

#[test]
fn a_private_key_where_a_public_key_belongs_is_an_error() {
    let mut s = Setup::new();
    s.write(
        "leaked.pem",
        &encode_pem("PRIVATE KEY", &generate_rsa_private_key_pkcs8().unwrap()),
    );
    let r = s.set("@PUB_KEY@", "keys/leaked.pem").diagnose();
    let f = only(&r, "accounts.wx", "v3.public_key_file", Severity::Error);
    assert!(f.problem.contains("private key where"), "{}", f.problem);
}

#[test]
fn an_aes_key_of_the_wrong_length_is_an_error() {
    let s = Setup::new();
    s.write("aes.key", &b64_encode([7u8; 10]));
    let r = s.diagnose();
    let f = only(&r, "accounts.ali-pk", "aes_key_file", Severity::Error);
    assert!(f.problem.contains("10 bytes"), "{}", f.problem);
}

#[test]
fn public_base_url_must_be_https_without_a_query_for_live_accounts() {
    let r = Setup::new()
        .set("@BASE@", "http://pay.example.com")
        .diagnose();
    let f = only(&r, "server", "public_base_url", Severity::Error);
    assert!(f.problem.contains("http with live accounts"));
    let r = Setup::new()
        .set("@BASE@", "https://pay.example.com/?a=1")
        .diagnose();
    let f = only(&r, "server", "public_base_url", Severity::Error);
    assert!(f.problem.contains("query string"));
}

#[test]
fn short_webhook_secrets_are_reported() {
    let s = Setup::new();
    s.write("whsec", "short-secret");
    let r = s.diagnose();
    let f = only(
        &r,
        "webhooks.endpoints.main",
        "signing_secret_file",
        Severity::Error,
    );
    assert!(f.problem.contains("12 characters"), "{}", f.problem);
    let s = Setup::new();
    s.write("whsec", "a-secret-of-20-chars");
    let r = s.diagnose();
    only(
        &r,
        "webhooks.endpoints.main",
        "signing_secret_file",
        Severity::Warning,
    );
}

#[test]
fn a_sandbox_account_sharing_a_live_identity_and_key_is_an_error() {
    let s = Setup::new();
    let text = s.toml().replace(
        "[[accounts]]\n            id = \"ali-cert\"",
        "[[accounts]]\n            id = \"ali-pk-sandbox\"\n            mode = \"sandbox\"\n            channel = \"alipay\"\n            [accounts.alipay]\n            app_id = \"2021000000000001\"\n            app_private_key_file = \"keys/app.key\"\n            alipay_public_key_file = \"keys/alipay_public.txt\"\n\n            [[accounts]]\n            id = \"ali-cert\"",
    );
    let r = s.diagnose_text(&text);
    let f = only(&r, "accounts.ali-pk-sandbox", "(identity)", Severity::Error);
    assert!(f.problem.contains("ali-pk"), "{}", f.problem);
}

#[test]
fn unreadable_files_and_unset_variables_name_what_they_resolved_to() {
    let mut s = Setup::new();
    s.set("@APP_KEY@", "keys/missing.key");
    let r = s.diagnose();
    let f = only(
        &r,
        "accounts.ali-pk",
        "app_private_key_file",
        Severity::Error,
    );
    assert!(f.problem.starts_with("cannot read the file"));
    assert_eq!(f.path.as_deref(), Some(s.path("missing.key").as_path()));
    let text = s.toml().replace(
        "apiv3_key_file = \"keys/apiv3.key\"",
        "apiv3_key_env = \"WX_APIV3_UNSET\"",
    );
    let r = s.diagnose_text(&text);
    let f = only(&r, "accounts.wx", "v3.apiv3_key_env", Severity::Error);
    assert!(f.problem.contains("WX_APIV3_UNSET"));
}

/// The point of the doctor: everything in one pass.
#[test]
fn every_fault_of_a_broken_file_is_reported_at_once() {
    let mut s = Setup::new();
    s.write(
        "oops.pem",
        s.sandbox.alipay.apps[1].app_cert.as_deref().unwrap(),
    );
    s.write("apiv3.key", "too-short");
    s.write("whsec", "short");
    let r = s
        .set("@APP_KEY@", "keys/oops.pem")
        .set("@BASE@", "http://pay.example.com")
        .set("@PUB_KEY@", "keys/nothing-here.pem")
        .diagnose();
    let errors: Vec<(&str, &str)> = r
        .errors()
        .map(|f| (f.scope.as_str(), f.field.as_str()))
        .collect();
    for expected in [
        ("accounts.ali-pk", "app_private_key_file"),
        ("accounts.wx", "v3.apiv3_key_file"),
        ("accounts.wx", "v3.public_key_file"),
        ("server", "public_base_url"),
        ("webhooks.endpoints.main", "signing_secret_file"),
    ] {
        assert!(
            errors.contains(&expected),
            "{expected:?} missing from {}",
            r.render_text()
        );
    }
    let text = r.render_text();
    assert!(text.contains("5 error(s)"), "{text}");
    assert!(text.contains(&s.path("nothing-here.pem").display().to_string()));
}

#[test]
fn a_file_that_is_not_toml_or_has_unknown_settings_is_one_clear_error() {
    let s = Setup::new();
    let r = s.diagnose_text("[server\nlisten = 1");
    assert_eq!(r.findings.len(), 1);
    assert_eq!(r.findings[0].scope, "config");
    let r = s.diagnose_text("[server]\nlisten_on = \"127.0.0.1:1\"\n");
    assert!(
        r.findings[0].problem.contains("listen_on"),
        "{}",
        r.render_text()
    );
}

#[test]
fn secrets_never_appear_in_a_report() {
    let s = Setup::new();
    s.write("apiv3.key", "x".repeat(31).as_str());
    let r = s.diagnose();
    let json = serde_json::to_string(&r).unwrap();
    assert!(!json.contains(&"x".repeat(31)));
}
