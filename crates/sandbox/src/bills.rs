//! Daily bills generated from the ledger in each provider's format, with injectable
//! discrepancies for reconciliation tests: Alipay's ZIP of GBK CSVs (via
//! `bill.downloadurl.query`), WeChat APIv2's back-quoted text table, APIv3's trade and fund-flow
//! bills behind a `hash_value` (SHA-1 of the text) with optional gzip.

use std::io::Write;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use paybridge_alipay::bill::{write_trade_bill_zip, BillKind, BillRecord};
use paybridge_core::Fen;
use paybridge_crypto::{random_string, sha1_hex};
use paybridge_wechatpay::bill::write_bill;
use paybridge_wechatpay::v2::xml::write_xml;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::clock::{alipay_time, beijing_day_bounds, Millis};
use crate::ledger::{Family, Ledger, RefundState, Trade};
use crate::server::BillFile;

/// A deliberate difference between the bill and the ledger.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Discrepancy {
    /// Alipay app_id or WeChat mchid.
    pub account: String,
    #[serde(flatten)]
    pub kind: DiscrepancyKind,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum DiscrepancyKind {
    /// The trade's rows are left out of the bill.
    MissingTrade { out_trade_no: String },
    /// A paid trade the ledger never had (in the bill of `date`, `yyyy-MM-dd`).
    ExtraTrade {
        out_trade_no: String,
        amount: Fen,
        date: String,
    },
    /// The payment row's amount differs by `delta`.
    AmountMismatch { out_trade_no: String, delta: Fen },
    /// The payment row shows another status.
    StatusMismatch {
        out_trade_no: String,
        status: String,
    },
}

/// One bill row, provider-neutral.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BillEntry {
    pub at: Millis,
    pub trade_no: String,
    pub out_trade_no: String,
    pub app_id: String,
    pub account: String,
    pub subject: String,
    pub buyer: String,
    pub scene: String,
    pub attach: String,
    pub created_at: Millis,
    /// Positive for a payment.
    pub amount: Fen,
    /// Set on refund rows.
    pub refund: Option<(String, String)>,
    pub status: String,
}

fn payment_entry(t: &Trade, at: Millis) -> BillEntry {
    BillEntry {
        at,
        trade_no: t.trade_no.clone(),
        out_trade_no: t.out_trade_no.clone(),
        app_id: t.app_id.clone(),
        account: t.account.clone(),
        subject: t.subject.clone(),
        buyer: t.buyer_id.clone(),
        scene: t.scene.clone(),
        attach: t.attach.clone().unwrap_or_default(),
        created_at: t.created_at,
        amount: t.amount,
        refund: None,
        status: "SUCCESS".into(),
    }
}

/// The rows of one account's bill for a Beijing day, discrepancies applied.
pub fn entries(
    ledger: &Ledger,
    family: Family,
    account: &str,
    date: &str,
    discrepancies: &[Discrepancy],
) -> Option<Vec<BillEntry>> {
    let (start, end) = beijing_day_bounds(date)?;
    let in_day = |ms: Millis| ms >= start && ms < end;
    let mut rows = Vec::new();
    for t in ledger
        .trades()
        .filter(|t| t.account == account && t.provider.family() == family)
    {
        if let Some(p) = t.paid_at.filter(|p| in_day(*p)) {
            rows.push(payment_entry(t, p));
        }
        for r in &t.refunds {
            let Some(s) = r.settled_at.filter(|s| in_day(*s)) else {
                continue;
            };
            if r.state != RefundState::Success {
                continue;
            }
            let mut e = payment_entry(t, s);
            e.amount = Fen(-r.amount.0);
            e.refund = Some((r.refund_id.clone(), r.out_request_no.clone()));
            e.status = "REFUND".into();
            rows.push(e);
        }
    }
    for d in discrepancies.iter().filter(|d| d.account == account) {
        match &d.kind {
            DiscrepancyKind::MissingTrade { out_trade_no } => {
                rows.retain(|r| &r.out_trade_no != out_trade_no)
            }
            DiscrepancyKind::ExtraTrade {
                out_trade_no,
                amount,
                date: d_date,
            } if d_date == date => rows.push(BillEntry {
                at: start + 3_600_000,
                trade_no: format!("EXTRA{out_trade_no}"),
                out_trade_no: out_trade_no.clone(),
                app_id: rows.first().map(|r| r.app_id.clone()).unwrap_or_default(),
                account: account.to_string(),
                subject: "extra".into(),
                buyer: String::new(),
                scene: "NATIVE".into(),
                attach: String::new(),
                created_at: start + 3_600_000,
                amount: *amount,
                refund: None,
                status: "SUCCESS".into(),
            }),
            DiscrepancyKind::ExtraTrade { .. } => {}
            DiscrepancyKind::AmountMismatch {
                out_trade_no,
                delta,
            } => {
                for r in rows
                    .iter_mut()
                    .filter(|r| &r.out_trade_no == out_trade_no && r.refund.is_none())
                {
                    r.amount = Fen(r.amount.0 + delta.0);
                }
            }
            DiscrepancyKind::StatusMismatch {
                out_trade_no,
                status,
            } => {
                for r in rows
                    .iter_mut()
                    .filter(|r| &r.out_trade_no == out_trade_no && r.refund.is_none())
                {
                    r.status = status.clone();
                }
            }
        }
    }
    rows.sort_by_key(|r| r.at);
    Some(rows)
}

