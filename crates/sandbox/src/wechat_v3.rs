//! WeChat Pay APIv3: every request's `Authorization` verified with the merchant's key (fields in
//! any order, 300-second window), every response signed with the platform key
//! (`Wechatpay-*` headers, the 204 of close over an empty body included), notifications
//! encrypted with the APIv3 key and signed. Formats come from `paybridge_wechatpay::v3`.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State as AxState;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use paybridge_core::Fen;
use paybridge_crypto::{random_string, RsaPrivateKey};
use paybridge_wechatpay::v3::provider::{
    certificates_body, error_body, notify_body, sign_response, verify_request, CertificateOut,
};
use paybridge_wechatpay::v3::sign::parse_authorization;
use serde_json::{json, Map, Value};

use crate::clock::{parse_rfc3339, rfc3339_beijing, Millis};
use crate::config::{MerchantKeys, WechatKeyMode};
use crate::ledger::{
    Family, LedgerError, LedgerEvent, NewTrade, Provider, Refund, RefundState, Trade,
};
use crate::notifier::{BodyFault, Outgoing};
use crate::server::Inner;

/// A reply before signing.
pub(crate) struct Reply {
    pub status: StatusCode,
    pub body: String,
    /// Bill downloads are served unsigned, as WeChat Pay serves them.
    pub signed: bool,
    pub content_type: &'static str,
    pub raw: Option<Vec<u8>>,
    /// Provider timeouts on demand: the reply (a bodiless 504) is held back this long.
    pub delay_ms: u64,
}

pub(crate) fn ok_json(v: Value) -> Reply {
    Reply {
        status: StatusCode::OK,
        body: v.to_string(),
        signed: true,
        content_type: "application/json",
        raw: None,
        delay_ms: 0,
    }
}

pub(crate) fn err(status: u16, code: &str, message: &str) -> Reply {
    Reply {
        status: StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST),
        body: error_body(code, message),
        signed: true,
        content_type: "application/json",
        raw: None,
        delay_ms: 0,
    }
}

fn ledger_err(e: &LedgerError) -> Reply {
    let w = e.wechat_v3();
    err(w.status, w.code, w.message)
}

fn param(message: &str) -> Reply {
    err(400, "PARAM_ERROR", message)
}

fn finish(inner: &Inner, r: Reply, asked_serial: Option<&str>) -> Response {
    let body_bytes = r.raw.unwrap_or_else(|| r.body.into_bytes());
    let mut resp = (r.status, body_bytes.clone()).into_response();
    let headers = resp.headers_mut();
    if let Ok(v) = r.content_type.parse() {
        headers.insert("content-type", v);
    }
    headers.insert(
        "request-id",
        axum::http::HeaderValue::from_str(&random_string(24))
            .unwrap_or(axum::http::HeaderValue::from_static("sandbox")),
    );
    if r.signed {
        let ts = inner.now().div_euclid(1000);
        let (key, serial) = answer_signer(inner, asked_serial);
        match sign_response(key, serial, ts, &random_string(32), &body_bytes) {
            Ok(pairs) => {
                for (k, v) in pairs {
                    if let (Ok(name), Ok(value)) = (
                        axum::http::HeaderName::from_bytes(k.as_bytes()),
                        axum::http::HeaderValue::from_str(&v),
                    ) {
                        headers.insert(name, value);
                    }
                }
            }
            Err(e) => tracing::error!(error = %e, "cannot sign v3 response"),
        }
    }
    resp
}

/// A verified request.
pub(crate) struct Req<'a> {
    pub inner: &'a Inner,
    pub merchant: &'a MerchantKeys,
    pub body: Map<String, Value>,
    pub query: Vec<(String, String)>,
    pub now: Millis,
}

impl Req<'_> {
    pub fn q(&self, name: &str) -> Option<String> {
        self.query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .filter(|v| !v.is_empty())
    }

    /// The merchant a request acts for: the signer itself, or (service-provider mode) one of
    /// its sub-merchants.
    pub fn account(&self, sub_mchid: Option<String>) -> Result<String, Reply> {
        match sub_mchid {
            None => Ok(self.merchant.mchid.clone()),
            Some(sub)
                if self
                    .merchant
                    .sub_merchants
                    .iter()
                    .any(|m| m.sub_mchid == sub) =>
            {
                Ok(sub)
            }
            Some(_) => Err(err(403, "NO_AUTH", "服务商与子商户无受理关系")),
        }
    }

    pub fn s(&self, name: &str) -> Option<String> {
        self.body
            .get(name)
            .and_then(Value::as_str)
            .filter(|v| !v.is_empty())
            .map(str::to_string)
    }
}

