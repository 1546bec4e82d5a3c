//! WeChat Pay APIv2: XML requests verified with the merchant's API key (MD5 or HMAC-SHA256,
//! over every received field), replies signed the same way, payment notifications signed and
//! refund notifications encrypted (`req_info`). Formats come from `paybridge_wechatpay::v2`.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State as AxState;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use paybridge_core::Fen;
use paybridge_crypto::random_string;
use paybridge_wechatpay::v2::provider::{refund_notify_xml, verify_request};
use paybridge_wechatpay::v2::sign::{sign, SignType};
use paybridge_wechatpay::v2::xml::{parse_xml, write_xml, XmlDoc};

use crate::clock::{alipay_time, parse_wechat_v2_time, wechat_v2_time, Millis};
use crate::config::{BarcodeMode, MerchantKeys};
use crate::ledger::{
    Family, LedgerError, LedgerEvent, NewTrade, Provider, RefundState, Trade, TradeState,
};
use crate::notifier::{BodyFault, Outgoing};
use crate::server::Inner;

pub(crate) fn xml_response(body: String) -> Response {
    (
        StatusCode::OK,
        [("content-type", "text/xml; charset=utf-8")],
        body,
    )
        .into_response()
}

/// A `return_code=FAIL` reply: transport-level, unsigned, as WeChat Pay sends it.
fn return_fail(msg: &str, err_code: Option<&str>) -> Response {
    let mut fields = vec![("return_code", "FAIL"), ("return_msg", msg)];
    if let Some(code) = err_code {
        fields.extend([
            ("result_code", "FAIL"),
            ("err_code", code),
            ("err_code_des", msg),
        ]);
    }
    xml_response(write_xml(fields))
}

/// A verified request.
pub(crate) struct Req<'a> {
    pub inner: &'a Inner,
    pub merchant: &'a MerchantKeys,
    pub doc: XmlDoc,
    pub sign_type: SignType,
    pub now: Millis,
}

impl Req<'_> {
    pub fn get(&self, name: &str) -> Option<String> {
        self.doc
            .get(name)
            .filter(|v| !v.is_empty())
            .map(str::to_string)
    }

    /// A signed `return_code=SUCCESS` reply; `result` is `Ok(fields)` or `Err((code, des))`.
    pub fn reply(&self, result: Result<Vec<(String, String)>, (&str, &str)>) -> Response {
        let nonce = random_string(32);
        let mut fields: Vec<(String, String)> = vec![
            ("return_code".into(), "SUCCESS".into()),
            ("return_msg".into(), "OK".into()),
            ("appid".into(), self.merchant.appid.clone()),
            ("mch_id".into(), self.merchant.mchid.clone()),
            ("nonce_str".into(), nonce),
        ];
        if self.sign_type == SignType::HmacSha256 {
            fields.push(("sign_type".into(), "HMAC-SHA256".into()));
        }
        match result {
            Ok(extra) => {
                fields.push(("result_code".into(), "SUCCESS".into()));
                fields.extend(extra);
            }
            Err((code, des)) => {
                fields.push(("result_code".into(), "FAIL".into()));
                fields.push(("err_code".into(), code.into()));
                fields.push(("err_code_des".into(), des.into()));
            }
        }
        xml_response(signed_fields_xml(
            fields,
            self.merchant.api_v2_key.expose(),
            self.sign_type,
            BodyFault::None,
        ))
    }

    fn find(&self) -> Result<Trade, LedgerError> {
        let st = self.inner.lock();
        st.ledger
            .find(
                Family::Wechat,
                &self.merchant.mchid,
                self.get("out_trade_no").as_deref(),
                self.get("transaction_id").as_deref(),
            )
            .cloned()
    }
}

