//! `paybridge wechat ...`: the WeChat Pay signature workbench (APIv2 and APIv3).

use crate::out::outln;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{ArgGroup, Subcommand};
use paybridge_crypto::{Certificate, RsaPrivateKey, RsaPublicKey};
use paybridge_wechatpay::v2::notify::decrypt_req_info;
use paybridge_wechatpay::v2::sign::{
    sign_string, string_to_sign, verify_fields, SignError, SignType,
};
use paybridge_wechatpay::v2::xml::parse_xml;
use paybridge_wechatpay::v3::aead;
use paybridge_wechatpay::v3::sign::{authorization_header, request_message, SCHEMA};
use paybridge_wechatpay::v3::verify::{check_fresh, response_message, SIGNTEST_PREFIX};
use serde_json::{json, Value};

use crate::workbench::{emit, read_file, read_stdin, read_stdin_string, InputError, WbResult};

#[derive(Subcommand)]
pub enum WechatCommand {
    /// APIv2: XML signed with the API key (MD5 / HMAC-SHA256).
    V2 {
        #[command(subcommand)]
        cmd: V2Command,
    },
    /// APIv3: JSON signed with RSA keys, AEAD-encrypted resources.
    V3 {
        #[command(subcommand)]
        cmd: V3Command,
    },
}

#[derive(Subcommand)]
pub enum V2Command {
    /// Sign fields (stdin: an XML document or a JSON object).
    Sign {
        /// File holding the APIv2 key.
        #[arg(long)]
        key: PathBuf,
        /// MD5 or HMAC-SHA256 (default: the input's sign_type, else MD5).
        #[arg(long)]
        sign_type: Option<SignType>,
    },
    /// Verify a signed XML document (stdin), every field but `sign` covered.
    Verify {
        /// File holding the APIv2 key.
        #[arg(long)]
        key: PathBuf,
    },
    /// Decrypt a refund notification's req_info (stdin: the base64 value or the whole XML).
    DecryptRefund {
        /// File holding the APIv2 key.
        #[arg(long)]
        key: PathBuf,
    },
}

#[derive(Subcommand)]
pub enum V3Command {
    /// Sign a request (stdin: the exact body; empty for GET).
    Sign {
        /// Merchant private key (PKCS#1/PKCS#8, PEM or bare base64).
        #[arg(long)]
        private_key: PathBuf,
        /// HTTP method, e.g. POST.
        #[arg(long)]
        method: String,
        /// Path with query, e.g. /v3/pay/transactions/native.
        #[arg(long)]
        url: String,
        /// Unix seconds, as sent in the Authorization header.
        #[arg(long)]
        timestamp: String,
        /// A random string, as sent in the Authorization header.
        #[arg(long)]
        nonce: String,
        /// With --serial: also print the Authorization header.
        #[arg(long, requires = "serial")]
        mchid: Option<String>,
        /// Merchant certificate serial.
        #[arg(long, requires = "mchid")]
        serial: Option<String>,
    },
    /// Verify a response or notification signature (stdin: the raw body).
    #[command(group(ArgGroup::new("key").required(true).args(["public_key", "cert"])))]
    Verify {
        /// WeChat Pay public key (PUB_KEY_ID mode), PEM or bare base64.
        #[arg(long)]
        public_key: Option<PathBuf>,
        /// Platform certificate, PEM.
        #[arg(long)]
        cert: Option<PathBuf>,
        /// Wechatpay-Timestamp.
        #[arg(long)]
        timestamp: String,
        /// Wechatpay-Nonce.
        #[arg(long)]
        nonce: String,
        /// Wechatpay-Signature.
        #[arg(long)]
        signature: String,
        /// Unix time to check the 300 s window against (default: the system clock).
        #[arg(long)]
        now: Option<i64>,
    },
    /// Decrypt an AEAD_AES_256_GCM resource (stdin: base64 ciphertext).
    Decrypt {
        /// File holding the APIv3 key.
        #[arg(long)]
        apiv3_key: PathBuf,
        /// The resource's nonce.
        #[arg(long)]
        nonce: String,
        /// associated_data.
        #[arg(long, default_value = "")]
        aad: String,
    },
}