/// `/v3/*`: verifies the signature, then routes.
pub(crate) async fn dispatch(
    AxState(inner): AxState<Arc<Inner>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let reply = handle(&inner, &method, &uri, &headers, &body);
    if reply.delay_ms > 0 {
        // The work is done; the answer is lost on the way back.
        tokio::time::sleep(std::time::Duration::from_millis(reply.delay_ms)).await;
        return StatusCode::GATEWAY_TIMEOUT.into_response();
    }
    let serial = headers
        .get("wechatpay-serial")
        .and_then(|v| v.to_str().ok())
        .map(str::trim);
    finish(&inner, reply, serial)
}

/// The key and serial an answer is signed with: during a migration, the public key when the
/// request asked for it by its id; otherwise the merchant's current key.
fn answer_signer<'a>(inner: &'a Inner, asked: Option<&str>) -> (&'a RsaPrivateKey, &'a str) {
    match &inner.keys.wechat_migration {
        Some((key, id)) if asked == Some(id.as_str()) => (key, id),
        _ => (&inner.keys.wechat_key, &inner.keys.wechat_serial),
    }
}

fn handle(inner: &Inner, method: &Method, uri: &Uri, headers: &HeaderMap, body: &[u8]) -> Reply {
    let auth = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let Ok(parts) = parse_authorization(auth) else {
        return err(401, "SIGN_ERROR", "Authorization 头缺失或格式错误");
    };
    let Some(merchant) = inner.keys.merchants.get(&parts.mchid) else {
        return err(401, "SIGN_ERROR", "商户号不存在");
    };
    if !parts.serial_no.eq_ignore_ascii_case(&merchant.serial) {
        return err(401, "SIGN_ERROR", "商户证书序列号有误");
    }
    let url = uri
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| uri.path().to_string());
    let now = inner.now();
    if let Err(e) = verify_request(
        auth,
        method.as_str(),
        &url,
        body,
        Some(&merchant.mchid),
        &merchant.public_key,
        now.div_euclid(1000),
    ) {
        return err(401, "SIGN_ERROR", &format!("签名错误: {e}"));
    }
    let body_map = if body.is_empty() {
        Map::new()
    } else {
        match serde_json::from_slice::<Value>(body) {
            Ok(Value::Object(m)) => m,
            _ => return param("请求体不是合法的JSON对象"),
        }
    };
    let query: Vec<(String, String)> = uri
        .query()
        .map(|q| {
            form_urlencoded::parse(q.as_bytes())
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect()
        })
        .unwrap_or_default();
    let r = Req {
        inner,
        merchant,
        body: body_map,
        query,
        now,
    };
    let path = uri.path().trim_end_matches('/');
    let mut segs: Vec<&str> = path.split('/').skip(2).collect();
    // `/v3/pay/partner/transactions/...` is the service-provider twin of each payment API.
    let partner = segs.get(1) == Some(&"partner") && segs.first() == Some(&"pay");
    if partner {
        segs.remove(1);
    }
    match (method.as_str(), segs.as_slice()) {
        ("POST", ["pay", "transactions", kind @ ("jsapi" | "app" | "h5" | "native")]) => {
            prepay(&r, kind, partner)
        }
        ("GET", ["pay", "transactions", "out-trade-no", no]) => {
            query_trade(&r, Some(no), None, partner)
        }
        ("GET", ["pay", "transactions", "id", id]) => query_trade(&r, None, Some(id), partner),
        ("POST", ["pay", "transactions", "out-trade-no", no, "close"]) => close(&r, no, partner),
        ("POST", ["refund", "domestic", "refunds"]) => refund(&r),
        ("GET", ["refund", "domestic", "refunds", no]) => query_refund(&r, no),
        ("GET", ["certificates"]) => certificates(&r),
        ("GET", ["bill", kind @ ("tradebill" | "fundflowbill")]) => {
            crate::bills::wechat_v3_bill(&r, kind)
        }
        ("GET", ["billdownload", "file"]) => crate::bills::wechat_v3_download(&r),
        ("GET", ["transferdownload", "signfile"]) => crate::bills::wechat_v3_download(&r),
        (_, ["fund-app", "mch-transfer", rest @ ..]) => {
            crate::wechat_transfer::route(&r, method.as_str(), rest, headers)
        }
        _ => err(404, "NOT_FOUND", "没有这个接口"),
    }
}

