//! Reading what a setting names (a file or an environment variable) and recognising the key
//! material in it, each problem recorded as a finding rather than returned.

use std::path::PathBuf;

use paybridge_crypto::{inspect_key_text, Certificate, KeyMaterial, RsaPrivateKey, RsaPublicKey};

use super::{Finding, Severity, EXPIRY_WARNING_DAYS};
use crate::config::Resolver;

/// Text read for a setting, and the file it came from (none for an environment variable).
pub(super) struct Read {
    /// The setting it came from, as written (`app_private_key_file`, `apiv3_key_env`).
    pub field: String,
    pub text: String,
    pub path: Option<PathBuf>,
}

pub(super) struct Ctx<'a> {
    r: &'a Resolver<'a>,
    pub now: i64,
    scope: String,
    findings: Vec<Finding>,
}

impl<'a> Ctx<'a> {
    pub fn new(r: &'a Resolver<'a>, now: i64) -> Self {
        Ctx {
            r,
            now,
            scope: String::new(),
            findings: Vec::new(),
        }
    }

    pub fn into_findings(self) -> Vec<Finding> {
        self.findings
    }

    pub fn scope(&mut self, scope: impl Into<String>) {
        self.scope = scope.into();
    }

    pub fn resolver(&self) -> &Resolver<'a> {
        self.r
    }

    fn push(
        &mut self,
        severity: Severity,
        field: &str,
        path: Option<PathBuf>,
        problem: String,
        fix: String,
    ) {
        self.findings.push(Finding {
            severity,
            scope: self.scope.clone(),
            field: field.to_string(),
            path,
            problem,
            fix,
        });
    }

    pub fn error(
        &mut self,
        field: &str,
        path: Option<PathBuf>,
        problem: impl Into<String>,
        fix: impl Into<String>,
    ) {
        self.push(Severity::Error, field, path, problem.into(), fix.into());
    }

    pub fn warn(
        &mut self,
        field: &str,
        path: Option<PathBuf>,
        problem: impl Into<String>,
        fix: impl Into<String>,
    ) {
        self.push(Severity::Warning, field, path, problem.into(), fix.into());
    }

    /// A file setting (`<name>_file`), relative to the configuration's directory.
    pub fn file(&mut self, field: &str, path: Option<&String>, required: bool) -> Option<Read> {
        let Some(p) = path else {
            if required {
                self.error(
                    field,
                    None,
                    "not set",
                    format!("set {field} to the file's path"),
                );
            }
            return None;
        };
        let resolved = self.r.path(p);
        match std::fs::read_to_string(&resolved) {
            Ok(text) => Some(Read {
                field: field.to_string(),
                text,
                path: Some(resolved),
            }),
            Err(e) => {
                self.error(
                    field,
                    Some(resolved),
                    format!("cannot read the file: {e}"),
                    "check the path (relative paths start at the configuration file's directory) and that paybridge may read it",
                );
                None
            }
        }
    }

    /// A secret given as `<name>_file` or `<name>_env`.
    pub fn secret(
        &mut self,
        name: &str,
        file: Option<&String>,
        env: Option<&String>,
        required: bool,
    ) -> Option<Read> {
        match (file, env) {
            (Some(_), Some(_)) => {
                self.error(
                    &format!("{name}_file"),
                    None,
                    format!("both {name}_file and {name}_env are set"),
                    "keep one of them",
                );
                None
            }
            (Some(_), None) => {
                let read = self.file(&format!("{name}_file"), file, true)?;
                Some(Read {
                    field: read.field,
                    text: read.text.trim().to_string(),
                    path: read.path,
                })
            }
            (None, Some(var)) => match (self.r.env)(var) {
                Some(v) if !v.trim().is_empty() => Some(Read {
                    field: format!("{name}_env"),
                    text: v.trim().to_string(),
                    path: None,
                }),
                _ => {
                    self.error(
                        &format!("{name}_env"),
                        None,
                        format!("environment variable {var} is not set"),
                        format!("export {var} in the gateway's environment (systemd: Environment= or EnvironmentFile=)"),
                    );
                    None
                }
            },
            (None, None) if required => {
                self.error(
                    &format!("{name}_file"),
                    None,
                    format!("{name}_file or {name}_env is required"),
                    format!("set {name}_file to a file holding it, or {name}_env to a variable"),
                );
                None
            }
            (None, None) => None,
        }
    }

    /// The setting must hold a private key: names what it holds instead.
    pub fn private_key(&mut self, read: &Read, what: &str) -> Option<RsaPrivateKey> {
        let field = read.field.as_str();
        let (material, _) = inspect_key_text(&read.text);
        let path = read.path.clone();
        match material {
            KeyMaterial::Pkcs8PrivateKey | KeyMaterial::Pkcs1PrivateKey => {}
            KeyMaterial::EncryptedPrivateKey => {
                self.error(
                    field,
                    path,
                    "the private key is encrypted with a passphrase",
                    "write it unencrypted (0600): openssl pkey -in key.pem -out key-plain.pem",
                );
                return None;
            }
            KeyMaterial::Certificate(_) => {
                self.error(
                    field,
                    path,
                    "this is a certificate, not a private key",
                    format!(
                        "point {field} at {what} (the private key the certificate was made for)"
                    ),
                );
                return None;
            }
            KeyMaterial::SpkiPublicKey | KeyMaterial::Pkcs1PublicKey => {
                self.error(
                    field,
                    path,
                    format!("this is {}, not a private key", material.describe()),
                    format!("point {field} at {what}"),
                );
                return None;
            }
            other => {
                self.error(
                    field,
                    path,
                    format!("not a private key: {}", other.describe()),
                    format!("point {field} at {what}, PEM or the console's bare base64"),
                );
                return None;
            }
        }
        match RsaPrivateKey::from_text(&read.text) {
            Ok(k) => Some(k),
            Err(e) => {
                self.error(
                    field,
                    path,
                    format!("not a usable RSA private key: {e}"),
                    format!("export {what} again"),
                );
                None
            }
        }
    }

    /// The setting must hold a public key (SubjectPublicKeyInfo, PEM or bare base64).
    pub fn public_key(&mut self, read: &Read, what: &str) -> Option<RsaPublicKey> {
        let field = read.field.as_str();
        let (material, _) = inspect_key_text(&read.text);
        let path = read.path.clone();
        match material {
            KeyMaterial::SpkiPublicKey => {}
            KeyMaterial::Pkcs1PublicKey => self.warn(
                field,
                path.clone(),
                "PKCS#1 (RSA PUBLIC KEY) given where SubjectPublicKeyInfo is expected; paybridge reads it, most SDKs and tools do not",
                "convert it: openssl rsa -RSAPublicKey_in -in key.pem -pubout -out key-spki.pem",
            ),
            m if m.is_private_key() => {
                self.error(field, path, format!("this is {}: a private key where {what} belongs", m.describe()), format!("put {what} here, and keep private keys only in the settings that sign"));
                return None;
            }
            KeyMaterial::Certificate(_) => {
                self.error(field, path, format!("this is a certificate where {what} belongs"), "use the public key, or switch the account to certificate mode and configure the certificate there");
                return None;
            }
            other => {
                self.error(field, path, format!("not a public key: {}", other.describe()), format!("paste {what} (PEM or bare base64)"));
                return None;
            }
        }
        match RsaPublicKey::from_text(&read.text) {
            Ok(k) => Some(k),
            Err(e) => {
                self.error(
                    field,
                    path,
                    format!("not an RSA public key: {e}"),
                    format!("paste {what} again"),
                );
                None
            }
        }
    }

    /// The file must hold certificates; the first is returned and every one is dated.
    pub fn certificates(&mut self, read: &Read, what: &str) -> Vec<Certificate> {
        let field = read.field.as_str();
        let (material, _) = inspect_key_text(&read.text);
        let path = read.path.clone();
        match material {
            KeyMaterial::Certificate(_) => {}
            m if m.is_private_key() => {
                self.error(
                    field,
                    path,
                    format!("this is {}, not a certificate", m.describe()),
                    format!("point {field} at {what}"),
                );
                return Vec::new();
            }
            other => {
                self.error(
                    field,
                    path,
                    format!("not a certificate: {}", other.describe()),
                    format!("point {field} at {what}"),
                );
                return Vec::new();
            }
        }
        let members = match Certificate::bundle_from_pem(&read.text) {
            Ok(m) => m,
            Err(e) => {
                self.error(
                    field,
                    path,
                    format!("not a certificate: {e}"),
                    format!("point {field} at {what}"),
                );
                return Vec::new();
            }
        };
        let mut certs = Vec::new();
        for m in members {
            match m {
                Ok(c) => certs.push(c),
                Err(e) => self.warn(
                    field,
                    path.clone(),
                    format!("a member does not parse and is skipped: {e}"),
                    "nothing to do if this is an SM2 member of Alipay's root bundle",
                ),
            }
        }
        certs
    }

    /// Expired or not yet valid: error; within [`EXPIRY_WARNING_DAYS`]: warning.
    pub fn dated(&mut self, field: &str, path: Option<PathBuf>, cert: &Certificate, renew: &str) {
        let subject = cert.subject_rfc2253();
        if cert.not_after_unix() < self.now {
            self.error(
                field,
                path,
                format!(
                    "certificate {subject} expired at unix {}",
                    cert.not_after_unix()
                ),
                renew.to_string(),
            );
        } else if cert.not_before_unix() > self.now {
            self.error(field, path, format!("certificate {subject} is not valid before unix {} (check this machine's clock)", cert.not_before_unix()), "wait, or fix the clock");
        } else {
            let days = (cert.not_after_unix() - self.now) / 86_400;
            if days < EXPIRY_WARNING_DAYS {
                self.warn(
                    field,
                    path,
                    format!("certificate {subject} expires in {days} day(s)"),
                    renew.to_string(),
                );
            }
        }
    }

    /// A base64 key of one of `lengths` bytes (Alipay's AES content key).
    pub fn base64_key(&mut self, read: &Read, lengths: &[usize], fix: &str) {
        let field = read.field.as_str();
        match paybridge_crypto::b64_decode(&read.text) {
            Ok(bytes) if lengths.contains(&bytes.len()) => {}
            Ok(bytes) => self.error(
                field,
                read.path.clone(),
                format!("decodes to {} bytes, not {lengths:?}", bytes.len()),
                fix.to_string(),
            ),
            Err(e) => self.error(
                field,
                read.path.clone(),
                format!("not base64: {e}"),
                fix.to_string(),
            ),
        }
    }

    /// A key given as text of exactly `len` characters (WeChat's APIv2 and APIv3 keys).
    pub fn exact_len(&mut self, read: &Read, len: usize, fix: &str) {
        let field = read.field.as_str();
        let n = read.text.len();
        if n != len {
            self.error(
                field,
                read.path.clone(),
                format!("{n} characters, not {len}"),
                fix.to_string(),
            );
        }
    }

    /// Whether `key` pairs with `private` (same public key).
    pub fn pairs(private: &RsaPrivateKey, public: &RsaPublicKey) -> bool {
        private.public_key().ok().as_ref() == Some(public)
    }
}
