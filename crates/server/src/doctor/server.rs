//! `[server]`, `[database]` and `[webhooks]`.

use super::material::Ctx;
use crate::config::RawConfig;

/// Shorter webhook secrets are refused by the loader...
const MIN_WEBHOOK_SECRET: usize = 16;
/// ...and these are reported: an HMAC key should hold at least as many bytes as its digest.
const GOOD_WEBHOOK_SECRET: usize = 32;

pub(super) fn check(ctx: &mut Ctx<'_>, raw: &RawConfig) {
    let live = raw.accounts.iter().any(|a| a.mode == "live");
    ctx.scope("server");
    if let Some(listen) = &raw.server.listen {
        if listen.parse::<std::net::SocketAddr>().is_err() {
            ctx.error(
                "listen",
                None,
                format!("{listen:?} is not ip:port"),
                "write it as 0.0.0.0:8080 or 127.0.0.1:8080",
            );
        }
    }
    match raw.server.public_base_url.as_deref() {
        None if live => ctx.error(
            "public_base_url",
            None,
            "not set: providers are told to notify http://<listen>, which they cannot reach",
            "set public_base_url to the https address providers reach this gateway at",
        ),
        None => {}
        Some(text) => match url::Url::parse(text) {
            Err(e) => ctx.error(
                "public_base_url",
                None,
                format!("not a URL: {e}"),
                "write it as https://pay.example.com",
            ),
            Ok(u) => {
                if u.query().is_some() || u.fragment().is_some() {
                    ctx.error(
                        "public_base_url",
                        None,
                        "carries a query string or fragment: every notify URL would too, and the providers drop or mangle them",
                        "remove everything after the path",
                    );
                }
                match u.scheme() {
                    "https" => {}
                    "http" if live => ctx.error(
                        "public_base_url",
                        None,
                        "http with live accounts: Alipay and WeChat Pay notify only https addresses in production",
                        "put the gateway behind TLS and use its https address",
                    ),
                    "http" => ctx.warn(
                        "public_base_url",
                        None,
                        "http: fine for the sandbox, refused by the providers in production",
                        "use https before adding live accounts",
                    ),
                    other => ctx.error("public_base_url", None, format!("scheme {other:?}"), "use https"),
                }
            }
        },
    }

    ctx.scope("database");
    match (&raw.database.url, &raw.database.url_env) {
        (Some(_), Some(_)) => ctx.error(
            "url",
            None,
            "both url and url_env are set",
            "keep one of them",
        ),
        (Some(u), None) => check_database_url(ctx, "url", u),
        (None, Some(var)) => match (ctx.resolver().env)(var) {
            Some(u) => check_database_url(ctx, "url_env", &u),
            None => ctx.error(
                "url_env",
                None,
                format!("environment variable {var} is not set"),
                format!("export {var} in the gateway's environment"),
            ),
        },
        (None, None) => {}
    }

    for e in &raw.webhooks.endpoints {
        ctx.scope(format!("webhooks.endpoints.{}", e.id));
        match url::Url::parse(&e.url) {
            Err(err) => ctx.error(
                "url",
                None,
                format!("not a URL: {err}"),
                "write the receiver's full URL",
            ),
            Ok(u) if u.scheme() == "http" && live && !is_loopback(&u) => ctx.warn(
                "url",
                None,
                "events (with buyer and amount data) go over plain http",
                "use the receiver's https address",
            ),
            Ok(_) => {}
        }
        if let Some(m) = &e.mode {
            if m.parse::<paybridge_core::Mode>().is_err() {
                ctx.error(
                    "mode",
                    None,
                    format!("{m:?}"),
                    "use live or sandbox, or leave it out for both",
                );
            }
        }
        if let Some(secret) = ctx.secret(
            "signing_secret",
            e.signing_secret_file.as_ref(),
            e.signing_secret_env.as_ref(),
            true,
        ) {
            let n = secret.text.len();
            let fix = format!("generate one: openssl rand -hex {GOOD_WEBHOOK_SECRET}");
            if n < MIN_WEBHOOK_SECRET {
                ctx.error(
                    &secret.field,
                    secret.path,
                    format!("{n} characters: too short to sign with"),
                    fix,
                );
            } else if n < GOOD_WEBHOOK_SECRET {
                ctx.warn(
                    &secret.field,
                    secret.path,
                    format!("{n} characters: shorter than the {GOOD_WEBHOOK_SECRET} recommended"),
                    fix,
                );
            }
        }
    }
}

fn check_database_url(ctx: &mut Ctx<'_>, field: &str, url: &str) {
    if !(url.starts_with("sqlite:")
        || url.starts_with("postgres://")
        || url.starts_with("postgresql://"))
    {
        // The URL may hold a password: only its scheme is shown.
        let scheme = url.split(':').next().unwrap_or_default();
        ctx.error(
            field,
            None,
            format!("scheme {scheme:?}"),
            "use sqlite://FILE or postgres://USER@HOST/DB",
        );
    }
}

fn is_loopback(u: &url::Url) -> bool {
    match u.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(d)) => d == "localhost",
        None => false,
    }
}