/// Bill rows for the payouts of one account that were paid out on a Beijing day: one expense
/// each, status `TRANSFER` (fund-flow bills only; payouts are not trades).
pub fn payout_entries(
    payouts: &crate::payouts::PayoutLedger,
    family: Family,
    account: &str,
    date: &str,
) -> Option<Vec<BillEntry>> {
    let (start, end) = beijing_day_bounds(date)?;
    Some(
        payouts
            .all()
            .iter()
            .filter(|p| p.family == family && p.account == account)
            .filter(|p| p.state == crate::payouts::PayoutState::Succeeded)
            .filter_map(|p| {
                let at = p.finished_at.filter(|at| *at >= start && *at < end)?;
                Some(BillEntry {
                    at,
                    trade_no: p.provider_no.clone(),
                    out_trade_no: p.out_no.clone(),
                    app_id: p.app_id.clone(),
                    account: p.account.clone(),
                    subject: p.remark.clone(),
                    buyer: p.payee.clone(),
                    scene: p.scene.clone(),
                    attach: String::new(),
                    created_at: p.created_at,
                    amount: Fen(-p.amount.as_i64()),
                    refund: None,
                    status: PAYOUT_STATUS.into(),
                })
            })
            .collect(),
    )
}

/// The `status` of payout rows.
pub const PAYOUT_STATUS: &str = "TRANSFER";

/// `{account}_{yyyymmdd}.csv.zip` of GBK CSVs, written by `paybridge_alipay::bill`.
pub fn alipay_bill_zip(account: &str, date: &str, rows: &[BillEntry]) -> Result<Vec<u8>, String> {
    let z = Fen(0);
    let records: Vec<BillRecord> = rows
        .iter()
        .map(|r| BillRecord {
            trade_no: r.trade_no.clone(),
            out_trade_no: r.out_trade_no.clone(),
            kind: if r.refund.is_some() {
                BillKind::Refund
            } else {
                BillKind::Payment
            },
            subject: r.subject.clone(),
            created_at: alipay_time(r.created_at),
            finished_at: alipay_time(r.at),
            store_id: String::new(),
            store_name: String::new(),
            operator: String::new(),
            terminal_id: String::new(),
            counterparty: r.buyer.clone(),
            order_amount: r.amount,
            merchant_received: r.amount,
            alipay_red_packet: z,
            jifenbao: z,
            alipay_discount: z,
            merchant_discount: z,
            coupon_amount: z,
            coupon_name: String::new(),
            merchant_red_packet: z,
            card_amount: z,
            refund_request_no: r.refund.as_ref().map(|x| x.1.clone()).unwrap_or_default(),
            service_fee: z,
            profit_share: z,
            // A status discrepancy shows as a remark: the detail table has no status column.
            remark: if r.status == "SUCCESS" || r.status == "REFUND" {
                String::new()
            } else {
                r.status.clone()
            },
        })
        .collect();
    write_trade_bill_zip(account, date, &records).map_err(|e| e.to_string())
}

