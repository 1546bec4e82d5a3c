//! Alipay `gateway.do`: parameters from the query string, the form body or both, merged;
//! signature verified over the raw parameters (the raw `biz_content` text included); every
//! trade API of the Alipay issue answered with a response signed as Alipay signs it.
//! All signing and encoding goes through `paybridge_alipay::provider`.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State as AxState;
use axum::http::{StatusCode, Uri};
use axum::response::{Html, IntoResponse, Redirect, Response};
use paybridge_alipay::notify::{NotifyForm, NotifyRule};
use paybridge_alipay::provider::{
    encode_form, encrypt_node, sign_notify, signed_method_response, signed_response_body,
    ERROR_NODE,
};
use paybridge_alipay::sign::decrypt_content;
use paybridge_core::Fen;
use serde_json::{Map, Value};

use crate::clock::{alipay_time, parse_alipay_time, parse_timeout_express, Millis};
use crate::config::{AppKeys, BarcodeMode};
use crate::ledger::{CancelAction, Family, LedgerError, LedgerEvent, NewTrade, Provider, Trade};
use crate::notifier::{BodyFault, Outgoing};
use crate::server::{Inner, State};

/// A gateway answer before signing: the node content, or a gateway-level `error_response`.
pub(crate) struct Answer {
    pub content: Map<String, Value>,
    error_node: bool,
    /// Provider timeouts on demand: the reply (a bodiless 504) is held back this long.
    pub delay_ms: u64,
}

pub(crate) fn ok(fields: Vec<(&str, Value)>) -> Answer {
    let mut content = Map::new();
    content.insert("code".into(), "10000".into());
    content.insert("msg".into(), "Success".into());
    for (k, v) in fields {
        content.insert(k.to_string(), v);
    }
    Answer {
        content,
        error_node: false,
        delay_ms: 0,
    }
}

pub(crate) fn fail(code: &str, msg: &str, sub_code: &str, sub_msg: &str) -> Answer {
    let mut content = Map::new();
    content.insert("code".into(), code.into());
    content.insert("msg".into(), msg.into());
    content.insert("sub_code".into(), sub_code.into());
    content.insert("sub_msg".into(), sub_msg.into());
    Answer {
        content,
        error_node: false,
        delay_ms: 0,
    }
}

fn business(e: &LedgerError) -> Answer {
    let a = e.alipay();
    fail(a.code, a.msg, a.sub_code, a.sub_msg)
}

pub(crate) fn invalid(sub_code: &str, sub_msg: &str) -> Answer {
    fail("40002", "Invalid Arguments", sub_code, sub_msg)
}

/// Query-string and body parameters, each decoded once in its own `charset`; the body wins
/// when both carry a name.
fn merged_params(uri: &Uri, body: &[u8]) -> Result<Vec<(String, String)>, String> {
    let mut params: Vec<(String, String)> = Vec::new();
    for part in [uri.query().unwrap_or("").as_bytes(), body] {
        if part.iter().all(|b| b.is_ascii_whitespace()) {
            continue;
        }
        let form = NotifyForm::parse(part).map_err(|e| e.to_string())?;
        for (k, v) in form.fields() {
            params.retain(|(pk, _)| pk != k);
            params.push((k.clone(), v.clone()));
        }
    }
    Ok(params)
}

fn get<'a>(params: &'a [(String, String)], name: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
        .filter(|v| !v.is_empty())
}