/// Signs `fields` and writes the XML, then applies a body fault (after signing).
fn signed_fields_xml(
    mut fields: Vec<(String, String)>,
    key: &str,
    sign_type: SignType,
    fault: BodyFault,
) -> String {
    let signing_key = match fault {
        BodyFault::Forged | BodyFault::SignTestProbe => "forged-key-the-merchant-does-not-know",
        _ => key,
    };
    let s = sign(
        fields.iter().map(|(k, v)| (k.as_str(), v.as_str())),
        signing_key,
        sign_type,
    );
    fields.push(("sign".into(), s));
    for (k, v) in fields.iter_mut() {
        match (fault, k.as_str()) {
            (BodyFault::TamperedAmount, "total_fee" | "cash_fee") => {
                let fen: i64 = v.parse().unwrap_or(0);
                *v = (fen + 100).to_string();
            }
            (BodyFault::TamperedAppId, "appid") => *v = "wx9999999999999999".into(),
            _ => {}
        }
    }
    write_xml(fields.iter().map(|(k, v)| (k.as_str(), v.as_str())))
}

/// Parses and verifies a merchant request; `Err` is the reply to send.
fn verify<'a>(inner: &'a Inner, body: &[u8]) -> Result<Req<'a>, Box<Response>> {
    let fail = |msg: &str, code: Option<&str>| Box::new(return_fail(msg, code));
    let doc = parse_xml(body).map_err(|e| fail(&format!("XML格式错误: {e}"), None))?;
    let mchid = doc
        .get("mch_id")
        .filter(|v| !v.is_empty())
        .ok_or_else(|| fail("缺少参数mch_id", None))?;
    let merchant = inner
        .keys
        .merchants
        .get(mchid)
        .ok_or_else(|| fail("mch_id参数格式错误", None))?;
    let (doc, sign_type) = verify_request(body, merchant.api_v2_key.expose())
        .map_err(|_| fail("签名错误", Some("SIGNERROR")))?;
    if doc
        .get("appid")
        .is_some_and(|a| !a.is_empty() && a != merchant.appid)
    {
        return Err(fail("appid和mch_id不匹配", None));
    }
    Ok(Req {
        inner,
        merchant,
        doc,
        sign_type,
        now: inner.now(),
    })
}

macro_rules! verified {
    ($inner:expr, $body:expr) => {
        match verify(&$inner, &$body) {
            Ok(r) => r,
            Err(resp) => return *resp,
        }
    };
}

fn fen_field(r: &Req<'_>, name: &str) -> Result<Fen, (&'static str, &'static str)> {
    let v = r.get(name).ok_or(("PARAM_ERROR", "缺少金额参数"))?;
    if v.len() > 12 || !v.bytes().all(|b| b.is_ascii_digit()) {
        return Err(("PARAM_ERROR", "金额格式错误"));
    }
    v.parse::<i64>()
        .ok()
        .map(Fen)
        .filter(|f| f.0 > 0)
        .ok_or(("PARAM_ERROR", "金额格式错误"))
}

fn ledger_err(e: &LedgerError) -> (&'static str, &'static str) {
    e.wechat_v2()
}

pub(crate) fn paid_fields(t: &Trade) -> Vec<(String, String)> {
    let mut f = vec![
        ("out_trade_no".to_string(), t.out_trade_no.clone()),
        ("trade_state".to_string(), t.wechat_state().to_string()),
        ("trade_state_desc".to_string(), state_desc(t).to_string()),
        ("total_fee".to_string(), t.amount.0.to_string()),
        ("fee_type".to_string(), "CNY".to_string()),
        ("trade_type".to_string(), t.scene.clone()),
    ];
    if t.paid_at.is_some() {
        f.extend([
            ("transaction_id".to_string(), t.trade_no.clone()),
            ("openid".to_string(), t.buyer_id.clone()),
            ("is_subscribe".to_string(), "N".to_string()),
            ("bank_type".to_string(), "OTHERS".to_string()),
            ("cash_fee".to_string(), t.amount.0.to_string()),
            (
                "time_end".to_string(),
                t.paid_at.map(wechat_v2_time).unwrap_or_default(),
            ),
        ]);
    }
    if let Some(a) = &t.attach {
        f.push(("attach".to_string(), a.clone()));
    }
    f.retain(|(_, v)| !v.is_empty());
    f
}

