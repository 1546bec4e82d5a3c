//! Alipay's fund APIs on `gateway.do`: `alipay.fund.trans.uni.transfer`,
//! `alipay.fund.trans.common.query`, `alipay.fund.account.query`, and the
//! `alipay.fund.trans.order.changed` message on the 消息服务 retry schedule. Requests arrive
//! verified by [`crate::alipay::gateway`]; fund APIs additionally need an app in certificate
//! mode, as at Alipay.

use paybridge_alipay::notify::NotifyRule;
use paybridge_alipay::provider::{encode_form, sign_notify};
use paybridge_core::Fen;
use serde_json::{json, Map, Value};

use crate::alipay::{fail, invalid, ok, Answer, Ctx};
use crate::clock::{alipay_time, Millis};
use crate::ledger::Family;
use crate::notifier::{BodyFault, Outgoing};
use crate::payouts::{NewPayout, Payout, PayoutError, PayoutFault, PayoutFinished, Start};
use crate::server::Inner;

const PRODUCT: &str = "TRANS_ACCOUNT_NO_PWD";
const SCENE: &str = "DIRECT_TRANSFER";
const MIN_FEN: i64 = 10;
const MESSAGE_METHOD: &str = "alipay.fund.trans.order.changed";

fn refused(sub_code: &str, sub_msg: &str) -> Answer {
    fail("40004", "Business Failed", sub_code, sub_msg)
}

/// "资金类接口必须使用公钥证书": a public-key-mode app is refused before anything happens.
fn require_cert_mode(ctx: &Ctx<'_>) -> Result<(), Answer> {
    if ctx.app.app_cert_sn.is_none() {
        return Err(invalid(
            "isv.missing-app-cert-sn",
            "资金类接口必须使用公钥证书模式加签，缺少应用公钥证书序列号",
        ));
    }
    Ok(())
}

fn payout_err(e: &PayoutError) -> Answer {
    match e {
        PayoutError::NotFound => refused("ORDER_NOT_EXIST", "转账订单不存在"),
        PayoutError::Inconsistent => refused(
            "PAYMENT_INFO_INCONSISTENCY",
            "两次请求商户单号一样，但是参数不一致",
        ),
        PayoutError::InsufficientBalance { .. } => balance_not_enough(),
        PayoutError::State(_) => refused("ORDER_STATUS_INVALID", "订单状态不合法"),
    }
}

fn balance_not_enough() -> Answer {
    refused(
        "PAYER_BALANCE_NOT_ENOUGH",
        "付款方余额不足，请向付款账户余额充值后再原请求重试",
    )
}

fn transfer_fields(p: &Payout) -> Vec<(&'static str, Value)> {
    vec![
        ("out_biz_no", p.out_no.clone().into()),
        ("order_id", p.provider_no.clone().into()),
        ("pay_fund_order_id", p.fund_order_no.clone().into()),
        ("status", p.state.alipay().into()),
        ("trans_date", alipay_time(p.created_at).into()),
    ]
}

