//! WeChat Pay 商家转账 over APIv3 (`/v3/fund-app/mch-transfer/...`): create, the two queries,
//! cancel, the electronic receipt, and the `MCHTRANSFER.BILL.FINISHED` notification on the
//! transfer schedule. Requests arrive already verified by [`crate::wechat_v3::dispatch`];
//! replies are signed there. Scene rules come from `paybridge_wechatpay::v3::transfer`, so
//! both sides hold one copy of them.

use axum::http::HeaderMap;
use paybridge_core::Fen;
use paybridge_crypto::{md5_hex, random_string, sha256};
use paybridge_wechatpay::v3::provider::{notify_body, wire_serial};
use paybridge_wechatpay::v3::sensitive;
use paybridge_wechatpay::v3::transfer::{
    check_out_bill_no, FINISHED_EVENT, MAX_REMARK_CHARS, MIN_TRANSFER_FEN, NAME_ALLOWED_FROM_FEN,
    NAME_REQUIRED_FROM_FEN, NOTIFY_ORIGINAL_TYPE, SCENE_REPORT_TYPES,
};
use serde_json::{json, Value};

use crate::clock::{rfc3339_beijing, Millis};
use crate::ledger::Family;
use crate::notifier::{BodyFault, Outgoing};
use crate::payouts::{NewPayout, Payout, PayoutError, PayoutFault, PayoutState, Start};
use crate::server::{BillFile, Inner};
use crate::wechat_v3::{err, ok_json, Reply, Req};

/// `/v3/fund-app/mch-transfer/{rest}`.
pub(crate) fn route(r: &Req<'_>, method: &str, rest: &[&str], headers: &HeaderMap) -> Reply {
    match (method, rest) {
        ("POST", ["transfer-bills"]) => create(r, headers),
        ("GET", ["transfer-bills", "out-bill-no", no]) => {
            query(r, |l, a| l.by_out_no(Family::Wechat, a, no).cloned())
        }
        ("GET", ["transfer-bills", "transfer-bill-no", no]) => {
            query(r, |l, a| l.by_provider_no(Family::Wechat, a, no).cloned())
        }
        ("POST", ["transfer-bills", "out-bill-no", no, "cancel"]) => cancel(r, no),
        ("POST", ["elecsign", kind @ ("out-bill-no" | "transfer-bill-no")]) => {
            apply_receipt(r, kind)
        }
        ("GET", ["elecsign", kind @ ("out-bill-no" | "transfer-bill-no"), no]) => {
            query_receipt(r, kind, no)
        }
        _ => err(404, "NOT_FOUND", "没有这个接口"),
    }
}

fn param(message: &str) -> Reply {
    err(400, "PARAM_ERROR", message)
}

fn not_found() -> Reply {
    err(404, "NOT_FOUND", "记录不存在")
}

fn payout_err(e: &PayoutError) -> Reply {
    match e {
        PayoutError::NotFound => not_found(),
        PayoutError::Inconsistent => err(
            400,
            "INVALID_REQUEST",
            "单号已存在但信息不一致，请查单后比较确认",
        ),
        PayoutError::InsufficientBalance { .. } => not_enough(),
        PayoutError::State(_) => err(400, "INVALID_REQUEST", "当前转账单据状态不支持该操作"),
    }
}

fn not_enough() -> Reply {
    err(
        403,
        "NOT_ENOUGH",
        "运营账户资金不足,充值后可以原单号发起重试,请勿更换商户单号",
    )
}

/// The scene's fixed report types, when WeChat checks them.
fn check_report_infos(scene: &str, infos: Option<&Value>) -> Result<(), Reply> {
    let Some(list) = infos.and_then(Value::as_array).filter(|l| !l.is_empty()) else {
        return Err(param("需传入转账场景报备信息,请检查"));
    };
    let mut got = Vec::new();
    for i in list {
        match (
            i.get("info_type").and_then(Value::as_str),
            i.get("info_content").and_then(Value::as_str),
        ) {
            (Some(t), Some(c)) if !t.is_empty() && !c.is_empty() => got.push(t),
            _ => return Err(param("转账场景报备信息格式错误")),
        }
    }
    if let Some((_, want)) = SCENE_REPORT_TYPES.iter().find(|(s, _)| *s == scene) {
        let mut want = want.to_vec();
        want.sort_unstable();
        got.sort_unstable();
        if want != got {
            return Err(param(
                "未传入完整且对应的转账场景报备信息,请根据接口文档检查",
            ));
        }
    }
    Ok(())
}