pub(crate) fn state_desc(t: &Trade) -> &'static str {
    match t.wechat_state() {
        "NOTPAY" => "订单未支付",
        "USERPAYING" => "需要用户输入支付密码",
        "SUCCESS" => "支付成功",
        "REFUND" => "转入退款",
        "CLOSED" => "已关闭",
        "REVOKED" => "已撤销（刷卡支付）",
        _ => "支付失败",
    }
}

fn new_trade(
    r: &Req<'_>,
    trade_type: &str,
    provider: Provider,
) -> Result<NewTrade, (&'static str, &'static str)> {
    let out_trade_no = r
        .get("out_trade_no")
        .ok_or(("PARAM_ERROR", "缺少参数out_trade_no"))?;
    if out_trade_no.len() > 32 {
        return Err(("PARAM_ERROR", "out_trade_no长度超过32"));
    }
    let amount = fen_field(r, "total_fee")?;
    let body = r.get("body").ok_or(("PARAM_ERROR", "缺少参数body"))?;
    let expires_at = match r.get("time_expire") {
        Some(t) => Some(parse_wechat_v2_time(&t).ok_or(("PARAM_ERROR", "time_expire格式错误"))?),
        None => Some(r.now + 2 * 3_600_000),
    };
    Ok(NewTrade {
        provider,
        account: r.merchant.mchid.clone(),
        app_id: r.get("appid").unwrap_or_else(|| r.merchant.appid.clone()),
        out_trade_no,
        amount,
        subject: body,
        scene: trade_type.to_string(),
        notify_url: r.get("notify_url"),
        return_url: None,
        expires_at,
        payer_id: r.get("openid"),
        attach: r.get("attach"),
        hidden_until_scanned: false,
        sp_mchid: None,
        sub_appid: None,
        sign_type: Some(r.sign_type.as_str().to_string()),
    })
}

pub(crate) async fn unifiedorder(AxState(inner): AxState<Arc<Inner>>, body: Bytes) -> Response {
    let r = verified!(inner, body);
    let result = (|| {
        let trade_type = r
            .get("trade_type")
            .ok_or(("PARAM_ERROR", "缺少参数trade_type"))?;
        if !matches!(trade_type.as_str(), "JSAPI" | "NATIVE" | "APP" | "MWEB") {
            return Err(("PARAM_ERROR", "trade_type参数错误"));
        }
        if r.get("notify_url").is_none() {
            return Err(("PARAM_ERROR", "缺少参数notify_url"));
        }
        if trade_type == "JSAPI" && r.get("openid").is_none() {
            return Err(("PARAM_ERROR", "JSAPI支付必须传openid"));
        }
        let new = new_trade(&r, &trade_type, Provider::WechatV2)?;
        let mut st = r.inner.lock();
        let (id, _) = st.ledger.create(new, r.now).map_err(|e| ledger_err(&e))?;
        let prepay_id = prepay_id(&mut st.prepay, &id, r.now);
        let mut out = vec![
            ("trade_type".to_string(), trade_type.clone()),
            ("prepay_id".to_string(), prepay_id),
        ];
        match trade_type.as_str() {
            "NATIVE" => out.push(("code_url".into(), r.inner.pay_page_url(&id))),
            "MWEB" => out.push(("mweb_url".into(), r.inner.pay_page_url(&id))),
            _ => {}
        }
        Ok(out)
    })();
    r.reply(result)
}