pub fn run(cmd: WechatCommand) -> WbResult {
    match cmd {
        WechatCommand::V2 { cmd } => match cmd {
            V2Command::Sign { key, sign_type } => v2_sign(&key, sign_type),
            V2Command::Verify { key } => v2_verify(&key),
            V2Command::DecryptRefund { key } => v2_decrypt_refund(&key),
        },
        WechatCommand::V3 { cmd } => match cmd {
            V3Command::Sign {
                private_key,
                method,
                url,
                timestamp,
                nonce,
                mchid,
                serial,
            } => v3_sign(
                &private_key,
                &method,
                &url,
                &timestamp,
                &nonce,
                mchid.zip(serial),
            ),
            V3Command::Verify {
                public_key,
                cert,
                timestamp,
                nonce,
                signature,
                now,
            } => v3_verify(
                public_key.as_deref(),
                cert.as_deref(),
                &timestamp,
                &nonce,
                &signature,
                now,
            ),
            V3Command::Decrypt {
                apiv3_key,
                nonce,
                aad,
            } => v3_decrypt(&apiv3_key, &nonce, &aad),
        },
    }
}

/// Key files usually end with a newline the key does not contain.
fn secret_file(path: &Path) -> Result<String, InputError> {
    let text = read_file(path)?;
    let key = text.trim_end_matches(['\r', '\n']).to_string();
    if key.is_empty() {
        return Err(InputError(format!("{} is empty", path.display())));
    }
    Ok(key)
}

/// Fields from stdin: XML (`<...`) or a JSON object whose values are strings or numbers.
fn v2_fields(input: &str) -> Result<Vec<(String, String)>, InputError> {
    let trimmed = input.trim_start();
    if trimmed.starts_with('<') {
        return Ok(parse_xml(trimmed.as_bytes())?.fields);
    }
    let value: Value = serde_json::from_str(input)
        .map_err(|e| InputError(format!("stdin is neither XML nor JSON: {e}")))?;
    let obj = value
        .as_object()
        .ok_or_else(|| InputError("stdin JSON is not an object".into()))?;
    obj.iter()
        .map(|(k, v)| match v {
            Value::String(s) => Ok((k.clone(), s.clone())),
            Value::Number(n) => Ok((k.clone(), n.to_string())),
            Value::Bool(b) => Ok((k.clone(), b.to_string())),
            Value::Null => Ok((k.clone(), String::new())),
            _ => Err(InputError(format!("field {k} is not a scalar"))),
        })
        .collect()
}

fn pairs(fields: &[(String, String)]) -> impl Iterator<Item = (&str, &str)> {
    fields.iter().map(|(k, v)| (k.as_str(), v.as_str()))
}

fn v2_sign(key_file: &Path, sign_type: Option<SignType>) -> WbResult {
    let key = secret_file(key_file)?;
    let fields = v2_fields(&read_stdin_string()?)?;
    let sign_type = match sign_type {
        Some(t) => t,
        None => match fields.iter().find(|(k, _)| k == "sign_type") {
            Some((_, v)) => v.parse().map_err(InputError)?,
            None => SignType::Md5,
        },
    };
    let s = string_to_sign(pairs(&fields), &key);
    let sign = sign_string(&s, &key, sign_type);
    emit(
        &json!({"string_to_sign": s, "sign": sign, "sign_type": sign_type.as_str()}),
        true,
    )
}

fn v2_verify(key_file: &Path) -> WbResult {
    let key = secret_file(key_file)?;
    let doc = parse_xml(read_stdin_string()?.trim().as_bytes())?;
    let s = string_to_sign(pairs(&doc.fields), &key);
    let (valid, sign_type, reason) = match verify_fields(&doc.fields, &key) {
        Ok(t) => (true, Some(t.as_str()), None),
        Err(e @ SignError::UnknownType(_)) => return Err(InputError(e.to_string())),
        Err(e) => (false, None, Some(e.to_string())),
    };
    emit(
        &json!({"valid": valid, "string_to_sign": s, "sign_type": sign_type, "reason": reason}),
        valid,
    )
}