fn trade_type(kind: &str) -> &'static str {
    match kind {
        "jsapi" => "JSAPI",
        "app" => "APP",
        "h5" => "MWEB",
        _ => "NATIVE",
    }
}

/// Who an order is for: `(account, app_id, sp_mchid, sub_appid)`.
type Payee = (String, String, Option<String>, Option<String>);

fn payee(r: &Req<'_>, partner: bool) -> Result<Payee, Reply> {
    let (app_key, mch_key) = if partner {
        ("sp_appid", "sp_mchid")
    } else {
        ("appid", "mchid")
    };
    let (Some(appid), Some(mchid)) = (r.s(app_key), r.s(mch_key)) else {
        return Err(param(&format!("缺少必填参数 {app_key}/{mch_key}")));
    };
    if mchid != r.merchant.mchid {
        return Err(param(&format!("{mch_key}与请求头中的商户号不一致")));
    }
    if appid != r.merchant.appid {
        return Err(err(400, "APPID_MCHID_NOT_MATCH", "appid和mch_id不匹配"));
    }
    if !partner {
        return Ok((mchid, appid, None, None));
    }
    let Some(sub) = r.s("sub_mchid") else {
        return Err(param("缺少必填参数 sub_mchid"));
    };
    let account = r.account(Some(sub))?;
    let configured = r
        .merchant
        .sub_merchants
        .iter()
        .find(|m| m.sub_mchid == account)
        .and_then(|m| m.sub_appid.clone());
    let sub_appid = r.s("sub_appid");
    if sub_appid.is_some() && sub_appid != configured {
        return Err(err(
            400,
            "APPID_MCHID_NOT_MATCH",
            "sub_appid和sub_mchid不匹配",
        ));
    }
    Ok((account, appid, Some(mchid), sub_appid))
}

fn prepay(r: &Req<'_>, kind: &str, partner: bool) -> Reply {
    let (account, appid, sp_mchid, sub_appid) = match payee(r, partner) {
        Ok(p) => p,
        Err(reply) => return reply,
    };
    let (Some(description), Some(out_trade_no), Some(notify_url)) =
        (r.s("description"), r.s("out_trade_no"), r.s("notify_url"))
    else {
        return param("缺少必填参数 description/out_trade_no/notify_url");
    };
    if out_trade_no.len() > 32 || out_trade_no.len() < 6 {
        return param("out_trade_no长度须为6-32");
    }
    let amount = r.body.get("amount");
    let Some(total) = amount.and_then(|a| a.get("total")).and_then(Value::as_i64) else {
        return param("缺少参数 amount.total");
    };
    if let Some(c) = amount
        .and_then(|a| a.get("currency"))
        .and_then(Value::as_str)
    {
        if c != "CNY" {
            return param("currency只支持CNY");
        }
    }
    let payer = r.body.get("payer");
    let openid = ["openid", "sub_openid", "sp_openid"]
        .iter()
        .find_map(|k| payer.and_then(|p| p.get(*k)).and_then(Value::as_str))
        .map(str::to_string);
    if kind == "jsapi" && openid.is_none() {
        return param("JSAPI下单必须传payer.openid (服务商: sp_openid 或 sub_openid)");
    }
    let expires_at = match r.s("time_expire") {
        Some(t) => match parse_rfc3339(&t) {
            Some(ms) => Some(ms),
            None => return param("time_expire格式错误"),
        },
        None => Some(r.now + 2 * 3_600_000),
    };
    let new = NewTrade {
        provider: Provider::WechatV3,
        account,
        app_id: appid,
        out_trade_no,
        amount: Fen(total),
        subject: description,
        scene: trade_type(kind).to_string(),
        notify_url: Some(notify_url),
        return_url: None,
        expires_at,
        payer_id: openid,
        attach: r.s("attach"),
        hidden_until_scanned: false,
        sp_mchid,
        sub_appid,
        sign_type: None,
    };
    let mut st = r.inner.lock();
    let id = match st.ledger.create(new, r.now) {
        Ok((id, _)) => id,
        Err(e) => return ledger_err(&e),
    };
    match kind {
        "h5" => ok_json(json!({"h5_url": r.inner.pay_page_url(&id)})),
        "native" => ok_json(json!({"code_url": r.inner.pay_page_url(&id)})),
        _ => {
            let p = crate::wechat_v2::prepay_id(&mut st.prepay, &id, r.now);
            ok_json(json!({"prepay_id": p}))
        }
    }
}