fn created_json(p: &Payout) -> Value {
    let mut v = json!({
        "out_bill_no": p.out_no,
        "transfer_bill_no": p.provider_no,
        "create_time": rfc3339_beijing(p.created_at),
        "state": p.state.wechat(),
    });
    if let Some(pkg) = &p.package_info {
        v["package_info"] = json!(pkg);
    }
    if let Some(r) = &p.fail_reason {
        v["fail_reason"] = json!(r);
    }
    v
}

/// A bill as the queries show it (and the notification resource). Queries carry the name the
/// merchant sent, encrypted under the merchant's key as WeChat encrypts answers.
fn bill_json(p: &Payout, merchant_key: Option<&paybridge_crypto::RsaPublicKey>) -> Value {
    let mut v = json!({
        "mch_id": p.account,
        "out_bill_no": p.out_no,
        "transfer_bill_no": p.provider_no,
        "appid": p.app_id,
        "state": p.state.wechat(),
        "transfer_amount": p.amount.as_i64(),
        "transfer_remark": p.remark,
        "openid": p.payee,
        "create_time": rfc3339_beijing(p.created_at),
        "update_time": rfc3339_beijing(p.updated_at),
    });
    if let Some(r) = &p.fail_reason {
        v["fail_reason"] = json!(r);
    }
    if let (Some(name), Some(key)) = (&p.name, merchant_key) {
        if let Ok(ct) = sensitive::encrypt(key, name.expose()) {
            v["user_name"] = json!(ct);
        }
    }
    v
}