/// The prepay id of a trade (stable across repeated orders).
pub(crate) fn prepay_id(
    map: &mut std::collections::HashMap<String, String>,
    trade_id: &str,
    now: Millis,
) -> String {
    if let Some((p, _)) = map.iter().find(|(_, t)| t.as_str() == trade_id) {
        return p.clone();
    }
    let p = format!("wx{}{}", wechat_v2_time(now), trade_id.to_ascii_lowercase());
    map.insert(p.clone(), trade_id.to_string());
    p
}

pub(crate) async fn orderquery(AxState(inner): AxState<Arc<Inner>>, body: Bytes) -> Response {
    let r = verified!(inner, body);
    let result = r
        .find()
        .map(|t| paid_fields(&t))
        .map_err(|e| ledger_err(&e));
    r.reply(result)
}

pub(crate) async fn closeorder(AxState(inner): AxState<Arc<Inner>>, body: Bytes) -> Response {
    let r = verified!(inner, body);
    let result = (|| {
        let t = r.find().map_err(|e| ledger_err(&e))?;
        let mut st = r.inner.lock();
        let ev = st.ledger.close(&t.id, r.now).map_err(|e| ledger_err(&e))?;
        r.inner.notify_events(&mut st, vec![ev], r.now);
        Ok(Vec::new())
    })();
    r.reply(result)
}

pub(crate) async fn micropay(AxState(inner): AxState<Arc<Inner>>, body: Bytes) -> Response {
    let r = verified!(inner, body);
    let result = (|| {
        if r.get("auth_code").is_none() {
            return Err(("PARAM_ERROR", "缺少参数auth_code"));
        }
        let new = new_trade(&r, "MICROPAY", Provider::WechatV2)?;
        let mut st = r.inner.lock();
        let (id, _) = st.ledger.create(new, r.now).map_err(|e| ledger_err(&e))?;
        match r.inner.barcode_mode(&st, &r.merchant.mchid) {
            BarcodeMode::Succeed => {
                st.ledger
                    .pay(&id, None, r.now)
                    .map_err(|e| ledger_err(&e))?;
                let t = st
                    .ledger
                    .get(&id)
                    .cloned()
                    .ok_or(("SYSTEMERROR", "系统错误"))?;
                Ok(paid_fields(&t))
            }
            BarcodeMode::Fail => {
                st.ledger.fail(&id, r.now).map_err(|e| ledger_err(&e))?;
                Err(("NOTENOUGH", "用户余额不足"))
            }
            BarcodeMode::WaitPassword => {
                st.ledger.set_user_paying(&id).map_err(|e| ledger_err(&e))?;
                Err(("USERPAYING", "需要用户输入支付密码"))
            }
        }
    })();
    r.reply(result)
}

pub(crate) async fn reverse(AxState(inner): AxState<Arc<Inner>>, body: Bytes) -> Response {
    let r = verified!(inner, body);
    let result = (|| {
        let t = r.find().map_err(|e| ledger_err(&e))?;
        let mut st = r.inner.lock();
        st.ledger.cancel(&t.id, r.now).map_err(|e| ledger_err(&e))?;
        Ok(vec![("recall".to_string(), "N".to_string())])
    })();
    r.reply(result)
}

pub(crate) async fn refund(AxState(inner): AxState<Arc<Inner>>, body: Bytes) -> Response {
    let r = verified!(inner, body);
    let result = (|| {
        let t = r.find().map_err(|e| ledger_err(&e))?;
        let out_refund_no = r
            .get("out_refund_no")
            .ok_or(("PARAM_ERROR", "缺少参数out_refund_no"))?;
        let total = fen_field(&r, "total_fee")?;
        let amount = fen_field(&r, "refund_fee")?;
        if total != t.amount {
            return Err((
                "INVALID_REQUEST",
                "订单金额或退款金额与之前请求不一致，请核实后再试",
            ));
        }
        let mut st = r.inner.lock();
        let (rf, _) = st
            .ledger
            .refund(
                &t.id,
                &out_refund_no,
                amount,
                r.get("refund_desc"),
                r.get("notify_url"),
                r.now,
            )
            .map_err(|e| ledger_err(&e))?;
        Ok(vec![
            ("transaction_id".to_string(), t.trade_no.clone()),
            ("out_trade_no".to_string(), t.out_trade_no.clone()),
            ("out_refund_no".to_string(), rf.out_request_no.clone()),
            ("refund_id".to_string(), rf.refund_id.clone()),
            ("refund_fee".to_string(), rf.amount.0.to_string()),
            ("total_fee".to_string(), t.amount.0.to_string()),
            ("cash_fee".to_string(), t.amount.0.to_string()),
            ("cash_refund_fee".to_string(), rf.amount.0.to_string()),
        ])
    })();
    r.reply(result)
}

