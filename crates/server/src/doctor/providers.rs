//! `[[accounts]]`: each provider's keys, certificates and identities, and the accounts against
//! each other.

use std::collections::HashMap;

use paybridge_alipay::cert_mode::{cert_sn, AlipayCertSet};
use paybridge_crypto::{Certificate, RsaPrivateKey, RsaPublicKey};

use super::material::Ctx;
use crate::config::{RawAccount, RawAlipay, RawConfig, RawWechat};

/// What identifies an account at its provider, and the key its notifications verify with
/// (SPKI DER), to find accounts that would accept each other's notifications.
struct Identity {
    account: String,
    mode: String,
    provider_id: String,
    verifying: Vec<Vec<u8>>,
}

pub(super) fn check_accounts(ctx: &mut Ctx<'_>, raw: &RawConfig) {
    let mut ids: HashMap<&str, usize> = HashMap::new();
    let mut identities: Vec<Identity> = Vec::new();
    for a in &raw.accounts {
        ctx.scope(format!("accounts.{}", a.id));
        *ids.entry(a.id.as_str()).or_default() += 1;
        if a.id.is_empty()
            || !a
                .id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            ctx.error(
                "id",
                None,
                format!("{:?}", a.id),
                "use letters, digits, '-' and '_' (it is part of the notify URL)",
            );
        }
        if a.mode.parse::<paybridge_core::Mode>().is_err() {
            ctx.error("mode", None, format!("{:?}", a.mode), "use live or sandbox");
        }
        let live = a.mode == "live";
        match a.channel.as_str() {
            "alipay" => match &a.alipay {
                Some(ali) => identities.extend(alipay(ctx, a, ali, live)),
                None => ctx.error(
                    "alipay",
                    None,
                    "channel alipay without an [accounts.alipay] section",
                    "add the section with app_id and keys",
                ),
            },
            "wechat" => match &a.wechat {
                Some(wx) => identities.extend(wechat(ctx, a, wx, live)),
                None => ctx.error(
                    "wechat",
                    None,
                    "channel wechat without an [accounts.wechat] section",
                    "add the section with mchid, appid and v2 and/or v3",
                ),
            },
            other => ctx.error(
                "channel",
                None,
                format!("{other:?}"),
                "use alipay or wechat",
            ),
        }
    }
    for (id, n) in ids {
        if n > 1 {
            ctx.scope(format!("accounts.{id}"));
            ctx.error(
                "id",
                None,
                format!("{n} accounts share this id"),
                "give each account its own id",
            );
        }
    }
    shared_identities(ctx, &identities);
}

fn shared_identities(ctx: &mut Ctx<'_>, identities: &[Identity]) {
    for (i, a) in identities.iter().enumerate() {
        for b in &identities[..i] {
            if a.provider_id != b.provider_id {
                continue;
            }
            ctx.scope(format!("accounts.{}", a.account));
            let shares_key = a.verifying.iter().any(|k| b.verifying.contains(k));
            if a.mode == b.mode {
                ctx.error(
                    "(identity)",
                    None,
                    format!(
                        "same provider identity {} as account {} in the same mode",
                        a.provider_id, b.account
                    ),
                    "keep one account per app / merchant and mode",
                );
            } else if shares_key {
                ctx.error(
                    "(identity)",
                    None,
                    format!("shares provider identity {} and its verifying key with account {}: each would accept the other's notifications", a.provider_id, b.account),
                    "a sandbox account must use the provider's sandbox app / merchant, not the live one",
                );
            }
        }
    }
}

fn https_in_live(ctx: &mut Ctx<'_>, field: &str, url: &str, live: bool) {
    match url::Url::parse(url) {
        Err(e) => ctx.error(
            field,
            None,
            format!("not a URL: {e}"),
            "write the provider's full URL, or leave it out for the default",
        ),
        Ok(u) if live && u.scheme() != "https" => ctx.error(
            field,
            None,
            "a live account talks to the provider over plain http",
            "leave it out (the provider's https default) or use https",
        ),
        Ok(_) => {}
    }
}