/// `alipay.fund.trans.uni.transfer`.
pub(crate) fn transfer(ctx: &Ctx<'_>) -> Result<Answer, Answer> {
    require_cert_mode(ctx)?;
    let out_biz_no = ctx
        .biz("out_biz_no")
        .ok_or_else(|| invalid("isv.missing-parameter", "缺少参数 out_biz_no"))?;
    if out_biz_no.len() > 64
        || !out_biz_no
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Err(refused(
            "INVALID_PARAMETER",
            "out_biz_no 只支持半角英文、数字及-、_",
        ));
    }
    if ctx.biz("product_code").as_deref() != Some(PRODUCT)
        || ctx.biz("biz_scene").as_deref() != Some(SCENE)
    {
        return Err(refused(
            "INVALID_PARAMETER",
            "product_code 须为 TRANS_ACCOUNT_NO_PWD, biz_scene 须为 DIRECT_TRANSFER",
        ));
    }
    let text = ctx
        .biz("trans_amount")
        .ok_or_else(|| invalid("isv.missing-parameter", "缺少参数 trans_amount"))?;
    let amount = Fen::parse_trade_amount(&text)
        .map_err(|_| refused("INVALID_PARAMETER", "trans_amount 格式不正确"))?;
    if amount.as_i64() < MIN_FEN {
        return Err(refused(
            "EXCEED_LIMIT_SM_MIN_AMOUNT",
            "单笔最低转账金额0.1元",
        ));
    }
    let payee: &Map<String, Value> = ctx
        .biz
        .get("payee_info")
        .and_then(Value::as_object)
        .ok_or_else(|| invalid("isv.missing-parameter", "缺少参数 payee_info"))?;
    let field = |k: &str| {
        payee
            .get(k)
            .and_then(Value::as_str)
            .filter(|v| !v.is_empty())
            .map(str::to_string)
    };
    let (Some(identity), Some(identity_type)) = (field("identity"), field("identity_type")) else {
        return Err(invalid(
            "isv.missing-parameter",
            "缺少参数 payee_info.identity/identity_type",
        ));
    };
    let name = field("name");
    match identity_type.as_str() {
        "ALIPAY_USER_ID" => {
            if identity.len() != 16
                || !identity.starts_with("2088")
                || !identity.bytes().all(|b| b.is_ascii_digit())
            {
                return Err(refused("PAYEE_NOT_EXIST", "收款账号不存在"));
            }
        }
        "ALIPAY_LOGON_ID" if name.is_none() => {
            return Err(refused(
                "INVALID_PARAMETER",
                "收款方为ALIPAY_LOGON_ID时，收款方姓名不能为空",
            ));
        }
        "ALIPAY_LOGON_ID" | "ALIPAY_OPEN_ID" => {}
        _ => return Err(refused("INVALID_PARAMETER", "identity_type 不支持")),
    }
    let title = ctx.biz("order_title").unwrap_or_default();
    let remark = ctx.biz("remark").unwrap_or_default();
    let fingerprint = format!(
        "{}|{identity_type}|{identity}|{}|{title}|{remark}",
        amount.as_i64(),
        name.as_deref().unwrap_or_default()
    );
    let account = ctx.app.app_id.clone();
    let new = NewPayout {
        family: Family::Alipay,
        account: account.clone(),
        app_id: account.clone(),
        out_no: out_biz_no.clone(),
        amount,
        payee: identity,
        payee_type: identity_type,
        name: name.clone(),
        remark: if title.is_empty() { remark } else { title },
        scene: SCENE.into(),
        notify_url: ctx
            .params
            .iter()
            .find(|(k, v)| k == "notify_url" && !v.is_empty())
            .map(|(_, v)| v.clone()),
        fingerprint,
    };
    let mut st = ctx.inner.lock();
    let known = st
        .payouts
        .by_out_no(Family::Alipay, &account, &out_biz_no)
        .is_some();
    // Failures on demand apply to a new transfer only: a repeat answers with the transfer.
    let fault = if known {
        None
    } else {
        st.payout_faults.lookup(&account, &out_biz_no)
    };
    let mut delay_ms = 0;
    match fault {
        None => {}
        Some(PayoutFault::InsufficientBalance) => return Err(balance_not_enough()),
        Some(PayoutFault::PayeeNotFound) => {
            return Err(refused("PAYEE_NOT_EXIST", "收款账号不存在"))
        }
        Some(PayoutFault::NameMismatch) => {
            return Err(refused("PAYEE_USER_INFO_ERROR", "支付宝账号和姓名不匹配"))
        }
        Some(PayoutFault::DailyLimit) => {
            return Err(refused("EXCEED_LIMIT_DM_AMOUNT", "日累计额度超限"))
        }
        Some(PayoutFault::Timeout { delay_ms: d }) => delay_ms = d,
    }
    let (p, created) = st
        .payouts
        .create(new, Start::Succeed, ctx.now)
        .map_err(|e| payout_err(&e))?;
    if created {
        ctx.inner
            .notify_payouts(&mut st, vec![PayoutFinished { id: p.id.clone() }], ctx.now);
    }
    let mut a = ok(transfer_fields(&p));
    a.delay_ms = delay_ms;
    Ok(a)
}

/// `alipay.fund.trans.common.query`: pay_fund_order_id > order_id > out_biz_no.
pub(crate) fn query(ctx: &Ctx<'_>) -> Result<Answer, Answer> {
    require_cert_mode(ctx)?;
    let account = &ctx.app.app_id;
    let st = ctx.inner.lock();
    let found = match (
        ctx.biz("pay_fund_order_id"),
        ctx.biz("order_id"),
        ctx.biz("out_biz_no"),
    ) {
        (Some(no), _, _) | (None, Some(no), _) => {
            st.payouts.by_provider_no(Family::Alipay, account, &no)
        }
        (None, None, Some(out)) => {
            if ctx.biz("product_code").is_none() || ctx.biz("biz_scene").is_none() {
                return Err(invalid(
                    "isv.missing-parameter",
                    "传入out_biz_no时product_code和biz_scene必传",
                ));
            }
            st.payouts.by_out_no(Family::Alipay, account, &out)
        }
        (None, None, None) => {
            return Err(invalid(
                "isv.missing-parameter",
                "out_biz_no、order_id、pay_fund_order_id 不能同时为空",
            ))
        }
    };
    let p = found.ok_or_else(|| payout_err(&PayoutError::NotFound))?;
    let mut fields = transfer_fields(p);
    fields.retain(|(k, _)| *k != "trans_date");
    fields.push(("trans_amount", p.amount.to_yuan().into()));
    fields.push(("order_fee", "0.00".into()));
    if let Some(at) = p.finished_at.filter(|_| p.state.alipay() == "SUCCESS") {
        fields.push(("pay_date", alipay_time(at).into()));
    }
    if let Some(r) = &p.fail_reason {
        fields.push(("error_code", r.clone().into()));
        fields.push(("fail_reason", r.clone().into()));
    }
    Ok(ok(fields))
}