/// A trade as APIv3 shows it (query responses and notification resources).
pub(crate) fn transaction_json(t: &Trade, tamper: BodyFault) -> Value {
    let mut v = json!({
        "out_trade_no": t.out_trade_no,
        "trade_type": t.scene,
        "trade_state": t.wechat_state(),
        "trade_state_desc": crate::wechat_v2::state_desc(t),
        "amount": {"total": t.amount.0, "currency": "CNY"},
    });
    let (app_field, openid_field) = match &t.sp_mchid {
        None => {
            v["appid"] = json!(t.app_id);
            v["mchid"] = json!(t.account);
            ("appid", "openid")
        }
        Some(sp) => {
            v["sp_appid"] = json!(t.app_id);
            v["sp_mchid"] = json!(sp);
            v["sub_mchid"] = json!(t.account);
            match &t.sub_appid {
                Some(a) => {
                    v["sub_appid"] = json!(a);
                    ("sp_appid", "sub_openid")
                }
                None => ("sp_appid", "sp_openid"),
            }
        }
    };
    if let Some(a) = &t.attach {
        v["attach"] = json!(a);
    }
    if let Some(p) = t.paid_at {
        v["transaction_id"] = json!(t.trade_no);
        v["bank_type"] = json!("OTHERS");
        v["success_time"] = json!(rfc3339_beijing(p));
        v["amount"] = json!({
            "total": t.amount.0, "payer_total": t.amount.0,
            "currency": "CNY", "payer_currency": "CNY"
        });
    }
    if !t.buyer_id.is_empty() {
        v["payer"] = json!({ openid_field: t.buyer_id });
    }
    match tamper {
        BodyFault::TamperedAmount => {
            v["amount"]["total"] = json!(t.amount.0 + 100);
            v["amount"]["payer_total"] = json!(t.amount.0 + 100);
        }
        BodyFault::TamperedAppId => v[app_field] = json!("wx9999999999999999"),
        BodyFault::None | BodyFault::Forged | BodyFault::SignTestProbe => {}
    }
    v
}

/// The account named by a query string or body: `mchid`, or `sp_mchid` + `sub_mchid`.
fn scope(
    r: &Req<'_>,
    partner: bool,
    get: impl Fn(&str) -> Option<String>,
) -> Result<String, Reply> {
    let mch_key = if partner { "sp_mchid" } else { "mchid" };
    match get(mch_key) {
        Some(m) if m == r.merchant.mchid => {}
        _ => return Err(param(&format!("{mch_key}参数缺失或与请求头不一致"))),
    }
    if partner {
        match get("sub_mchid") {
            Some(sub) => r.account(Some(sub)),
            None => Err(param("缺少参数 sub_mchid")),
        }
    } else {
        Ok(r.merchant.mchid.clone())
    }
}

fn query_trade(r: &Req<'_>, out_no: Option<&str>, id: Option<&str>, partner: bool) -> Reply {
    let account = match scope(r, partner, |k| r.q(k)) {
        Ok(a) => a,
        Err(reply) => return reply,
    };
    let st = r.inner.lock();
    match st.ledger.find(Family::Wechat, &account, out_no, id) {
        Ok(t) => ok_json(transaction_json(t, BodyFault::None)),
        Err(e) => ledger_err(&e),
    }
}

fn close(r: &Req<'_>, out_no: &str, partner: bool) -> Reply {
    let account = match scope(r, partner, |k| r.s(k)) {
        Ok(a) => a,
        Err(reply) => return reply,
    };
    let mut st = r.inner.lock();
    let t = match st.ledger.find(Family::Wechat, &account, Some(out_no), None) {
        Ok(t) => t.clone(),
        Err(e) => return ledger_err(&e),
    };
    match st.ledger.close(&t.id, r.now) {
        // Closing twice is harmless at WeChat Pay.
        Ok(_) | Err(LedgerError::TradeClosed) => Reply {
            status: StatusCode::NO_CONTENT,
            body: String::new(),
            signed: true,
            content_type: "application/json",
            raw: None,
            delay_ms: 0,
        },
        Err(e) => ledger_err(&e),
    }
}

fn refund_status(s: RefundState) -> &'static str {
    s.wechat()
}