fn create(r: &Req<'_>, headers: &HeaderMap) -> Reply {
    let (Some(appid), Some(out_bill_no), Some(scene), Some(openid), Some(remark)) = (
        r.s("appid"),
        r.s("out_bill_no"),
        r.s("transfer_scene_id"),
        r.s("openid"),
        r.s("transfer_remark"),
    ) else {
        return param("缺少必填参数 appid/out_bill_no/transfer_scene_id/openid/transfer_remark");
    };
    if appid != r.merchant.appid {
        return err(400, "APPID_MCHID_NOT_MATCH", "appid和mch_id不匹配");
    }
    if check_out_bill_no(&out_bill_no).is_err() {
        return param("out_bill_no 只能由数字、大小写字母组成，且长度不超过32");
    }
    let Some(amount) = r.body.get("transfer_amount").and_then(Value::as_i64) else {
        return param("缺少参数 transfer_amount");
    };
    if amount < MIN_TRANSFER_FEN {
        return err(
            400,
            "INVALID_REQUEST",
            "超过单笔转账上下限,核实产品设置是否准确",
        );
    }
    if remark.chars().count() > MAX_REMARK_CHARS {
        return param("transfer_remark 长度不能超过32个字符");
    }
    if let Err(reply) = check_report_infos(&scene, r.body.get("transfer_scene_report_infos")) {
        return reply;
    }
    // The name travels OAEP-encrypted under the key that `Wechatpay-Serial` names.
    let name = match r.s("user_name") {
        None => None,
        Some(ct) => {
            let serial = headers
                .get("wechatpay-serial")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            if !wire_serial(serial).eq_ignore_ascii_case(&r.inner.keys.wechat_serial) {
                return param("Wechatpay-Serial 缺失或与加密使用的微信支付公钥不符");
            }
            match sensitive::decrypt(&r.inner.keys.wechat_key, &ct) {
                Ok(n) if !n.is_empty() => Some(n),
                _ => return param("请确认待处理的消息是否为加密后的密文"),
            }
        }
    };
    if amount >= NAME_REQUIRED_FROM_FEN && name.is_none() {
        return param("转账金额 >= 2,000元时，必须填写收款用户姓名");
    }
    if amount < NAME_ALLOWED_FROM_FEN && name.is_some() {
        return param("转账金额低于0.3元时，不支持传入用户姓名校验");
    }
    let fingerprint = format!(
        "{appid}|{openid}|{amount}|{remark}|{scene}|{}",
        name.as_deref()
            .map(|n| md5_hex(n.as_bytes()))
            .unwrap_or_default()
    );
    let account = r.merchant.mchid.clone();
    let new = NewPayout {
        family: Family::Wechat,
        account: account.clone(),
        app_id: appid,
        out_no: out_bill_no.clone(),
        amount: Fen(amount),
        payee: openid,
        payee_type: "openid".into(),
        name: name.clone(),
        remark,
        scene,
        notify_url: r.s("notify_url"),
        fingerprint,
    };
    let mut st = r.inner.lock();
    let known = st
        .payouts
        .by_out_no(Family::Wechat, &account, &out_bill_no)
        .is_some();
    // Failures on demand apply to a new bill only: a repeat answers with the bill as it is.
    let fault = if known {
        None
    } else {
        st.payout_faults.lookup(&account, &out_bill_no)
    };
    let mut delay_ms = 0;
    let start = match fault {
        None => Start::AwaitConfirmation,
        Some(PayoutFault::InsufficientBalance) => return not_enough(),
        Some(PayoutFault::PayeeNotFound) => return param("Openid格式错误或者不属于商家公众账号"),
        Some(PayoutFault::NameMismatch) => Start::Fail("NAME_NOT_CORRECT".into()),
        Some(PayoutFault::DailyLimit) => Start::Fail("DAY_RECEIVED_QUOTA_EXCEED".into()),
        Some(PayoutFault::Timeout { delay_ms: d }) => {
            delay_ms = d;
            Start::AwaitConfirmation
        }
    };
    let failed_at_once = matches!(start, Start::Fail(_));
    match st.payouts.create(new, start, r.now) {
        Ok((p, created)) => {
            if created && failed_at_once {
                r.inner.notify_payouts(
                    &mut st,
                    vec![crate::payouts::PayoutFinished { id: p.id.clone() }],
                    r.now,
                );
            }
            let mut reply = ok_json(created_json(&p));
            reply.delay_ms = delay_ms;
            reply
        }
        Err(e) => payout_err(&e),
    }
}

fn query(
    r: &Req<'_>,
    find: impl Fn(&crate::payouts::PayoutLedger, &str) -> Option<Payout>,
) -> Reply {
    let st = r.inner.lock();
    match find(&st.payouts, &r.merchant.mchid) {
        Some(p) => ok_json(bill_json(&p, Some(&r.merchant.public_key))),
        None => not_found(),
    }
}

fn cancel(r: &Req<'_>, no: &str) -> Reply {
    let mut st = r.inner.lock();
    let Some(p) = st
        .payouts
        .by_out_no(Family::Wechat, &r.merchant.mchid, no)
        .cloned()
    else {
        return not_found();
    };
    match p.state {
        PayoutState::AwaitingConfirmation => match st.payouts.cancel(&p.id, r.now) {
            Ok(done) => r.inner.notify_payouts(&mut st, vec![done], r.now),
            Err(e) => return payout_err(&e),
        },
        // Cancelling twice answers as the first time did.
        PayoutState::Cancelled => {}
        PayoutState::Succeeded | PayoutState::Failed => {
            return err(400, "INVALID_REQUEST", "当前转账单据状态不支持撤销")
        }
    }
    let p = st.payouts.get(&p.id).cloned().unwrap_or(p);
    ok_json(json!({
        "out_bill_no": p.out_no,
        "transfer_bill_no": p.provider_no,
        "state": p.state.wechat(),
        "update_time": rfc3339_beijing(p.updated_at),
    }))
}

fn find_bill<'a>(
    st: &'a crate::server::State,
    account: &str,
    kind: &str,
    no: &str,
) -> Option<&'a Payout> {
    match kind {
        "out-bill-no" => st.payouts.by_out_no(Family::Wechat, account, no),
        _ => st.payouts.by_provider_no(Family::Wechat, account, no),
    }
}