fn biz_str(biz: &Map<String, Value>, name: &str) -> Option<String> {
    match biz.get(name)? {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn amount(biz: &Map<String, Value>, name: &str) -> Result<Fen, Answer> {
    let text = biz_str(biz, name)
        .ok_or_else(|| invalid("isv.missing-parameter", &format!("缺少参数 {name}")))?;
    Fen::parse_trade_amount(&text)
        .map_err(|_| invalid("isv.invalid-parameter", &format!("参数 {name} 不合法")))
}

/// The signed reply body.
fn render(
    inner: &Inner,
    method: &str,
    app: Option<&AppKeys>,
    encrypt: bool,
    a: Answer,
) -> Response {
    let content = Value::Object(a.content).to_string();
    let cert_sn = app
        .and_then(|a| a.app_cert_sn.as_ref())
        .and(inner.keys.alipay_cert_sn.as_deref());
    let body = if a.error_node {
        signed_response_body(ERROR_NODE, &content, &inner.keys.alipay_key, cert_sn)
    } else {
        let node_content = match (encrypt, app.and_then(|a| a.aes_key.as_ref())) {
            (true, Some(key)) => encrypt_node(key, &content),
            _ => Ok(content),
        };
        node_content.and_then(|c| {
            let body = signed_method_response(method, &c, &inner.keys.alipay_key, cert_sn)?;
            if inner.config.alipay_escaped_slashes && c.contains('/') {
                // Signed as plain text, sent with `\/`: the node is the body's first copy of it.
                Ok(body.replacen(&c, &c.replace('/', "\\/"), 1))
            } else {
                Ok(body)
            }
        })
    };
    match body {
        Ok(b) => (
            StatusCode::OK,
            [("content-type", "text/html;charset=utf-8")],
            b,
        )
            .into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

/// `GET|POST /gateway.do`.
pub(crate) async fn gateway(
    AxState(inner): AxState<Arc<Inner>>,
    uri: Uri,
    body: Bytes,
) -> Response {
    let params = match merged_params(&uri, &body) {
        Ok(p) => p,
        Err(e) => {
            let mut a = invalid("isv.invalid-parameter", &e);
            a.error_node = true;
            return render(&inner, "", None, false, a);
        }
    };
    let Some(method) = get(&params, "method").map(str::to_string) else {
        let mut a = fail(
            "40001",
            "Missing Required Arguments",
            "isv.missing-method",
            "缺少方法名参数",
        );
        a.error_node = true;
        return render(&inner, "", None, false, a);
    };
    let Some(app) = get(&params, "app_id").and_then(|id| inner.keys.apps.get(id)) else {
        return render(
            &inner,
            &method,
            None,
            false,
            invalid("isv.invalid-app-id", "无效的AppID参数"),
        );
    };
    // Certificate mode: the request must name the app certificate and Alipay's root bundle.
    if let Some(expected) = &app.app_cert_sn {
        if get(&params, "app_cert_sn") != Some(expected.as_str()) {
            return render(
                &inner,
                &method,
                Some(app),
                false,
                invalid("isv.invalid-app-cert-sn", "app_cert_sn与应用证书不匹配"),
            );
        }
        if get(&params, "alipay_root_cert_sn") != inner.keys.alipay_root_cert_sn.as_deref() {
            return render(
                &inner,
                &method,
                Some(app),
                false,
                invalid(
                    "isv.invalid-alipay-root-cert-sn",
                    "alipay_root_cert_sn不正确",
                ),
            );
        }
    }
    let signed = params.iter().map(|(k, v)| (k.as_str(), v.as_str()));
    if get(&params, "sign").is_none() {
        return render(
            &inner,
            &method,
            Some(app),
            false,
            fail(
                "40001",
                "Missing Required Arguments",
                "isv.missing-signature",
                "缺少签名参数",
            ),
        );
    }
    if !paybridge_alipay::provider::verify_request(signed.clone(), &app.public_key) {
        let sts = paybridge_alipay::provider::request_string_to_sign(signed);
        return render(
            &inner,
            &method,
            Some(app),
            false,
            invalid(
                "isv.invalid-signature",
                &format!("验签出错，建议检查签名字符串或签名私钥与应用公钥是否匹配，网关生成的验签字符串为：{sts}"),
            ),
        );
    }
    let encrypted = get(&params, "encrypt_type") == Some("AES");
    let biz_text = match (encrypted, get(&params, "biz_content"), &app.aes_key) {
        (_, None, _) => "{}".to_string(),
        (false, Some(b), _) => b.to_string(),
        (true, Some(b), Some(key)) => match decrypt_content(key, b) {
            Ok(t) => t,
            Err(_) => {
                return render(
                    &inner,
                    &method,
                    Some(app),
                    false,
                    invalid("isv.decryption-error", "解密出错"),
                )
            }
        },
        (true, Some(_), None) => {
            return render(
                &inner,
                &method,
                Some(app),
                false,
                invalid("isv.decryption-error", "应用未配置AES密钥"),
            )
        }
    };
    let biz: Map<String, Value> = match serde_json::from_str::<Value>(&biz_text) {
        Ok(Value::Object(m)) => m,
        _ => {
            return render(
                &inner,
                &method,
                Some(app),
                encrypted,
                invalid("isv.invalid-parameter", "biz_content不是合法的JSON对象"),
            )
        }
    };
    let now = inner.now();
    let ctx = Ctx {
        inner: &inner,
        app,
        params: &params,
        biz: &biz,
        now,
    };
    let answer = match method.as_str() {
        "alipay.trade.page.pay" | "alipay.trade.wap.pay" | "alipay.trade.app.pay" => {
            return page_pay(&ctx, &method);
        }
        "alipay.trade.precreate" => create(&ctx, "FACE_TO_FACE_PAYMENT", true),
        "alipay.trade.create" => create(&ctx, "JSAPI_PAY", false),
        "alipay.trade.pay" => barcode_pay(&ctx),
        "alipay.trade.query" => query(&ctx),
        "alipay.trade.refund" => refund(&ctx),
        "alipay.trade.fastpay.refund.query" => refund_query(&ctx),
        "alipay.trade.close" => close(&ctx),
        "alipay.trade.cancel" => cancel(&ctx),
        "alipay.data.dataservice.bill.downloadurl.query" => crate::bills::alipay_download_url(&ctx),
        "alipay.open.app.alipaycert.download" => alipay_cert_download(&ctx),
        "alipay.fund.trans.uni.transfer" => crate::alipay_fund::transfer(&ctx),
        "alipay.fund.trans.common.query" => crate::alipay_fund::query(&ctx),
        "alipay.fund.account.query" => crate::alipay_fund::account(&ctx),
        _ => {
            let mut a = invalid("isv.invalid-method", "不存在的方法名");
            a.error_node = true;
            Err(a)
        }
    };
    let answer = match answer {
        Ok(a) | Err(a) => a,
    };
    if answer.delay_ms > 0 {
        // The work is done; the answer is lost on the way back.
        tokio::time::sleep(std::time::Duration::from_millis(answer.delay_ms)).await;
        return StatusCode::GATEWAY_TIMEOUT.into_response();
    }
    render(&inner, &method, Some(app), encrypted, answer)
}

pub(crate) struct Ctx<'a> {
    pub inner: &'a Inner,
    pub app: &'a AppKeys,
    pub params: &'a [(String, String)],
    pub biz: &'a Map<String, Value>,
    pub now: Millis,
}

impl Ctx<'_> {
    pub fn biz(&self, name: &str) -> Option<String> {
        biz_str(self.biz, name)
    }

    fn new_trade(&self, scene: &str, hidden: bool) -> Result<NewTrade, Answer> {
        let out_trade_no = self
            .biz("out_trade_no")
            .ok_or_else(|| invalid("isv.missing-parameter", "缺少参数 out_trade_no"))?;
        if out_trade_no.len() > 64 {
            return Err(invalid("isv.invalid-parameter", "out_trade_no 过长"));
        }
        let amount = amount(self.biz, "total_amount")?;
        let subject = self
            .biz("subject")
            .ok_or_else(|| invalid("isv.missing-parameter", "缺少参数 subject"))?;
        let expires_at = match (self.biz("time_expire"), self.biz("timeout_express")) {
            (Some(t), _) => Some(
                parse_alipay_time(&t)
                    .ok_or_else(|| invalid("isv.invalid-parameter", "time_expire 格式错误"))?,
            ),
            (None, Some(t)) => Some(
                parse_timeout_express(&t, self.now)
                    .ok_or_else(|| invalid("isv.invalid-parameter", "timeout_express 格式错误"))?,
            ),
            // Alipay's default for unpaid trades is 15 days; QR codes (precreate) 2 hours.
            (None, None) if hidden => Some(self.now + 2 * 3_600_000),
            (None, None) => Some(self.now + 15 * 86_400_000),
        };
        let payer = self.biz("buyer_id").or_else(|| self.biz("buyer_open_id"));
        Ok(NewTrade {
            provider: Provider::Alipay,
            account: self.app.app_id.clone(),
            app_id: self.app.app_id.clone(),
            out_trade_no,
            amount,
            subject,
            scene: scene.to_string(),
            notify_url: get(self.params, "notify_url").map(str::to_string),
            return_url: get(self.params, "return_url").map(str::to_string),
            expires_at,
            payer_id: payer,
            attach: self.biz("passback_params"),
            hidden_until_scanned: hidden,
            sp_mchid: None,
            sub_appid: None,
            sign_type: None,
        })
    }

    fn find(&self) -> Result<Trade, Answer> {
        let out = self.biz("out_trade_no");
        let no = self.biz("trade_no");
        if out.is_none() && no.is_none() {
            return Err(invalid(
                "isv.missing-parameter",
                "out_trade_no 和 trade_no 不能同时为空",
            ));
        }
        let st = self.inner.lock();
        st.ledger
            .find(
                Family::Alipay,
                &self.app.app_id,
                out.as_deref(),
                no.as_deref(),
            )
            .cloned()
            .map_err(|e| business(&e))
    }
}

fn buyer_logon_id(t: &Trade) -> Value {
    if t.buyer_id.is_empty() {
        Value::Null
    } else {
        "159****5620".into()
    }
}

fn page_pay(ctx: &Ctx<'_>, method: &str) -> Response {
    let scene = match method {
        "alipay.trade.wap.pay" => "QUICK_WAP_WAY",
        "alipay.trade.app.pay" => "QUICK_MSECURITY_PAY",
        _ => "FAST_INSTANT_TRADE_PAY",
    };
    let created = ctx.new_trade(scene, false).and_then(|n| {
        ctx.inner
            .lock()
            .ledger
            .create(n, ctx.now)
            .map_err(|e| business(&e))
    });
    match created {
        Ok((id, _)) => Redirect::to(&ctx.inner.pay_page_url(&id)).into_response(),
        Err(a) => {
            // The buyer lands on Alipay's error page, as with a real page-pay failure.
            let sub = a
                .content
                .get("sub_code")
                .and_then(Value::as_str)
                .unwrap_or("");
            let msg = a
                .content
                .get("sub_msg")
                .and_then(Value::as_str)
                .unwrap_or("");
            (
                StatusCode::OK,
                Html(crate::buyer::error_page(&format!("{sub}: {msg}"))),
            )
                .into_response()
        }
    }
}

fn create(ctx: &Ctx<'_>, scene: &str, precreate: bool) -> Result<Answer, Answer> {
    let new = ctx.new_trade(scene, precreate)?;
    let (id, trade_no, out) = {
        let mut st = ctx.inner.lock();
        let (id, _) = st.ledger.create(new, ctx.now).map_err(|e| business(&e))?;
        let t = st
            .ledger
            .get(&id)
            .cloned()
            .ok_or_else(|| business(&LedgerError::TradeNotExist))?;
        (id, t.trade_no, t.out_trade_no)
    };
    if precreate {
        Ok(ok(vec![
            ("out_trade_no", out.into()),
            ("qr_code", ctx.inner.pay_page_url(&id).into()),
        ]))
    } else {
        Ok(ok(vec![
            ("out_trade_no", out.into()),
            ("trade_no", trade_no.into()),
        ]))
    }
}

fn paid_fields(t: &Trade) -> Vec<(&'static str, Value)> {
    vec![
        ("trade_no", t.trade_no.clone().into()),
        ("out_trade_no", t.out_trade_no.clone().into()),
        ("buyer_logon_id", buyer_logon_id(t)),
        ("total_amount", t.amount.to_yuan().into()),
        ("receipt_amount", t.amount.to_yuan().into()),
        ("buyer_pay_amount", t.amount.to_yuan().into()),
        ("invoice_amount", t.amount.to_yuan().into()),
        (
            "gmt_payment",
            t.paid_at
                .map(alipay_time)
                .map(Value::from)
                .unwrap_or(Value::Null),
        ),
        ("buyer_user_id", t.buyer_id.clone().into()),
        (
            "fund_bill_list",
            serde_json::json!([{"fund_channel":"ALIPAYACCOUNT","amount":t.amount.to_yuan()}]),
        ),
    ]
}

fn barcode_pay(ctx: &Ctx<'_>) -> Result<Answer, Answer> {
    if ctx.biz("auth_code").is_none() {
        return Err(invalid("isv.missing-parameter", "缺少参数 auth_code"));
    }
    let new = ctx.new_trade("bar_code", false)?;
    let mut st = ctx.inner.lock();
    let (id, _) = st.ledger.create(new, ctx.now).map_err(|e| business(&e))?;
    match ctx.inner.barcode_mode(&st, &ctx.app.app_id) {
        BarcodeMode::Succeed => {
            let ev = st
                .ledger
                .pay(&id, None, ctx.now)
                .map_err(|e| business(&e))?;
            ctx.inner.notify_events(&mut st, vec![ev], ctx.now);
            let t = st
                .ledger
                .get(&id)
                .cloned()
                .ok_or_else(|| business(&LedgerError::TradeNotExist))?;
            Ok(ok(paid_fields(&t)))
        }
        BarcodeMode::Fail => {
            st.ledger.fail(&id, ctx.now).map_err(|e| business(&e))?;
            Err(fail(
                "40004",
                "Business Failed",
                "ACQ.PAYMENT_AUTH_CODE_INVALID",
                "支付失败，获取顾客账户信息失败，请顾客刷新付款码后重新收款",
            ))
        }
        BarcodeMode::WaitPassword => {
            st.ledger.set_user_paying(&id).map_err(|e| business(&e))?;
            let t = st
                .ledger
                .get(&id)
                .cloned()
                .ok_or_else(|| business(&LedgerError::TradeNotExist))?;
            let mut a = ok(vec![
                ("trade_no", t.trade_no.clone().into()),
                ("out_trade_no", t.out_trade_no.clone().into()),
                ("total_amount", t.amount.to_yuan().into()),
            ]);
            a.content.insert("code".into(), "10003".into());
            a.content
                .insert("msg".into(), "ORDER_SUCCESS_PAY_INPROCESS".into());
            Ok(a)
        }
    }
}

fn query(ctx: &Ctx<'_>) -> Result<Answer, Answer> {
    let t = ctx.find()?;
    let mut fields = vec![
        ("trade_no", t.trade_no.clone().into()),
        ("out_trade_no", t.out_trade_no.clone().into()),
        ("trade_status", t.alipay_status().into()),
        ("total_amount", t.amount.to_yuan().into()),
    ];
    if t.is_paid() || t.paid_at.is_some() {
        fields = paid_fields(&t);
        fields.insert(2, ("trade_status", t.alipay_status().into()));
        fields.push((
            "send_pay_date",
            t.paid_at
                .map(alipay_time)
                .map(Value::from)
                .unwrap_or(Value::Null),
        ));
    }
    Ok(ok(fields))
}

fn refund(ctx: &Ctx<'_>) -> Result<Answer, Answer> {
    let t = ctx.find()?;
    let amount = amount(ctx.biz, "refund_amount")?;
    // Without out_request_no Alipay identifies the refund by the trade: one refund only.
    let req_no = ctx
        .biz("out_request_no")
        .unwrap_or_else(|| t.out_trade_no.clone());
    let mut st = ctx.inner.lock();
    let (r, created) = st
        .ledger
        .refund(
            &t.id,
            &req_no,
            amount,
            ctx.biz("refund_reason"),
            None,
            ctx.now,
        )
        .map_err(|e| business(&e))?;
    if created {
        let ev = LedgerEvent::RefundSettled {
            trade_id: t.id.clone(),
            out_request_no: req_no.clone(),
        };
        ctx.inner.notify_events(&mut st, vec![ev], ctx.now);
    }
    let t = st
        .ledger
        .get(&t.id)
        .cloned()
        .ok_or_else(|| business(&LedgerError::TradeNotExist))?;
    Ok(ok(vec![
        ("trade_no", t.trade_no.clone().into()),
        ("out_trade_no", t.out_trade_no.clone().into()),
        ("buyer_logon_id", buyer_logon_id(&t)),
        ("fund_change", if created { "Y" } else { "N" }.into()),
        ("refund_fee", t.refunded().to_yuan().into()),
        ("gmt_refund_pay", alipay_time(r.created_at).into()),
        ("buyer_user_id", t.buyer_id.clone().into()),
    ]))
}

fn refund_query(ctx: &Ctx<'_>) -> Result<Answer, Answer> {
    let t = ctx.find()?;
    let req_no = ctx
        .biz("out_request_no")
        .unwrap_or_else(|| t.out_trade_no.clone());
    let mut fields = vec![
        ("trade_no", t.trade_no.clone().into()),
        ("out_trade_no", t.out_trade_no.clone().into()),
    ];
    // An unknown refund is not an error at Alipay: the answer simply has no refund_amount.
    if let Some(r) = t.refund(&req_no) {
        fields.extend([
            ("out_request_no", Value::from(req_no.clone())),
            ("total_amount", t.amount.to_yuan().into()),
            ("refund_amount", r.amount.to_yuan().into()),
            ("refund_status", "REFUND_SUCCESS".into()),
            ("gmt_refund_pay", alipay_time(r.created_at).into()),
        ]);
    }
    Ok(ok(fields))
}

/// `alipay.open.app.alipaycert.download`: the certificate the sandbox signs with, named by its
/// SN (base64 of the PEM file, as Alipay hands it out). Another SN is not Alipay's (the
/// sub_code is this sandbox's: the SDKs document none for it).
fn alipay_cert_download(ctx: &Ctx<'_>) -> Result<Answer, Answer> {
    let asked = biz_str(ctx.biz, "alipay_cert_sn")
        .ok_or_else(|| invalid("isv.missing-parameter", "缺少参数 alipay_cert_sn"))?;
    match (
        ctx.inner.keys.alipay_cert_sn.as_deref(),
        ctx.inner.config.alipay.alipay_cert.as_deref(),
    ) {
        (Some(sn), Some(pem)) if sn == asked => Ok(ok(vec![(
            "alipay_cert_content",
            paybridge_crypto::b64_encode(pem.as_bytes()).into(),
        )])),
        _ => Err(fail(
            "40004",
            "Business Failed",
            "isv.alipay-cert-not-exist",
            "支付宝公钥证书不存在",
        )),
    }
}

fn close(ctx: &Ctx<'_>) -> Result<Answer, Answer> {
    let t = ctx.find()?;
    let mut st = ctx.inner.lock();
    let ev = st.ledger.close(&t.id, ctx.now).map_err(|e| match e {
        // Closing a paid or already closed trade: Alipay answers TRADE_STATUS_ERROR.
        LedgerError::TradeAlreadyPaid | LedgerError::TradeClosed => {
            business(&LedgerError::TradeStatus(t.state))
        }
        other => business(&other),
    })?;
    ctx.inner.notify_events(&mut st, vec![ev], ctx.now);
    Ok(ok(vec![
        ("trade_no", t.trade_no.clone().into()),
        ("out_trade_no", t.out_trade_no.clone().into()),
    ]))
}

fn cancel(ctx: &Ctx<'_>) -> Result<Answer, Answer> {
    let t = ctx.find()?;
    let mut st = ctx.inner.lock();
    let (action, _) = st.ledger.cancel(&t.id, ctx.now).map_err(|e| business(&e))?;
    Ok(ok(vec![
        ("trade_no", t.trade_no.clone().into()),
        ("out_trade_no", t.out_trade_no.clone().into()),
        ("retry_flag", "N".into()),
        (
            "action",
            match action {
                CancelAction::Close => "close",
                CancelAction::Refund => "refund",
            }
            .into(),
        ),
    ]))
}

/// The asynchronous notification for a ledger event, signed under rule V1 and form-encoded.
pub(crate) fn notification(
    inner: &Inner,
    t: &Trade,
    ev: &LedgerEvent,
    fault: BodyFault,
    now: Millis,
) -> Result<Option<(String, Outgoing)>, String> {
    // A QR trade nobody scanned never existed for Alipay: its expiry is not announced.
    let Some(url) = t.notify_url.clone().filter(|_| t.visible) else {
        return Ok(None);
    };
    let mut f: Vec<(String, String)> = Vec::new();
    let mut push = |k: &str, v: String| {
        if !v.is_empty() {
            f.push((k.to_string(), v));
        }
    };
    push("gmt_create", alipay_time(t.created_at));
    push("charset", "utf-8".into());
    push("notify_time", alipay_time(now));
    push("subject", t.subject.clone());
    push("sign_type", "RSA2".into());
    push("buyer_id", t.buyer_id.clone());
    push(
        "invoice_amount",
        if t.is_paid() {
            t.amount.to_yuan()
        } else {
            String::new()
        },
    );
    push("version", "1.0".into());
    // Unique per trade event (Alipay keeps one id across the retries of a notification).
    let event_key = match ev {
        LedgerEvent::RefundSettled { out_request_no, .. } => format!("refund:{out_request_no}"),
        _ => t.alipay_status().to_string(),
    };
    let digest = paybridge_crypto::md5(format!("{}|{event_key}|{now}", t.trade_no).as_bytes());
    push(
        "notify_id",
        format!("2026{:030}", u128::from_be_bytes(digest) % 10u128.pow(30)),
    );
    push("notify_type", "trade_status_sync".into());
    push("out_trade_no", t.out_trade_no.clone());
    push("total_amount", t.amount.to_yuan());
    push("trade_status", t.alipay_status().into());
    push("trade_no", t.trade_no.clone());
    push("auth_app_id", t.app_id.clone());
    push("app_id", t.app_id.clone());
    push("seller_id", "2088102177800000".into());
    if let Some(p) = t.paid_at {
        push("gmt_payment", alipay_time(p));
        push("receipt_amount", t.amount.to_yuan());
        push("buyer_pay_amount", t.amount.to_yuan());
        push(
            "fund_bill_list",
            format!(
                "[{{\"amount\":\"{}\",\"fundChannel\":\"ALIPAYACCOUNT\"}}]",
                t.amount.to_yuan()
            ),
        );
    }
    if let Some(c) = t.closed_at {
        push("gmt_close", alipay_time(c));
    }
    if let Some(p) = &t.attach {
        push("passback_params", p.clone());
    }
    let kind = match ev {
        LedgerEvent::Paid { .. } | LedgerEvent::Closed { .. } | LedgerEvent::Finished { .. } => {
            t.alipay_status().to_string()
        }
        LedgerEvent::RefundSettled { out_request_no, .. } => {
            let Some(r) = t.refund(out_request_no) else {
                return Ok(None);
            };
            push("out_biz_no", out_request_no.clone());
            push("refund_fee", t.refunded().to_yuan());
            push("gmt_refund", alipay_time(r.created_at));
            format!("REFUND {}", t.alipay_status())
        }
    };
    let key = match fault {
        BodyFault::Forged | BodyFault::SignTestProbe => &inner.keys.forger,
        _ => &inner.keys.alipay_key,
    };
    let mut signed = sign_notify(f, NotifyRule::V1, key).map_err(|e| e.to_string())?;
    match fault {
        BodyFault::TamperedAmount => {
            for (k, v) in signed.iter_mut() {
                if k == "total_amount" || k == "receipt_amount" || k == "buyer_pay_amount" {
                    *v = Fen(t.amount.0 + 100).to_yuan();
                }
            }
        }
        BodyFault::TamperedAppId => {
            for (k, v) in signed.iter_mut() {
                if k == "app_id" {
                    *v = "2021009999999999".into();
                }
            }
        }
        BodyFault::None | BodyFault::Forged | BodyFault::SignTestProbe => {}
    }
    let body = encode_form(&signed, "utf-8").map_err(|e| e.to_string())?;
    Ok(Some((
        kind,
        Outgoing {
            url,
            headers: vec![(
                "content-type".into(),
                "application/x-www-form-urlencoded; charset=utf-8".into(),
            )],
            body: String::from_utf8_lossy(&body).into_owned(),
        },
    )))
}

/// Used by the buyer page when a page-pay trade completes: where the browser returns.
pub(crate) fn return_url(inner: &Inner, st: &State, t: &Trade) -> Option<String> {
    let base = t.return_url.clone()?;
    let _ = st;
    let fields = vec![
        ("charset".to_string(), "utf-8".to_string()),
        ("out_trade_no".to_string(), t.out_trade_no.clone()),
        (
            "method".to_string(),
            "alipay.trade.page.pay.return".to_string(),
        ),
        ("total_amount".to_string(), t.amount.to_yuan()),
        ("trade_no".to_string(), t.trade_no.clone()),
        ("auth_app_id".to_string(), t.app_id.clone()),
        ("version".to_string(), "1.0".to_string()),
        ("app_id".to_string(), t.app_id.clone()),
        ("sign_type".to_string(), "RSA2".to_string()),
        ("seller_id".to_string(), "2088102177800000".to_string()),
        ("timestamp".to_string(), alipay_time(inner.now())),
    ];
    let signed = sign_notify(fields, NotifyRule::V1, &inner.keys.alipay_key).ok()?;
    let query = encode_form(&signed, "utf-8").ok()?;
    let sep = if base.contains('?') { '&' } else { '?' };
    Some(format!("{base}{sep}{}", String::from_utf8_lossy(&query)))
}