pub(crate) fn refund_json(t: &Trade, rf: &Refund, tamper: BodyFault) -> Value {
    let refund_amount = match tamper {
        BodyFault::TamperedAmount => rf.amount.0 + 100,
        _ => rf.amount.0,
    };
    let mut v = json!({
        "refund_id": rf.refund_id,
        "out_refund_no": rf.out_request_no,
        "transaction_id": t.trade_no,
        "out_trade_no": t.out_trade_no,
        "channel": "ORIGINAL",
        "user_received_account": "支付用户零钱",
        "create_time": rfc3339_beijing(rf.created_at),
        "status": refund_status(rf.state),
        "funds_account": "AVAILABLE",
        "amount": {
            "total": t.amount.0, "refund": refund_amount,
            "payer_total": t.amount.0, "payer_refund": refund_amount,
            "settlement_total": t.amount.0, "settlement_refund": refund_amount,
            "discount_refund": 0, "currency": "CNY"
        },
    });
    if let (Some(s), RefundState::Success) = (rf.settled_at, rf.state) {
        v["success_time"] = json!(rfc3339_beijing(s));
    }
    v
}

fn refund(r: &Req<'_>) -> Reply {
    let Some(out_refund_no) = r.s("out_refund_no") else {
        return param("缺少参数 out_refund_no");
    };
    let amount = r.body.get("amount");
    let (Some(refund), Some(total)) = (
        amount.and_then(|a| a.get("refund")).and_then(Value::as_i64),
        amount.and_then(|a| a.get("total")).and_then(Value::as_i64),
    ) else {
        return param("缺少参数 amount.refund/amount.total");
    };
    let account = match r.account(r.s("sub_mchid")) {
        Ok(a) => a,
        Err(reply) => return reply,
    };
    let mut st = r.inner.lock();
    let t = match st.ledger.find(
        Family::Wechat,
        &account,
        r.s("out_trade_no").as_deref(),
        r.s("transaction_id").as_deref(),
    ) {
        Ok(t) => t.clone(),
        Err(e) => return ledger_err(&e),
    };
    if total != t.amount.0 {
        return err(400, "INVALID_REQUEST", "订单金额与原订单不一致");
    }
    match st.ledger.refund(
        &t.id,
        &out_refund_no,
        Fen(refund),
        r.s("reason"),
        r.s("notify_url"),
        r.now,
    ) {
        Ok((rf, _)) => {
            let t = st.ledger.get(&t.id).cloned().unwrap_or(t);
            ok_json(refund_json(&t, &rf, BodyFault::None))
        }
        Err(e) => ledger_err(&e),
    }
}

fn query_refund(r: &Req<'_>, no: &str) -> Reply {
    let account = match r.account(r.q("sub_mchid")) {
        Ok(a) => a,
        Err(reply) => return reply,
    };
    let st = r.inner.lock();
    let found = st.ledger.trades().find_map(|t| {
        if t.account != account || t.provider.family() != Family::Wechat {
            return None;
        }
        t.refund(no).map(|rf| (t.clone(), rf.clone()))
    });
    match found {
        Some((t, rf)) => ok_json(refund_json(&t, &rf, BodyFault::None)),
        None => ledger_err(&LedgerError::RefundNotExist),
    }
}

fn certificates(r: &Req<'_>) -> Reply {
    let (WechatKeyMode::Certificate | WechatKeyMode::Migrating, Some(cert)) =
        (&r.inner.keys.wechat_mode, r.inner.keys.wechat_cert.as_ref())
    else {
        return err(
            404,
            "RESOURCE_NOT_EXISTS",
            "平台证书不存在：商户使用微信支付公钥模式",
        );
    };
    let effective = rfc3339_beijing(cert.not_before_unix() * 1000);
    let expire = rfc3339_beijing(cert.not_after_unix() * 1000);
    let pem = cert.to_pem();
    let nonce = random_string(12);
    let out = CertificateOut {
        serial_no: &r.inner.keys.wechat_serial,
        effective_time: &effective,
        expire_time: &expire,
        pem: &pem,
        nonce: &nonce,
    };
    match certificates_body(r.merchant.api_v3_key.expose(), &[out]) {
        Ok(body) => Reply {
            status: StatusCode::OK,
            body,
            signed: true,
            content_type: "application/json",
            raw: None,
            delay_ms: 0,
        },
        Err(e) => err(500, "SYSTEM_ERROR", &e.to_string()),
    }
}