const WECHAT_COLUMNS: &[&str] = &[
    "交易时间",
    "公众账号ID",
    "商户号",
    "特约商户号",
    "设备号",
    "微信订单号",
    "商户订单号",
    "用户标识",
    "交易类型",
    "交易状态",
    "付款银行",
    "货币种类",
    "应结订单金额",
    "代金券金额",
    "微信退款单号",
    "商户退款单号",
    "退款金额",
    "充值券退款金额",
    "退款类型",
    "退款状态",
    "商品名称",
    "商户数据包",
    "手续费",
    "费率",
    "订单金额",
    "申请退款金额",
    "费率备注",
];
const WECHAT_SUMMARY: &[&str] = &[
    "总交易单数",
    "应结订单总金额",
    "退款总金额",
    "充值券退款总金额",
    "手续费总金额",
    "订单总金额",
    "申请退款总金额",
];

/// WeChat's trade bill text (APIv2 and APIv3 share it). `bill_type`: ALL, SUCCESS, REFUND.
pub fn wechat_trade_bill(rows: &[BillEntry], bill_type: &str) -> String {
    let selected: Vec<&BillEntry> = rows
        .iter()
        .filter(|r| match bill_type {
            "SUCCESS" => r.refund.is_none(),
            "REFUND" => r.refund.is_some(),
            _ => true,
        })
        .collect();
    let (mut settle, mut refunded, mut order) = (0i64, 0i64, 0i64);
    let records: Vec<Vec<String>> = selected
        .iter()
        .map(|r| {
            let (refund_id, out_refund_no) =
                r.refund.clone().unwrap_or_else(|| ("0".into(), "0".into()));
            let is_refund = r.refund.is_some();
            let pay = if is_refund { Fen(0) } else { r.amount };
            let refund = if is_refund { Fen(-r.amount.0) } else { Fen(0) };
            settle += pay.0;
            order += pay.0;
            refunded += refund.0;
            vec![
                alipay_time(r.at),
                r.app_id.clone(),
                r.account.clone(),
                "0".into(),
                String::new(),
                r.trade_no.clone(),
                r.out_trade_no.clone(),
                r.buyer.clone(),
                r.scene.clone(),
                r.status.clone(),
                "OTHERS".into(),
                "CNY".into(),
                pay.to_yuan(),
                "0.00".into(),
                refund_id,
                out_refund_no,
                refund.to_yuan(),
                "0.00".into(),
                if is_refund {
                    "ORIGINAL".into()
                } else {
                    String::new()
                },
                if is_refund {
                    "SUCCESS".into()
                } else {
                    String::new()
                },
                r.subject.clone(),
                r.attach.clone(),
                "0.00000".into(),
                "0.60%".into(),
                pay.to_yuan(),
                refund.to_yuan(),
                String::new(),
            ]
        })
        .collect();
    let summary = vec![
        selected.len().to_string(),
        Fen(settle).to_yuan(),
        Fen(refunded).to_yuan(),
        "0.00".into(),
        "0.00".into(),
        Fen(order).to_yuan(),
        Fen(refunded).to_yuan(),
    ];
    write_bill(WECHAT_COLUMNS, &records, WECHAT_SUMMARY, &summary)
}

