//! `paybridge doctor --online`: proves each account's keys with its provider. A signed query
//! for an order that cannot exist is the cheapest call that exercises both directions: the
//! provider checks our signature (a refusal names the wrong key pair) and signs an answer we
//! must verify (a failure names the wrong provider key). Nothing is created or changed.

use std::sync::Arc;

use async_trait::async_trait;
use paybridge_alipay::api::{TradeQuery, TradeRef};
use paybridge_alipay::request::CallOptions;
use paybridge_alipay::AlipayError;
use paybridge_http::{HttpRequest, Transport, TransportConfig};
use paybridge_wechatpay::v2::api::OrderId;
use paybridge_wechatpay::v2::V2Error;
use paybridge_wechatpay::v3::error::V3Error;

use super::{Finding, Report, Severity};
use crate::channels;
use crate::config::{AccountConfig, Config, ProviderConfig};
use crate::service::calllog::{CallSink, ProviderCall};

/// Beyond this, WeChat Pay refuses our APIv3 timestamps and we refuse its answers.
const CLOCK_SKEW_ERROR_SECS: i64 = 300;
const CLOCK_SKEW_WARNING_SECS: i64 = 30;

/// The doctor's calls are not a payment's: they are not recorded.
struct Unrecorded;

#[async_trait]
impl CallSink for Unrecorded {
    async fn record(&self, _call: ProviderCall) {}
}

struct Out {
    scope: String,
    findings: Vec<Finding>,
}

impl Out {
    fn push(&mut self, severity: Severity, field: &str, problem: String, fix: &str) {
        self.findings.push(Finding {
            severity,
            scope: self.scope.clone(),
            field: field.into(),
            path: None,
            problem,
            fix: fix.into(),
        });
    }
}

/// Every account of a configuration that loaded, against its provider.
pub async fn diagnose_online(config: &Config, now: i64) -> Report {
    let sink: Arc<dyn CallSink> = Arc::new(Unrecorded);
    let probe = format!("PBDOCTOR{}", paybridge_crypto::random_string(16));
    // One plain client for the clock checks (the probes go through each account's own).
    let plain = paybridge_http::ReqwestTransport::new(&TransportConfig::default()).ok();
    let mut findings = Vec::new();
    for a in config.accounts.values() {
        let mut out = Out {
            scope: format!("accounts.{}", a.id),
            findings: Vec::new(),
        };
        match &a.provider {
            ProviderConfig::Alipay(c) => {
                alipay(&mut out, a, c, &sink, &probe).await;
                clock(&mut out, plain.as_ref(), "gateway_url", &c.gateway_url, now).await;
            }
            ProviderConfig::Wechat(c) => {
                if let Some(v3) = &c.v3 {
                    wechat_v3(&mut out, a, c, v3, &sink, &probe).await;
                }
                if let Some(v2) = &c.v2 {
                    wechat_v2(&mut out, a, c, v2, &sink, &probe).await;
                }
                clock(&mut out, plain.as_ref(), "base_url", &c.base_url, now).await;
            }
        }
        findings.extend(out.findings);
    }
    Report { findings }
}

async fn alipay(
    out: &mut Out,
    a: &AccountConfig,
    c: &crate::config::AlipayConfig,
    sink: &Arc<dyn CallSink>,
    probe: &str,
) {
    let client = match channels::alipay_client(a, c, sink) {
        Ok(client) => client,
        Err(e) => {
            return out.push(
                Severity::Error,
                "alipay",
                e.to_string(),
                "fix the offline findings first",
            )
        }
    };
    let query = TradeQuery {
        trade: TradeRef::out_trade_no(probe),
    };
    match client.execute(&query, &CallOptions::default()).await {
        // Found an order of that number: the keys work both ways.
        Ok(_) => {}
        Err(AlipayError::Gateway(e)) if e.sub_code == "ACQ.TRADE_NOT_EXIST" => {}
        Err(AlipayError::Gateway(e)) if e.sub_code.contains("invalid-signature") => out.push(
            Severity::Error,
            "app_private_key",
            format!("Alipay refused our request signature ({}): app_private_key is not the key pair registered for app {}", e.sub_code, c.app_id),
            "upload the public key of app_private_key (应用公钥) in the Alipay console, or configure the private key that belongs to the registered one",
        ),
        Err(AlipayError::Gateway(e)) if e.sub_code.contains("app-cert-sn") || e.sub_code.contains("root-cert-sn") => out.push(
            Severity::Error,
            "app_cert_file",
            format!("Alipay refused the certificate SNs ({}): the certificates are not this app's", e.sub_code),
            "download appCertPublicKey, alipayCertPublicKey_RSA2 and alipayRootCert again from this app's console page",
        ),
        Err(AlipayError::Gateway(e)) if e.sub_code.contains("invalid-app-id") => out.push(
            Severity::Error,
            "app_id",
            format!("Alipay does not know app {} ({})", c.app_id, e.sub_code),
            "copy the APPID from the Alipay open platform (and check gateway_url: sandbox apps live on the sandbox gateway)",
        ),
        Err(e @ (AlipayError::BadResponseSignature { .. } | AlipayError::UnknownCertSn { .. } | AlipayError::CertNotTrusted { .. })) => out.push(
            Severity::Error,
            "alipay_public_key",
            format!("Alipay's answer does not verify with the configured Alipay key: {e}"),
            "configure Alipay's public key (支付宝公钥) or certificate of this app, not another app's or your own",
        ),
        Err(AlipayError::Transport(e)) => out.push(
            Severity::Error,
            "gateway_url",
            format!("cannot reach {}: {e}", c.gateway_url),
            "check gateway_url, DNS and the outbound firewall",
        ),
        Err(e) => out.push(Severity::Error, "alipay", format!("the probe query failed: {e}"), "see the message; run with RUST_LOG=debug for the exchange"),
    }
}

