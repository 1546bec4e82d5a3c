//! `paybridge alipay ...`: the Alipay signature workbench.

use crate::out::outln;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Subcommand;
use paybridge_alipay::cert_mode::{cert_sn, root_cert_sn};
use paybridge_alipay::notify::{NotifyForm, NotifyRule};
use paybridge_alipay::response::{split_response, verify_content};
use paybridge_alipay::sign::{decrypt_content, encrypt_content, sign_params};
use paybridge_alipay::AesKey;
use paybridge_crypto::{Certificate, RsaPrivateKey, RsaPublicKey};
use serde_json::{json, Value};

use crate::workbench::{emit, read_file, read_stdin, read_stdin_string, InputError, WbResult};

#[derive(Subcommand)]
pub enum AlipayCommand {
    /// Sign request parameters (stdin: JSON object without `sign`).
    Sign {
        /// App private key: PKCS#1 or PKCS#8, PEM or bare base64.
        #[arg(long)]
        private_key: PathBuf,
    },
    /// Verify an asynchronous notification (stdin: the raw form body), rules V1 and V2.
    VerifyNotify {
        /// Alipay public key (PEM or bare base64) or Alipay public certificate.
        #[arg(long)]
        public_key: PathBuf,
    },
    /// Verify a gateway response (stdin: the raw response text).
    VerifyResponse {
        /// Alipay public key (PEM or bare base64) or Alipay public certificate.
        #[arg(long)]
        public_key: PathBuf,
        /// The API method, e.g. alipay.trade.query.
        #[arg(long)]
        method: String,
    },
    /// Certificate SN (app_cert_sn / alipay_cert_sn), or with --root the alipay_root_cert_sn.
    CertSn {
        /// The certificate (PEM; a root bundle with --root).
        file: PathBuf,
        /// FILE is Alipay's root certificate bundle: print its alipay_root_cert_sn.
        #[arg(long)]
        root: bool,
    },
    /// AES-encrypt stdin as `encrypt_type=AES` does (one trailing newline is ignored).
    Encrypt {
        /// The app's AES key, base64 (as the open platform shows it).
        #[arg(long)]
        aes_key: String,
    },
    /// Decrypt base64 AES content from stdin.
    Decrypt {
        /// The app's AES key, base64 (as the open platform shows it).
        #[arg(long)]
        aes_key: String,
    },
}

pub fn run(cmd: AlipayCommand) -> WbResult {
    match cmd {
        AlipayCommand::Sign { private_key } => sign(&private_key),
        AlipayCommand::VerifyNotify { public_key } => verify_notify(&public_key),
        AlipayCommand::VerifyResponse { public_key, method } => {
            verify_response(&public_key, &method)
        }
        AlipayCommand::CertSn { file, root } => cert(&file, root),
        AlipayCommand::Encrypt { aes_key } => encrypt(&aes_key),
        AlipayCommand::Decrypt { aes_key } => decrypt(&aes_key),
    }
}

fn public_key(path: &Path) -> Result<RsaPublicKey, InputError> {
    RsaPublicKey::from_text(&read_file(path)?)
        .map_err(|e| InputError(format!("{}: {e}", path.display())))
}

fn sign(path: &Path) -> WbResult {
    let key = RsaPrivateKey::from_text(&read_file(path)?)
        .map_err(|e| InputError(format!("{}: {e}", path.display())))?;
    let input: Value = serde_json::from_str(&read_stdin_string()?)
        .map_err(|e| InputError(format!("stdin is not JSON: {e}")))?;
    let object = input
        .as_object()
        .ok_or_else(|| InputError("stdin must be a JSON object of parameters".into()))?;
    // Parameters are text on the wire; a nested `biz_content` object is sent as its JSON text.
    let params: Vec<(String, String)> = object
        .iter()
        .map(|(k, v)| {
            let text = match v {
                Value::String(s) => s.clone(),
                Value::Null => String::new(),
                other => other.to_string(),
            };
            (k.clone(), text)
        })
        .collect();
    let (string_to_sign, signature) =
        sign_params(params.iter().map(|(k, v)| (k.as_str(), v.as_str())), &key)?;
    emit(
        &json!({"string_to_sign": string_to_sign, "sign": signature}),
        true,
    )
}

fn verify_notify(path: &Path) -> WbResult {
    let key = public_key(path)?;
    let mut body = read_stdin()?;
    // A raw form body never ends in a bare newline; one comes from `echo` or an editor.
    while matches!(body.last(), Some(b'\n' | b'\r')) {
        body.pop();
    }
    let form = NotifyForm::parse(&body)?;
    let verified = form.verified_content(&[&key]);
    let valid = verified.is_some();
    let (rule, shown) = match verified {
        Some((rule, content)) => (Some(rule), content),
        None => (None, form.string_to_sign(NotifyRule::V1)),
    };
    emit(
        &json!({
            "valid": valid,
            "rule": rule.map(NotifyRule::as_str),
            "string_to_sign": shown,
        }),
        valid,
    )
}

fn verify_response(path: &Path, method: &str) -> WbResult {
    let key = public_key(path)?;
    let raw = read_stdin_string()?;
    let parts = split_response(raw.trim_end(), method)?;
    let valid = parts
        .sign
        .as_deref()
        .is_some_and(|s| verify_content(&key, parts.content, s));
    emit(
        &json!({"valid": valid, "signed_content": parts.content}),
        valid,
    )
}

fn cert(path: &Path, root: bool) -> WbResult {
    let text = read_file(path)?;
    if root {
        return emit(&json!({ "sn": root_cert_sn(&text)? }), true);
    }
    let c =
        Certificate::from_pem(&text).map_err(|e| InputError(format!("{}: {e}", path.display())))?;
    emit(
        &json!({
            "sn": cert_sn(&c),
            "issuer": c.issuer_rfc2253(),
            "serial_decimal": c.serial_decimal(),
        }),
        true,
    )
}

fn encrypt(key_b64: &str) -> WbResult {
    let key = AesKey::from_base64(key_b64)?;
    let text = read_stdin_string()?;
    let plain = text
        .strip_suffix('\n')
        .map(|t| t.strip_suffix('\r').unwrap_or(t))
        .unwrap_or(&text);
    outln!("{}", encrypt_content(&key, plain)?);
    Ok(ExitCode::SUCCESS)
}

fn decrypt(key_b64: &str) -> WbResult {
    let key = AesKey::from_base64(key_b64)?;
    let text = read_stdin_string()?;
    match decrypt_content(&key, text.trim()) {
        Ok(plain) => {
            outln!("{plain}");
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            eprintln!("error: cannot decrypt: {e}");
            Ok(ExitCode::from(1))
        }
    }
}