/// TRANSACTION.SUCCESS for payments, REFUND.* for refunds with a notify_url; none for closes.
pub(crate) fn notification(
    inner: &Inner,
    t: &Trade,
    ev: &LedgerEvent,
    fault: BodyFault,
    now: Millis,
) -> Result<Option<(String, Outgoing)>, String> {
    // In service-provider mode the provider merchant receives (and decrypts) notifications.
    let Some(m) = inner
        .keys
        .merchants
        .get(t.sp_mchid.as_deref().unwrap_or(&t.account))
    else {
        return Ok(None);
    };
    let (url, event_type, summary, original_type, honest, spoiled) = match ev {
        LedgerEvent::Closed { .. } | LedgerEvent::Finished { .. } => return Ok(None),
        LedgerEvent::Paid { .. } => {
            let Some(url) = t.notify_url.clone() else {
                return Ok(None);
            };
            (
                url,
                "TRANSACTION.SUCCESS".to_string(),
                "支付成功",
                "transaction",
                transaction_json(t, BodyFault::None),
                transaction_json(t, fault),
            )
        }
        LedgerEvent::RefundSettled { out_request_no, .. } => {
            let Some(rf) = t.refund(out_request_no) else {
                return Ok(None);
            };
            let Some(url) = rf.notify_url.clone() else {
                return Ok(None);
            };
            let mut honest = refund_json(t, rf, BodyFault::None);
            let mut spoiled = refund_json(t, rf, fault);
            for v in [&mut honest, &mut spoiled] {
                // The notification resource names the status `refund_status` (the API
                // object calls it `status`).
                if let Some(o) = v.as_object_mut() {
                    match &t.sp_mchid {
                        None => o.insert("mchid".into(), json!(t.account)),
                        Some(sp) => {
                            o.insert("sp_mchid".into(), json!(sp));
                            o.insert("sub_mchid".into(), json!(t.account))
                        }
                    };
                    o.remove("status");
                    o.insert("refund_status".into(), json!(refund_status(rf.state)));
                }
            }
            if fault == BodyFault::TamperedAppId {
                spoiled["mchid"] = json!("1999999999");
            }
            (
                url,
                format!("REFUND.{}", refund_status(rf.state)),
                "退款结果通知",
                "refund",
                honest,
                spoiled,
            )
        }
    };
    let id = format!("EV-{}-{}", t.id, random_string(12));
    let create_time = rfc3339_beijing(now);
    let nonce = random_string(12);
    let build = |plaintext: &Value| {
        notify_body(
            m.api_v3_key.expose(),
            &id,
            &create_time,
            &event_type,
            summary,
            original_type,
            &nonce,
            &plaintext.to_string(),
        )
        .map_err(|e| e.to_string())
    };
    let honest_body = build(&honest)?;
    let out = faulty_notification(inner, fault, honest_body, || build(&spoiled), url, now)?;
    Ok(Some((event_type, out)))
}

/// An APIv3 notification as WeChat Pay sends it, with `fault` applied: the body tampered with
/// after signing when asked (`spoiled`), signed by the platform key or by the forger's, a
/// signature probe marked as such.
pub(crate) fn faulty_notification(
    inner: &Inner,
    fault: BodyFault,
    honest_body: String,
    spoiled: impl FnOnce() -> Result<String, String>,
    url: String,
    now: Millis,
) -> Result<Outgoing, String> {
    // Tampering happens after signing: the signature covers the honest body.
    let body = match fault {
        BodyFault::TamperedAmount | BodyFault::TamperedAppId => spoiled()?,
        BodyFault::None | BodyFault::Forged | BodyFault::SignTestProbe => honest_body.clone(),
    };
    let key = match fault {
        BodyFault::Forged => &inner.keys.forger,
        _ => &inner.keys.wechat_key,
    };
    let mut headers = sign_response(
        key,
        &inner.keys.wechat_serial,
        now.div_euclid(1000),
        &random_string(32),
        honest_body.as_bytes(),
    )
    .map_err(|e| e.to_string())?;
    if fault == BodyFault::SignTestProbe {
        for (k, v) in headers.iter_mut() {
            if k.eq_ignore_ascii_case("Wechatpay-Signature") {
                *v = format!("WECHATPAY/SIGNTEST/{v}");
            }
        }
    }
    headers.push(("content-type".into(), "application/json".into()));
    Ok(Outgoing { url, headers, body })
}