fn alipay(ctx: &mut Ctx<'_>, a: &RawAccount, raw: &RawAlipay, live: bool) -> Option<Identity> {
    if !(raw.app_id.len() == 16 && raw.app_id.bytes().all(|b| b.is_ascii_digit())) {
        ctx.warn(
            "app_id",
            None,
            format!("{:?} is not 16 digits like Alipay's app ids", raw.app_id),
            "copy the APPID from the Alipay open platform console",
        );
    }
    if let Some(seller) = &raw.seller_id {
        if !(seller.len() == 16 && seller.starts_with("2088")) {
            ctx.warn(
                "seller_id",
                None,
                format!("{seller:?} is not a 2088... partner id"),
                "copy the PID (2088...) from the merchant console",
            );
        }
    }
    if let Some(url) = &raw.gateway_url {
        https_in_live(ctx, "gateway_url", url, live);
    }
    let app_key = ctx
        .secret(
            "app_private_key",
            raw.app_private_key_file.as_ref(),
            raw.app_private_key_env.as_ref(),
            true,
        )
        .and_then(|read| ctx.private_key(&read, "the app private key (应用私钥)"));
    let mut verifying = Vec::new();
    match raw.key_mode.as_deref().unwrap_or("public_key") {
        "public_key" => {
            for (field, present) in [
                ("app_cert_file", raw.app_cert_file.is_some()),
                ("alipay_cert_file", raw.alipay_cert_file.is_some()),
                ("alipay_root_cert_file", raw.alipay_root_cert_file.is_some()),
            ] {
                if present {
                    ctx.warn(
                        field,
                        None,
                        "set, but key_mode is public_key: it is not used",
                        "set key_mode = \"certificate\", or remove the certificate settings",
                    );
                }
            }
            let read = ctx.secret(
                "alipay_public_key",
                raw.alipay_public_key_file.as_ref(),
                raw.alipay_public_key_env.as_ref(),
                true,
            );
            if let Some(read) = read {
                if let Some(key) = ctx.public_key(&read, "Alipay's public key (支付宝公钥)") {
                    if app_key.as_ref().is_some_and(|k| Ctx::pairs(k, &key)) {
                        ctx.error(
                            &read.field,
                            read.path.clone(),
                            "this is the public half of your own app private key (应用公钥), not Alipay's public key",
                            "in the Alipay console, copy 支付宝公钥 (Alipay public key), not 应用公钥",
                        );
                    }
                    verifying.push(key.spki_der().to_vec());
                }
            }
        }
        "certificate" => {
            verifying = alipay_certificates(ctx, raw, app_key.as_ref());
        }
        other => ctx.error(
            "key_mode",
            None,
            format!("{other:?}"),
            "use public_key or certificate",
        ),
    }
    if let Some(read) = ctx.secret(
        "aes_key",
        raw.aes_key_file.as_ref(),
        raw.aes_key_env.as_ref(),
        false,
    ) {
        ctx.base64_key(
            &read,
            &[16, 24, 32],
            "copy the AES key (接口内容加密方式) from the Alipay console: base64 of 16 bytes",
        );
    }
    Some(Identity {
        account: a.id.clone(),
        mode: a.mode.clone(),
        provider_id: format!("alipay {}", raw.app_id),
        verifying,
    })
}

/// Certificate mode: the app certificate holds the app key, Alipay's certificate chains to the
/// root bundle, nothing expires soon. Returns the verifying keys.
fn alipay_certificates(
    ctx: &mut Ctx<'_>,
    raw: &RawAlipay,
    app_key: Option<&RsaPrivateKey>,
) -> Vec<Vec<u8>> {
    let mut verifying = Vec::new();
    let renew = "download the renewed certificate from the Alipay open platform console";
    if let Some(read) = ctx.file("app_cert_file", raw.app_cert_file.as_ref(), true) {
        if let Some(cert) = ctx
            .certificates(
                &read,
                "the app public key certificate (appCertPublicKey_<app_id>.crt)",
            )
            .into_iter()
            .next()
        {
            ctx.dated("app_cert_file", read.path.clone(), &cert, renew);
            let holds_app_key = cert
                .public_key()
                .ok()
                .zip(app_key)
                .is_some_and(|(k, app)| Ctx::pairs(app, &k));
            if app_key.is_some() && !holds_app_key {
                ctx.error(
                    "app_cert_file",
                    read.path.clone(),
                    "the app certificate does not hold the app private key's public key: they are from different key pairs",
                    "use the appCertPublicKey file issued for this app private key (or the private key the certificate was requested with)",
                );
            }
        }
    }
    let root = ctx.file(
        "alipay_root_cert_file",
        raw.alipay_root_cert_file.as_ref(),
        true,
    );
    let mut roots = AlipayCertSet::new();
    if let Some(read) = &root {
        let members = ctx.certificates(
            read,
            "Alipay's root certificate bundle (alipayRootCert.crt)",
        );
        if !members.is_empty() && !members.iter().any(Certificate::is_rsa_signed) {
            ctx.error(
                "alipay_root_cert_file",
                read.path.clone(),
                "the bundle holds no RSA-signed root",
                "use alipayRootCert.crt as downloaded from the console",
            );
        }
        if roots.set_roots(&read.text).is_err() {
            roots = AlipayCertSet::new();
        }
    }
    if let Some(read) = ctx.file("alipay_cert_file", raw.alipay_cert_file.as_ref(), true) {
        if let Some(cert) = ctx
            .certificates(
                &read,
                "Alipay's public key certificate (alipayCertPublicKey_RSA2.crt)",
            )
            .into_iter()
            .next()
        {
            ctx.dated("alipay_cert_file", read.path.clone(), &cert, renew);
            if let Ok(key) = cert.public_key() {
                if app_key.is_some_and(|k| Ctx::pairs(k, &key)) {
                    ctx.error(
                        "alipay_cert_file",
                        read.path.clone(),
                        "this is your app's certificate, not Alipay's",
                        "use alipayCertPublicKey_RSA2.crt here and appCertPublicKey_<app_id>.crt in app_cert_file",
                    );
                }
                verifying.push(key.spki_der().to_vec());
            }
            if root.is_some() {
                if let Err(e) = roots.check_chain(&read.text, &cert_sn(&cert), ctx.now) {
                    if !matches!(
                        e,
                        paybridge_alipay::cert_mode::CertTrustError::Expired { .. }
                    ) {
                        ctx.error(
                            "alipay_cert_file",
                            read.path.clone(),
                            format!("does not chain to alipay_root_cert_file: {e}"),
                            "use the alipayCertPublicKey_RSA2.crt and alipayRootCert.crt downloaded together from the console",
                        );
                    }
                }
            }
        }
    }
    verifying
}