fn apply_receipt(r: &Req<'_>, kind: &str) -> Reply {
    let field = if kind == "out-bill-no" {
        "out_bill_no"
    } else {
        "transfer_bill_no"
    };
    let Some(no) = r.s(field) else {
        return param(&format!("缺少参数 {field}"));
    };
    let mut st = r.inner.lock();
    let Some(id) = find_bill(&st, &r.merchant.mchid, kind, &no).map(|p| p.id.clone()) else {
        return not_found();
    };
    match st.payouts.apply_receipt(&id, r.now) {
        Ok(p) => ok_json(json!({
            "state": if p.receipt_applied_at == Some(r.now) { "GENERATING" } else { "FINISHED" },
            "create_time": rfc3339_beijing(p.receipt_applied_at.unwrap_or(r.now)),
        })),
        Err(PayoutError::State(_)) => err(400, "INVALID_REQUEST", "转账成功后才能申请电子回单"),
        Err(e) => payout_err(&e),
    }
}

/// The receipt PDF: deterministic for a bill, so its hash is stable across queries.
fn receipt_pdf(p: &Payout) -> Vec<u8> {
    format!(
        "%PDF-1.4\n% paybridge sandbox electronic receipt\n1 0 obj << /Title (transfer {} {}) \
         /Amount ({}) /Payee ({}) >> endobj\n%%EOF\n",
        p.out_no,
        p.provider_no,
        p.amount.to_yuan(),
        p.payee
    )
    .into_bytes()
}

fn query_receipt(r: &Req<'_>, kind: &str, no: &str) -> Reply {
    let mut st = r.inner.lock();
    let Some(p) = find_bill(&st, &r.merchant.mchid, kind, no).cloned() else {
        return not_found();
    };
    let Some(applied) = p.receipt_applied_at else {
        return err(404, "NOT_FOUND", "电子回单不存在，请先申请");
    };
    let pdf = receipt_pdf(&p);
    let hash: String = sha256(&pdf).iter().map(|b| format!("{b:02x}")).collect();
    let token = random_string(24);
    st.bill_files.insert(
        token.clone(),
        BillFile {
            bytes: pdf,
            content_type: "application/pdf",
            // "下载地址有效期为10分钟".
            expires_at: r.now + 10 * 60_000,
            mchid: Some(r.merchant.mchid.clone()),
        },
    );
    ok_json(json!({
        "state": "FINISHED",
        "create_time": rfc3339_beijing(applied),
        "update_time": rfc3339_beijing(applied),
        "hash_type": "SHA256",
        "hash_value": hash,
        "download_url": format!("{}/v3/transferdownload/signfile?token={token}", r.inner.base_url),
    }))
}

/// `MCHTRANSFER.BILL.FINISHED` for a bill that reached a final state, when it has a notify_url.
pub(crate) fn notification(
    inner: &Inner,
    p: &Payout,
    fault: BodyFault,
    now: Millis,
) -> Result<Option<Outgoing>, String> {
    let (Some(url), Some(m)) = (p.notify_url.clone(), inner.keys.merchants.get(&p.account)) else {
        return Ok(None);
    };
    let honest = bill_json(p, None);
    let mut spoiled = honest.clone();
    match fault {
        BodyFault::TamperedAmount => spoiled["transfer_amount"] = json!(p.amount.as_i64() + 100),
        BodyFault::TamperedAppId => spoiled["mch_id"] = json!("1999999999"),
        BodyFault::None | BodyFault::Forged | BodyFault::SignTestProbe => {}
    }
    let id = format!("EV-{}-{}", p.id, random_string(12));
    let create_time = rfc3339_beijing(now);
    let nonce = random_string(12);
    let build = |v: &Value| {
        notify_body(
            m.api_v3_key.expose(),
            &id,
            &create_time,
            FINISHED_EVENT,
            "商家转账单据终态通知",
            NOTIFY_ORIGINAL_TYPE,
            &nonce,
            &v.to_string(),
        )
        .map_err(|e| e.to_string())
    };
    let honest_body = build(&honest)?;
    crate::wechat_v3::faulty_notification(inner, fault, honest_body, || build(&spoiled), url, now)
        .map(Some)
}