/// APIv3 fund-flow bill: one income row per payment, one expense row per refund and per
/// payout (商家转账).
pub fn wechat_fundflow_bill(rows: &[BillEntry]) -> String {
    let mut balance = 0i64;
    let (mut inc_n, mut inc, mut exp_n, mut exp) = (0u64, 0i64, 0u64, 0i64);
    let records: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            balance += r.amount.0;
            let income = r.amount.0 >= 0;
            if income {
                inc_n += 1;
                inc += r.amount.0;
            } else {
                exp_n += 1;
                exp -= r.amount.0;
            }
            let (name, kind) = match (r.status.as_str(), income) {
                (PAYOUT_STATUS, _) => ("商家转账", "转账"),
                (_, true) => ("交易", "交易"),
                (_, false) => ("退款", "退款"),
            };
            vec![
                alipay_time(r.at),
                r.trade_no.clone(),
                format!("{}{}", r.trade_no, if income { "01" } else { "02" }),
                name.to_string(),
                kind.to_string(),
                if income { "收入" } else { "支出" }.to_string(),
                Fen(r.amount.0.abs()).to_yuan(),
                Fen(balance).to_yuan(),
                "system".into(),
                String::new(),
                r.refund
                    .as_ref()
                    .map(|x| x.1.clone())
                    .unwrap_or_else(|| r.out_trade_no.clone()),
            ]
        })
        .collect();
    write_bill(
        &[
            "记账时间",
            "微信支付业务单号",
            "资金流水单号",
            "业务名称",
            "业务类型",
            "收支类型",
            "收支金额(元)",
            "账户结余(元)",
            "资金变更提交申请人",
            "备注",
            "业务凭证号",
        ],
        &records,
        &[
            "资金流水总笔数",
            "收入笔数",
            "收入金额",
            "支出笔数",
            "支出金额",
        ],
        &[
            rows.len().to_string(),
            inc_n.to_string(),
            Fen(inc).to_yuan(),
            exp_n.to_string(),
            Fen(exp).to_yuan(),
        ],
    )
}

fn gzip(data: &[u8]) -> Result<Vec<u8>, String> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(data).map_err(|e| e.to_string())?;
    enc.finish().map_err(|e| e.to_string())
}

/// `alipay.data.dataservice.bill.downloadurl.query`.
pub(crate) fn alipay_download_url(
    ctx: &crate::alipay::Ctx<'_>,
) -> Result<crate::alipay::Answer, crate::alipay::Answer> {
    use crate::alipay::{invalid, ok};
    let bill_type = ctx.biz("bill_type").unwrap_or_default();
    if bill_type != "trade" && bill_type != "signcustomer" {
        return Err(invalid(
            "isv.invalid-parameter",
            "bill_type 只能是 trade 或 signcustomer",
        ));
    }
    let date = ctx.biz("bill_date").unwrap_or_default();
    let mut st = ctx.inner.lock();
    let rows = entries(
        &st.ledger,
        Family::Alipay,
        &ctx.app.app_id,
        &date,
        &st.discrepancies,
    )
    .ok_or_else(|| invalid("isv.invalid-parameter", "bill_date 格式应为 yyyy-MM-dd"))?;
    let zip = alipay_bill_zip(&ctx.app.app_id, &date, &rows)
        .map_err(|e| invalid("isv.system-error", &e))?;
    let token = random_string(24);
    st.bill_files.insert(
        token.clone(),
        BillFile {
            bytes: zip,
            content_type: "application/zip",
            // Alipay's links stay valid for about 30 seconds.
            expires_at: ctx.now + 30_000,
            mchid: None,
        },
    );
    Ok(ok(vec![(
        "bill_download_url",
        format!(
            "{}/_sandbox/download/{token}?downloadFileName={}_{}.csv.zip",
            ctx.inner.base_url,
            ctx.app.app_id,
            date.replace('-', "")
        )
        .into(),
    )]))
}

/// `/pay/downloadbill`: the text table, gzip on `tar_type=GZIP`, XML on failure.
pub(crate) fn wechat_v2_download(r: &crate::wechat_v2::Req<'_>) -> Response {
    let fail = |msg: &str| {
        crate::wechat_v2::xml_response(write_xml([("return_code", "FAIL"), ("return_msg", msg)]))
    };
    let Some(raw_date) = r.get("bill_date").filter(|d| d.len() == 8) else {
        return fail("invalid bill_date");
    };
    let date = format!(
        "{}-{}-{}",
        raw_date.get(0..4).unwrap_or(""),
        raw_date.get(4..6).unwrap_or(""),
        raw_date.get(6..8).unwrap_or("")
    );
    let bill_type = r.get("bill_type").unwrap_or_else(|| "ALL".into());
    if !matches!(bill_type.as_str(), "ALL" | "SUCCESS" | "REFUND") {
        return fail("invalid bill_type");
    }
    let st = r.inner.lock();
    let Some(rows) = entries(
        &st.ledger,
        Family::Wechat,
        &r.merchant.mchid,
        &date,
        &st.discrepancies,
    ) else {
        return fail("invalid bill_date");
    };
    if rows.is_empty() {
        return fail("No Bill Exist");
    }
    let text = wechat_trade_bill(&rows, &bill_type);
    if r.get("tar_type").as_deref() == Some("GZIP") {
        match gzip(text.as_bytes()) {
            Ok(bytes) => (
                StatusCode::OK,
                [("content-type", "application/x-gzip")],
                bytes,
            )
                .into_response(),
            Err(e) => fail(&e),
        }
    } else {
        (
            StatusCode::OK,
            [("content-type", "text/plain; charset=utf-8")],
            text,
        )
            .into_response()
    }
}