fn v2_decrypt_refund(key_file: &Path) -> WbResult {
    let key = secret_file(key_file)?;
    let input = read_stdin_string()?;
    let input = input.trim();
    let req_info = if input.starts_with('<') {
        parse_xml(input.as_bytes())?
            .get("req_info")
            .ok_or_else(|| InputError("the XML has no req_info".into()))?
            .to_string()
    } else {
        input.to_string()
    };
    match decrypt_req_info(&req_info, &key) {
        Ok(xml) => {
            outln!("{xml}");
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => invalid(&e.to_string()),
    }
}

/// Exit 1 with a reason on stderr: the input was well-formed but does not check out.
fn invalid(reason: &str) -> WbResult {
    eprintln!("invalid: {reason}");
    Ok(ExitCode::from(1))
}

fn v3_sign(
    key_file: &Path,
    method: &str,
    url: &str,
    ts: &str,
    nonce: &str,
    who: Option<(String, String)>,
) -> WbResult {
    let key = RsaPrivateKey::from_text(&read_file(key_file)?)
        .map_err(|e| InputError(format!("{}: {e}", key_file.display())))?;
    let body =
        String::from_utf8(read_stdin()?).map_err(|_| InputError("body is not UTF-8".into()))?;
    let message = request_message(method, url, ts, nonce, &body);
    let signature = key
        .sign_sha256_base64(message.as_bytes())
        .map_err(|e| InputError(e.to_string()))?;
    let authorization = who.map(|(mchid, serial)| {
        authorization_header(SCHEMA, &mchid, nonce, ts, &serial, &signature)
    });
    emit(
        &json!({"message": message, "signature": signature, "authorization": authorization}),
        true,
    )
}

fn v3_verify(
    public_key: Option<&Path>,
    cert: Option<&Path>,
    ts: &str,
    nonce: &str,
    signature: &str,
    now: Option<i64>,
) -> WbResult {
    let (key, serial) = match (public_key, cert) {
        (Some(p), _) => (
            RsaPublicKey::from_text(&read_file(p)?)
                .map_err(|e| InputError(format!("{}: {e}", p.display())))?,
            None,
        ),
        (None, Some(c)) => {
            let cert = Certificate::from_pem(&read_file(c)?)
                .map_err(|e| InputError(format!("{}: {e}", c.display())))?;
            (
                cert.public_key().map_err(|e| InputError(e.to_string()))?,
                Some(cert.serial_hex()),
            )
        }
        (None, None) => return Err(InputError("give --public-key or --cert".into())),
    };
    let body = read_stdin()?;
    let message = response_message(ts, nonce, &body);
    let now = now.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
            .unwrap_or(0)
    });
    let reason = if signature.starts_with(SIGNTEST_PREFIX) {
        Some("signature probe (WECHATPAY/SIGNTEST/)".to_string())
    } else if let Err(e) = check_fresh(ts, now) {
        Some(e.to_string())
    } else if !key.verify_sha256_base64(&message, signature) {
        Some("signature does not verify".to_string())
    } else {
        None
    };
    let valid = reason.is_none();
    emit(
        &json!({"valid": valid, "message": String::from_utf8_lossy(&message), "cert_serial": serial, "reason": reason}),
        valid,
    )
}

fn v3_decrypt(key_file: &Path, nonce: &str, aad: &str) -> WbResult {
    let key = secret_file(key_file)?;
    let ct = read_stdin_string()?;
    match aead::decrypt(key.as_bytes(), nonce, aad, ct.trim()) {
        Ok(pt) => {
            let mut out = std::io::stdout();
            out.write_all(&pt)
                .and_then(|()| out.write_all(b"\n"))
                .map_err(|e| InputError(e.to_string()))?;
            Ok(ExitCode::SUCCESS)
        }
        Err(e @ aead::AeadError::Authentication) => invalid(&e.to_string()),
        Err(e) => Err(InputError(e.to_string())),
    }
}