fn wechat(ctx: &mut Ctx<'_>, a: &RawAccount, raw: &RawWechat, live: bool) -> Option<Identity> {
    if raw.mchid.is_empty() || !raw.mchid.bytes().all(|b| b.is_ascii_digit()) {
        ctx.warn(
            "mchid",
            None,
            format!("{:?} is not a merchant number (digits)", raw.mchid),
            "copy 商户号 from the WeChat Pay merchant platform",
        );
    }
    if !raw.appid.starts_with("wx") {
        ctx.warn(
            "appid",
            None,
            format!("{:?} does not look like an AppID (wx...)", raw.appid),
            "copy the AppID bound to the merchant",
        );
    }
    if let Some(url) = &raw.base_url {
        https_in_live(ctx, "base_url", url, live);
    }
    if raw.v2.is_none() && raw.v3.is_none() {
        ctx.error(
            "wechat",
            None,
            "neither v2 nor v3 is configured",
            "add [accounts.wechat.v3] (or v2 for barcode payments)",
        );
    }
    let mut verifying = Vec::new();
    if let Some(v2) = &raw.v2 {
        if let Some(read) = ctx.secret(
            "v2.api_key",
            v2.api_key_file.as_ref(),
            v2.api_key_env.as_ref(),
            true,
        ) {
            ctx.exact_len(
                &read,
                32,
                "set the APIv2 key (API密钥) in the merchant platform: exactly 32 characters",
            );
            verifying.push(read.text.into_bytes());
        }
        if let Some(t) = &v2.sign_type {
            if t != "MD5" && t != "HMAC-SHA256" {
                ctx.error(
                    "v2.sign_type",
                    None,
                    format!("{t:?}"),
                    "use MD5 or HMAC-SHA256",
                );
            }
        }
        if let Some(read) = ctx.file(
            "v2.client_identity_file",
            v2.client_identity_file.as_ref(),
            false,
        ) {
            client_identity(ctx, &read);
        }
    }
    if let Some(v3) = &raw.v3 {
        if let Some(read) = ctx.secret(
            "v3.apiv3_key",
            v3.apiv3_key_file.as_ref(),
            v3.apiv3_key_env.as_ref(),
            true,
        ) {
            ctx.exact_len(
                &read,
                32,
                "set the APIv3 key (APIv3密钥) in the merchant platform: exactly 32 characters",
            );
        }
        let serial = v3.merchant_serial.trim();
        if serial.is_empty() || !serial.bytes().all(|b| b.is_ascii_hexdigit()) {
            ctx.error("v3.merchant_serial", None, format!("{serial:?} is not a certificate serial (hex)"), "copy the serial of the merchant API certificate (商户API证书序列号): openssl x509 -in apiclient_cert.pem -noout -serial");
        }
        let merchant_key = ctx
            .secret(
                "v3.merchant_private_key",
                v3.merchant_private_key_file.as_ref(),
                v3.merchant_private_key_env.as_ref(),
                true,
            )
            .and_then(|read| {
                ctx.private_key(&read, "the merchant API private key (apiclient_key.pem)")
            });
        match (&v3.public_key_id, &v3.public_key_file) {
            (Some(id), Some(_)) => {
                let digits = id.strip_prefix(paybridge_wechatpay::v3::verify::PUBLIC_KEY_ID_PREFIX);
                if !digits.is_some_and(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit())) {
                    ctx.error("v3.public_key_id", None, format!("{id:?} is not PUB_KEY_ID_ followed by digits"), "copy the public key id (微信支付公钥ID) exactly as the merchant platform shows it");
                }
                if let Some(read) =
                    ctx.file("v3.public_key_file", v3.public_key_file.as_ref(), true)
                {
                    if let Some(key) =
                        ctx.public_key(&read, "WeChat Pay's public key (pub_key.pem)")
                    {
                        own_key_check(
                            ctx,
                            &read.field,
                            read.path.clone(),
                            merchant_key.as_ref(),
                            &key,
                        );
                        verifying.push(key.spki_der().to_vec());
                    }
                }
            }
            (Some(_), None) => ctx.error(
                "v3.public_key_file",
                None,
                "public_key_id is set without public_key_file",
                "set public_key_file to pub_key.pem",
            ),
            (None, Some(_)) => ctx.error(
                "v3.public_key_id",
                None,
                "public_key_file is set without public_key_id",
                "set public_key_id to the PUB_KEY_ID_... shown beside the key",
            ),
            (None, None) => {}
        }
        if let Some(read) = ctx.file(
            "v3.platform_certificates_file",
            v3.platform_certificates_file.as_ref(),
            false,
        ) {
            for cert in ctx.certificates(&read, "the platform certificates (wechatpay_*.pem)") {
                ctx.dated("v3.platform_certificates_file", read.path.clone(), &cert, "download the current platform certificates, or move to the WeChat Pay public key");
                if let Ok(key) = cert.public_key() {
                    own_key_check(
                        ctx,
                        &read.field,
                        read.path.clone(),
                        merchant_key.as_ref(),
                        &key,
                    );
                    verifying.push(key.spki_der().to_vec());
                }
            }
        }
    }
    Some(Identity {
        account: a.id.clone(),
        mode: a.mode.clone(),
        provider_id: format!("wechat {}", raw.mchid),
        verifying,
    })
}