/// `GET /v3/bill/tradebill` and `/v3/bill/fundflowbill`.
pub(crate) fn wechat_v3_bill(r: &crate::wechat_v3::Req<'_>, kind: &str) -> crate::wechat_v3::Reply {
    use crate::wechat_v3::{err, ok_json};
    let Some(date) = r.q("bill_date") else {
        return err(400, "PARAM_ERROR", "缺少参数 bill_date");
    };
    let account = match r.account(r.q("sub_mchid")) {
        Ok(a) => a,
        Err(reply) => return reply,
    };
    let mut st = r.inner.lock();
    let Some(mut rows) = entries(
        &st.ledger,
        Family::Wechat,
        &account,
        &date,
        &st.discrepancies,
    ) else {
        return err(400, "PARAM_ERROR", "bill_date 格式应为 yyyy-MM-dd");
    };
    if kind == "fundflowbill" {
        rows.extend(
            payout_entries(&st.payouts, Family::Wechat, &account, &date).unwrap_or_default(),
        );
        rows.sort_by_key(|r| r.at);
    }
    if rows.is_empty() {
        return err(400, "NO_STATEMENT_EXIST", "账单文件不存在");
    }
    let text = if kind == "fundflowbill" {
        wechat_fundflow_bill(&rows)
    } else {
        let bill_type = r.q("bill_type").unwrap_or_else(|| "ALL".into());
        wechat_trade_bill(&rows, &bill_type)
    };
    let hash = sha1_hex(text.as_bytes());
    let gz = r.q("tar_type").as_deref() == Some("GZIP");
    let bytes = if gz {
        match gzip(text.as_bytes()) {
            Ok(b) => b,
            Err(e) => return err(500, "SYSTEM_ERROR", &e),
        }
    } else {
        text.into_bytes()
    };
    let token = random_string(24);
    st.bill_files.insert(
        token.clone(),
        BillFile {
            bytes,
            content_type: if gz {
                "application/x-gzip"
            } else {
                "text/plain; charset=utf-8"
            },
            expires_at: r.now + 5 * 60_000,
            mchid: Some(r.merchant.mchid.clone()),
        },
    );
    ok_json(json!({
        "hash_type": "SHA1",
        "hash_value": hash,
        "download_url": format!("{}/v3/billdownload/file?token={token}", r.inner.base_url),
    }))
}