fn v2_refund_status(s: RefundState) -> &'static str {
    match s {
        RefundState::Processing => "PROCESSING",
        RefundState::Success => "SUCCESS",
        RefundState::Abnormal => "CHANGE",
        RefundState::Closed => "REFUNDCLOSE",
    }
}

pub(crate) async fn refundquery(AxState(inner): AxState<Arc<Inner>>, body: Bytes) -> Response {
    let r = verified!(inner, body);
    let result = (|| {
        let by_refund = r.get("out_refund_no").or_else(|| r.get("refund_id"));
        let t = {
            let st = r.inner.lock();
            match &by_refund {
                Some(no) => st
                    .ledger
                    .trades()
                    .find(|t| {
                        t.account == r.merchant.mchid
                            && t.refunds
                                .iter()
                                .any(|x| &x.out_request_no == no || &x.refund_id == no)
                    })
                    .cloned()
                    .ok_or(LedgerError::RefundNotExist),
                None => st
                    .ledger
                    .find(
                        Family::Wechat,
                        &r.merchant.mchid,
                        r.get("out_trade_no").as_deref(),
                        r.get("transaction_id").as_deref(),
                    )
                    .cloned(),
            }
        }
        .map_err(|e| ledger_err(&e))?;
        let refunds: Vec<_> = t
            .refunds
            .iter()
            .filter(|x| {
                by_refund
                    .as_ref()
                    .is_none_or(|no| &x.out_request_no == no || &x.refund_id == no)
            })
            .collect();
        if refunds.is_empty() {
            return Err(ledger_err(&LedgerError::RefundNotExist));
        }
        let mut out = vec![
            ("transaction_id".to_string(), t.trade_no.clone()),
            ("out_trade_no".to_string(), t.out_trade_no.clone()),
            ("total_fee".to_string(), t.amount.0.to_string()),
            ("cash_fee".to_string(), t.amount.0.to_string()),
            ("refund_fee".to_string(), t.refunded().0.to_string()),
            ("refund_count".to_string(), refunds.len().to_string()),
        ];
        for (n, x) in refunds.iter().enumerate() {
            out.extend([
                (format!("out_refund_no_{n}"), x.out_request_no.clone()),
                (format!("refund_id_{n}"), x.refund_id.clone()),
                (format!("refund_channel_{n}"), "ORIGINAL".to_string()),
                (format!("refund_fee_{n}"), x.amount.0.to_string()),
                (
                    format!("refund_status_{n}"),
                    v2_refund_status(x.state).to_string(),
                ),
                (
                    format!("refund_recv_accout_{n}"),
                    "支付用户的零钱".to_string(),
                ),
            ]);
            if let Some(s) = x.settled_at.filter(|_| x.state == RefundState::Success) {
                out.push((format!("refund_success_time_{n}"), alipay_time(s)));
            }
        }
        Ok(out)
    })();
    r.reply(result)
}

pub(crate) async fn downloadbill(AxState(inner): AxState<Arc<Inner>>, body: Bytes) -> Response {
    let r = verified!(inner, body);
    crate::bills::wechat_v2_download(&r)
}