async fn wechat_v3(
    out: &mut Out,
    a: &AccountConfig,
    c: &crate::config::WechatConfig,
    v3: &crate::config::WechatV3Config,
    sink: &Arc<dyn CallSink>,
    probe: &str,
) {
    let client = match channels::wechat_v3_client(a, c, v3, sink) {
        Ok(client) => client,
        Err(e) => {
            return out.push(
                Severity::Error,
                "v3",
                e.to_string(),
                "fix the offline findings first",
            )
        }
    };
    match client.query_by_out_trade_no(probe).await {
        Ok(_) => {}
        Err(V3Error::Api { code, .. }) if code == "ORDER_NOT_EXIST" || code == "RESOURCE_NOT_EXISTS" => {}
        Err(V3Error::Api { status: 401, code, message, .. }) => out.push(
            Severity::Error,
            "v3.merchant_private_key",
            format!("WeChat Pay refused our request signature ({code}: {message}): merchant_private_key is not the key of certificate {}", v3.merchant_serial),
            "configure apiclient_key.pem of the certificate whose serial is merchant_serial (openssl x509 -in apiclient_cert.pem -noout -serial)",
        ),
        Err(V3Error::Verify(e)) => out.push(
            Severity::Error,
            "v3.public_key_file",
            format!("WeChat Pay's answer does not verify with the configured keys: {e}"),
            "configure this merchant's WeChat Pay public key (and its PUB_KEY_ID_...) or platform certificates",
        ),
        Err(V3Error::Transport(e)) => out.push(
            Severity::Error,
            "base_url",
            format!("cannot reach {}: {e}", c.base_url),
            "check base_url, DNS and the outbound firewall",
        ),
        Err(e) => out.push(Severity::Error, "v3", format!("the probe query failed: {e}"), "see the message; run with RUST_LOG=debug for the exchange"),
    }
}

async fn wechat_v2(
    out: &mut Out,
    a: &AccountConfig,
    c: &crate::config::WechatConfig,
    v2: &crate::config::WechatV2Config,
    sink: &Arc<dyn CallSink>,
    probe: &str,
) {
    let client = match channels::wechat_v2_client(a, c, v2, sink) {
        Ok(client) => client,
        Err(e) => {
            return out.push(
                Severity::Error,
                "v2",
                e.to_string(),
                "fix the offline findings first",
            )
        }
    };
    match client.order_query(&OrderId::OutTradeNo(probe.to_string())).await {
        Ok(_) => {}
        Err(V2Error::Business(b)) if b.code == "ORDERNOTEXIST" => {}
        Err(V2Error::Return { message }) if message.contains("签名") || message.to_ascii_uppercase().contains("SIGN") => out.push(
            Severity::Error,
            "v2.api_key",
            format!("WeChat Pay refused our APIv2 signature ({message}): api_key is not this merchant's APIv2 key"),
            "set the APIv2 key (API密钥) in the merchant platform and configure the same 32 characters",
        ),
        Err(V2Error::Sign(e)) => out.push(
            Severity::Error,
            "v2.api_key",
            format!("WeChat Pay's APIv2 answer does not verify with api_key: {e}"),
            "configure this merchant's APIv2 key",
        ),
        Err(V2Error::Transport(e)) => out.push(
            Severity::Error,
            "base_url",
            format!("cannot reach {}: {e}", c.base_url),
            "check base_url, DNS and the outbound firewall",
        ),
        Err(e) => out.push(Severity::Error, "v2", format!("the probe query failed: {e}"), "see the message"),
    }
}

/// This machine's clock against the provider's `Date`: APIv3 signatures are refused beyond
/// five minutes either way, and notifications look stale.
async fn clock(
    out: &mut Out,
    transport: Option<&paybridge_http::ReqwestTransport>,
    field: &str,
    url: &str,
    now: i64,
) {
    let Some(transport) = transport else {
        return;
    };
    let Ok(resp) = transport
        .send(HttpRequest::new("GET", url).idempotent(true))
        .await
    else {
        return; // Unreachable hosts are reported by the probe.
    };
    let date = resp
        .headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("date"))
        .and_then(|(_, v)| httpdate::parse_http_date(v).ok())
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| d.as_secs() as i64);
    let Some(theirs) = date else {
        return;
    };
    let skew = now - theirs;
    let problem = format!("this machine's clock is {skew} s off the provider's ({url})");
    let fix = "run NTP (chrony or systemd-timesyncd) on this machine";
    if skew.abs() > CLOCK_SKEW_ERROR_SECS {
        out.push(Severity::Error, field, problem, fix);
    } else if skew.abs() > CLOCK_SKEW_WARNING_SECS {
        out.push(Severity::Warning, field, problem, fix);
    }
}