/// `alipay.fund.account.query`: the app's balance.
pub(crate) fn account(ctx: &Ctx<'_>) -> Result<Answer, Answer> {
    require_cert_mode(ctx)?;
    if ctx.biz("alipay_user_id").is_none() && ctx.biz("alipay_open_id").is_none() {
        return Err(invalid(
            "isv.missing-parameter",
            "alipay_user_id 和 alipay_open_id 不能同时为空",
        ));
    }
    if ctx.biz("account_type").as_deref() != Some("ACCTRANS_ACCOUNT") {
        return Err(invalid(
            "isv.invalid-parameter",
            "account_type 须为 ACCTRANS_ACCOUNT",
        ));
    }
    let balance = ctx.inner.lock().payouts.balance(&ctx.app.app_id);
    Ok(ok(vec![
        ("available_amount", balance.to_yuan().into()),
        ("freeze_amount", "0.00".into()),
    ]))
}

/// `alipay.fund.trans.order.changed` for a finished transfer, in the open-message format,
/// signed under rule V1.
pub(crate) fn notification(
    inner: &Inner,
    p: &Payout,
    fault: BodyFault,
    now: Millis,
) -> Result<Option<Outgoing>, String> {
    let Some(url) = p.notify_url.clone() else {
        return Ok(None);
    };
    let biz = |amount: Fen| {
        let mut v = json!({
            "action_type": "FINISH",
            "biz_scene": SCENE,
            "order_id": p.provider_no,
            "origin_interface": "alipay.fund.trans.uni.transfer",
            "out_biz_no": p.out_no,
            "pay_fund_order_id": p.fund_order_no,
            "product_code": PRODUCT,
            "status": p.state.alipay(),
            "trans_amount": amount.to_yuan(),
        });
        if let Some(at) = p.finished_at.filter(|_| p.state.alipay() == "SUCCESS") {
            v["pay_date"] = json!(alipay_time(at));
        }
        if let Some(r) = &p.fail_reason {
            v["error_code"] = json!(r);
            v["fail_reason"] = json!(r);
        }
        v.to_string()
    };
    let digest =
        paybridge_crypto::md5(format!("{}|{}|{now}", p.provider_no, p.state.alipay()).as_bytes());
    let fields: Vec<(String, String)> = [
        (
            "notify_id",
            format!("2026{:028}", u128::from_be_bytes(digest) % 10u128.pow(28)),
        ),
        ("utc_timestamp", now.to_string()),
        ("msg_method", MESSAGE_METHOD.to_string()),
        ("app_id", p.app_id.clone()),
        ("version", "1.1".to_string()),
        ("biz_content", biz(p.amount)),
        ("charset", "utf-8".to_string()),
        ("sign_type", "RSA2".to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    let key = match fault {
        BodyFault::Forged | BodyFault::SignTestProbe => &inner.keys.forger,
        _ => &inner.keys.alipay_key,
    };
    let mut signed = sign_notify(fields, NotifyRule::V1, key).map_err(|e| e.to_string())?;
    match fault {
        BodyFault::TamperedAmount => {
            let spoiled = biz(Fen(p.amount.as_i64() + 100));
            for (k, v) in signed.iter_mut() {
                if k == "biz_content" {
                    *v = spoiled.clone();
                }
            }
        }
        BodyFault::TamperedAppId => {
            for (k, v) in signed.iter_mut() {
                if k == "app_id" {
                    *v = "2021999999999999".into();
                }
            }
        }
        BodyFault::None | BodyFault::Forged | BodyFault::SignTestProbe => {}
    }
    let body = encode_form(&signed, "utf-8").map_err(|e| e.to_string())?;
    Ok(Some(Outgoing {
        url,
        headers: vec![(
            "content-type".into(),
            "application/x-www-form-urlencoded; charset=utf-8".into(),
        )],
        body: String::from_utf8(body).map_err(|e| e.to_string())?,
    }))
}