/// The merchant's own certificate or public key configured as WeChat Pay's: every answer would
/// fail (or, worse, anyone with the merchant key could sign "WeChat Pay" notifications).
fn own_key_check(
    ctx: &mut Ctx<'_>,
    field: &str,
    path: Option<std::path::PathBuf>,
    merchant: Option<&RsaPrivateKey>,
    key: &RsaPublicKey,
) {
    if merchant.is_some_and(|m| Ctx::pairs(m, key)) {
        ctx.error(
            field,
            path,
            "this is the merchant's own key (apiclient), not WeChat Pay's",
            "use WeChat Pay's public key (pub_key.pem) or platform certificate, not apiclient_cert.pem",
        );
    }
}

/// APIv2 `/secapi` identity: a certificate and the private key it was issued for.
fn client_identity(ctx: &mut Ctx<'_>, read: &super::material::Read) {
    let field = "v2.client_identity_file";
    let certs = Certificate::bundle_from_pem(&read.text).unwrap_or_default();
    let cert = certs.into_iter().find_map(Result::ok);
    let key = RsaPrivateKey::from_text(&read.text).ok();
    match (cert, key) {
        (Some(cert), Some(key)) => {
            ctx.dated(
                field,
                read.path.clone(),
                &cert,
                "renew the merchant API certificate in the merchant platform",
            );
            if !cert.public_key().is_ok_and(|p| Ctx::pairs(&key, &p)) {
                ctx.error(
                    field,
                    read.path.clone(),
                    "the certificate and the private key in the file are from different key pairs",
                    "concatenate apiclient_cert.pem and apiclient_key.pem of the same certificate",
                );
            }
        }
        (None, _) => ctx.error(
            field,
            read.path.clone(),
            "no certificate in the file",
            "concatenate apiclient_cert.pem and apiclient_key.pem into one file",
        ),
        (_, None) => ctx.error(
            field,
            read.path.clone(),
            "no private key in the file",
            "concatenate apiclient_cert.pem and apiclient_key.pem into one file",
        ),
    }
}