/// The signed GET of a v3 download URL; the file itself is served unsigned.
pub(crate) fn wechat_v3_download(r: &crate::wechat_v3::Req<'_>) -> crate::wechat_v3::Reply {
    use crate::wechat_v3::{err, Reply};
    let token = r.q("token").unwrap_or_default();
    let st = r.inner.lock();
    match st.bill_files.get(&token) {
        Some(f)
            if f.mchid.as_deref() == Some(r.merchant.mchid.as_str()) && f.expires_at > r.now =>
        {
            Reply {
                status: StatusCode::OK,
                body: String::new(),
                signed: false,
                content_type: f.content_type,
                raw: Some(f.bytes.clone()),
                delay_ms: 0,
            }
        }
        _ => err(404, "RESOURCE_NOT_EXISTS", "账单链接已失效"),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use crate::ledger::{NewTrade, Provider};
    use paybridge_wechatpay::bill::{BillReader, TradeBillRecord};

    fn ledger() -> (Ledger, Millis) {
        let mut l = Ledger::new();
        let day = beijing_day_bounds("2026-11-25").unwrap().0;
        for (no, fen) in [("a1", 1000), ("a2", 250)] {
            let (id, _) = l
                .create(
                    NewTrade {
                        provider: Provider::WechatV3,
                        account: "m".into(),
                        app_id: "wx".into(),
                        out_trade_no: no.into(),
                        amount: Fen(fen),
                        subject: "s".into(),
                        scene: "NATIVE".into(),
                        notify_url: None,
                        return_url: None,
                        expires_at: None,
                        payer_id: None,
                        attach: None,
                        hidden_until_scanned: false,
                        sp_mchid: None,
                        sub_appid: None,
                        sign_type: None,
                    },
                    day + 1000,
                )
                .unwrap();
            l.pay(&id, None, day + 2000).unwrap();
        }
        let id = l
            .find(Family::Wechat, "m", Some("a1"), None)
            .unwrap()
            .id
            .clone();
        l.refund(&id, "r1", Fen(300), None, None, day + 3000)
            .unwrap();
        l.tick(day + 4000);
        (l, day)
    }

    #[test]
    fn wechat_bill_parses_back_with_the_protocol_reader() {
        let (l, _) = ledger();
        let rows = entries(&l, Family::Wechat, "m", "2026-11-25", &[]).unwrap();
        assert_eq!(rows.len(), 3);
        let text = wechat_trade_bill(&rows, "ALL");
        let mut reader = BillReader::new(text.as_bytes()).unwrap();
        let mut recs = Vec::new();
        for row in reader.by_ref() {
            recs.push(TradeBillRecord::from_row(&row.unwrap()).unwrap());
        }
        assert_eq!(recs.len(), 3);
        assert_eq!(recs[0].order_total, Some(Fen(1000)));
        assert_eq!(recs[2].refund_fee, Some(Fen(300)));
        assert!(reader.summary().is_some());
    }

    #[test]
    fn discrepancies_change_the_bill() {
        let (l, _) = ledger();
        let ds = vec![
            Discrepancy {
                account: "m".into(),
                kind: DiscrepancyKind::MissingTrade {
                    out_trade_no: "a2".into(),
                },
            },
            Discrepancy {
                account: "m".into(),
                kind: DiscrepancyKind::ExtraTrade {
                    out_trade_no: "ghost".into(),
                    amount: Fen(77),
                    date: "2026-11-25".into(),
                },
            },
            Discrepancy {
                account: "m".into(),
                kind: DiscrepancyKind::AmountMismatch {
                    out_trade_no: "a1".into(),
                    delta: Fen(1),
                },
            },
            Discrepancy {
                account: "m".into(),
                kind: DiscrepancyKind::StatusMismatch {
                    out_trade_no: "ghost".into(),
                    status: "CLOSED".into(),
                },
            },
        ];
        let rows = entries(&l, Family::Wechat, "m", "2026-11-25", &ds).unwrap();
        assert!(rows.iter().all(|r| r.out_trade_no != "a2"));
        let a1 = rows
            .iter()
            .find(|r| r.out_trade_no == "a1" && r.refund.is_none())
            .unwrap();
        assert_eq!(a1.amount, Fen(1001));
        let ghost = rows.iter().find(|r| r.out_trade_no == "ghost").unwrap();
        assert_eq!((ghost.amount, ghost.status.as_str()), (Fen(77), "CLOSED"));
        assert!(entries(&l, Family::Wechat, "m", "2026-11-26", &ds)
            .unwrap()
            .is_empty());
    }

    #[test]
    fn alipay_zip_reads_back_with_the_protocol_reader() {
        let (l, _) = ledger();
        let rows = entries(&l, Family::Wechat, "m", "2026-11-25", &[]).unwrap();
        let zip = alipay_bill_zip("2088", "2026-11-25", &rows).unwrap();
        let mut archive = paybridge_alipay::bill::BillArchive::new(zip).unwrap();
        let recs: Vec<_> = archive.detail().unwrap().map(|r| r.unwrap()).collect();
        assert_eq!(recs.len(), 3);
        assert_eq!(recs[2].kind, BillKind::Refund);
        assert_eq!(recs[2].order_amount, Fen(-300));
    }
}