/// Payment notifications are signed XML; refund notifications carry the encrypted `req_info`
/// and no signature. WeChat sends none for a close.
pub(crate) fn notification(
    inner: &Inner,
    t: &Trade,
    ev: &LedgerEvent,
    fault: BodyFault,
    _now: Millis,
) -> Result<Option<(String, Outgoing)>, String> {
    let Some(m) = inner.keys.merchants.get(&t.account) else {
        return Ok(None);
    };
    let headers = vec![(
        "content-type".to_string(),
        "text/xml; charset=utf-8".to_string(),
    )];
    match ev {
        LedgerEvent::Closed { .. } | LedgerEvent::Finished { .. } => Ok(None),
        LedgerEvent::Paid { .. } => {
            if t.state != TradeState::Success && t.state != TradeState::Finished {
                return Ok(None);
            }
            let Some(url) = t.notify_url.clone() else {
                return Ok(None);
            };
            let mut fields = vec![
                ("appid".to_string(), t.app_id.clone()),
                ("mch_id".to_string(), t.account.clone()),
                ("nonce_str".to_string(), random_string(32)),
                ("return_code".to_string(), "SUCCESS".to_string()),
                ("result_code".to_string(), "SUCCESS".to_string()),
            ];
            fields.extend(
                paid_fields(t)
                    .into_iter()
                    .filter(|(k, _)| !matches!(k.as_str(), "trade_state" | "trade_state_desc")),
            );
            // The notification is signed the way the order was.
            let sign_type = t
                .sign_type
                .as_deref()
                .and_then(SignType::parse)
                .unwrap_or(SignType::Md5);
            if sign_type == SignType::HmacSha256 {
                fields.push(("sign_type".to_string(), "HMAC-SHA256".to_string()));
            }
            let body = signed_fields_xml(fields, m.api_v2_key.expose(), sign_type, fault);
            Ok(Some((
                "PAY.SUCCESS".to_string(),
                Outgoing { url, headers, body },
            )))
        }
        LedgerEvent::RefundSettled { out_request_no, .. } => {
            let Some(rf) = t.refund(out_request_no) else {
                return Ok(None);
            };
            let Some(url) = rf.notify_url.clone() else {
                return Ok(None);
            };
            let amount = match fault {
                BodyFault::TamperedAmount => rf.amount.0 + 100,
                _ => rf.amount.0,
            };
            let info: Vec<(String, String)> = vec![
                ("transaction_id".into(), t.trade_no.clone()),
                ("out_trade_no".into(), t.out_trade_no.clone()),
                ("refund_id".into(), rf.refund_id.clone()),
                ("out_refund_no".into(), rf.out_request_no.clone()),
                ("total_fee".into(), t.amount.0.to_string()),
                ("refund_fee".into(), amount.to_string()),
                ("settlement_refund_fee".into(), amount.to_string()),
                ("refund_status".into(), v2_refund_status(rf.state).into()),
                (
                    "success_time".into(),
                    rf.settled_at.map(alipay_time).unwrap_or_default(),
                ),
                ("refund_recv_accout".into(), "支付用户的零钱".into()),
                (
                    "refund_account".into(),
                    "REFUND_SOURCE_RECHARGE_FUNDS".into(),
                ),
                ("refund_request_source".into(), "API".into()),
            ];
            let info_refs: Vec<(&str, &str)> =
                info.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            let key = match fault {
                BodyFault::Forged | BodyFault::SignTestProbe => {
                    "forged-key-the-merchant-does-not-know"
                }
                _ => m.api_v2_key.expose().as_str(),
            };
            let appid = match fault {
                BodyFault::TamperedAppId => "wx9999999999999999",
                _ => t.app_id.as_str(),
            };
            let body = refund_notify_xml(appid, &t.account, &random_string(32), &info_refs, key)
                .map_err(|e| e.to_string())?;
            Ok(Some((
                format!("REFUND.{}", v2_refund_status(rf.state)),
                Outgoing { url, headers, body },
            )))
        }
    }
}
