//! `paybridge bench notify`: one signed "paid" notification per pending payment (plus
//! duplicates), in the provider's own wire form, timed until the gateway's acknowledgement.

use paybridge_alipay::notify::NotifyRule;
use paybridge_alipay::provider::{encode_form, sign_notify};
use paybridge_alipay::time_fmt::format_beijing;
use paybridge_core::Fen;
use paybridge_crypto::RsaPrivateKey;
use paybridge_sandbox::clock::{rfc3339_beijing, wechat_v2_time};
use paybridge_sandbox::{Clock as _, SystemClock};
use paybridge_wechatpay::v2::notify::REPLY_SUCCESS;
use paybridge_wechatpay::v2::provider::signed_xml;
use paybridge_wechatpay::v2::SignType;
use paybridge_wechatpay::v3::provider::{notify_body, sign_response};
use serde_json::json;

use super::{create_pending, fire, http_client, print, Protocol, Shot, Target, TargetArgs};

#[derive(clap::Args)]
pub struct NotifyArgs {
    /// How many payments (each gets one notification, plus `--duplicates` copies).
    #[arg(long, default_value_t = 2000)]
    count: usize,
    /// Notifications in flight at once.
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
    /// Extra copies of every notification (0 = each payment notified once).
    #[arg(long, default_value_t = 0)]
    duplicates: usize,
    /// The provider protocol: Alipay (RSA2 form), WeChat Pay APIv2 (MD5-signed XML) or APIv3
    /// (RSA-signed headers, AES-256-GCM resource).
    #[arg(long, value_enum, default_value_t = Protocol::Alipay)]
    protocol: Protocol,
    #[command(flatten)]
    target: TargetArgs,
}

const AMOUNT: i64 = 100;

pub async fn run(args: NotifyArgs) -> Result<(), String> {
    let concurrency = args.concurrency.max(1);
    let target = Target::new(&args.target, concurrency, Default::default()).await?;
    let client = http_client(concurrency)?;
    eprintln!(
        "creating {} pending payments at {} ...",
        args.count, target.base
    );
    let orders = create_pending(
        &client,
        &target,
        args.protocol,
        args.count,
        AMOUNT,
        concurrency,
    )
    .await?;
    // Signing (and encrypting) is the provider's cost, not the gateway's: before the clock.
    let mut shots = Vec::with_capacity(orders.len() * (1 + args.duplicates));
    for (i, no) in orders.iter().enumerate() {
        let shot = paid_notification(&target, args.protocol, no, i)?;
        for _ in 0..=args.duplicates {
            shots.push(shot.clone());
        }
    }
    eprintln!(
        "firing {} {:?} notifications, {} in flight ...",
        shots.len(),
        args.protocol,
        concurrency
    );
    let ok = match args.protocol {
        Protocol::Alipay => alipay_success,
        Protocol::WechatV2 => wechat_v2_success,
        Protocol::WechatV3 => wechat_v3_success,
    };
    let (timings, bad) = fire(&client, shots, concurrency, ok).await?;
    print(&timings.report(json!({
        "bench": "notify",
        "protocol": format!("{:?}", args.protocol),
        "target": target.label,
        "payments": orders.len(),
        "concurrency": concurrency,
        "not_acknowledged": bad,
    })));
    if bad > 0 {
        return Err(format!("{bad} notifications were not acknowledged"));
    }
    Ok(())
}

fn alipay_success(_status: u16, body: &[u8]) -> bool {
    body == b"success"
}

fn wechat_v2_success(status: u16, body: &[u8]) -> bool {
    status == 200 && body == REPLY_SUCCESS.as_bytes()
}

fn wechat_v3_success(status: u16, _body: &[u8]) -> bool {
    (200..300).contains(&status)
}

/// The provider's "paid" notification for order `no` (the `i`-th of the run), signed as the
/// provider signs it.
pub(super) fn paid_notification(
    target: &Target,
    protocol: Protocol,
    no: &str,
    i: usize,
) -> Result<Shot, String> {
    let now_ms = SystemClock.now_ms();
    let run_id = now_ms;
    let trade_no = format!("4200{run_id}{i:07}");
    let (account, _, _) = protocol.account();
    let merchant = || {
        target
            .sandbox
            .wechat
            .merchants
            .first()
            .ok_or("no WeChat merchant in the sandbox config")
    };
    match protocol {
        Protocol::Alipay => {
            let app_id = target
                .sandbox
                .alipay
                .apps
                .first()
                .map(|a| a.app_id.clone())
                .ok_or("no Alipay app in the sandbox config")?;
            let key = RsaPrivateKey::from_text(&target.sandbox.alipay.private_key)
                .map_err(|e| e.to_string())?;
            let now = now_ms / 1000;
            let fields: Vec<(String, String)> = [
                ("gmt_create", format_beijing(now)),
                ("charset", "utf-8".to_string()),
                ("gmt_payment", format_beijing(now)),
                ("notify_time", format_beijing(now)),
                ("subject", "bench".to_string()),
                ("sign_type", "RSA2".to_string()),
                ("buyer_id", "2088000000000001".to_string()),
                ("version", "1.0".to_string()),
                ("notify_id", format!("bench{run_id}{i:07}")),
                ("notify_type", "trade_status_sync".to_string()),
                ("out_trade_no", no.to_string()),
                ("total_amount", Fen(AMOUNT).to_yuan()),
                ("receipt_amount", Fen(AMOUNT).to_yuan()),
                ("buyer_pay_amount", Fen(AMOUNT).to_yuan()),
                ("trade_status", "TRADE_SUCCESS".to_string()),
                ("trade_no", trade_no),
                ("auth_app_id", app_id.clone()),
                ("app_id", app_id),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect();
            let signed = sign_notify(fields, NotifyRule::V1, &key).map_err(|e| e.to_string())?;
            Ok(Shot {
                url: format!("{}/notify/alipay/{account}", target.base),
                headers: vec![(
                    "content-type".into(),
                    "application/x-www-form-urlencoded; charset=utf-8".into(),
                )],
                body: encode_form(&signed, "utf-8").map_err(|e| e.to_string())?,
            })
        }
        Protocol::WechatV2 => {
            let m = merchant()?;
            let amount = AMOUNT.to_string();
            let nonce = format!("n{run_id}{i:07}");
            let time_end = wechat_v2_time(now_ms);
            let fields = [
                ("appid", m.appid.as_str()),
                ("mch_id", m.mchid.as_str()),
                ("nonce_str", nonce.as_str()),
                ("return_code", "SUCCESS"),
                ("result_code", "SUCCESS"),
                ("out_trade_no", no),
                ("total_fee", amount.as_str()),
                ("fee_type", "CNY"),
                ("trade_type", "NATIVE"),
                ("transaction_id", trade_no.as_str()),
                ("openid", "oBench000000000000000000000"),
                ("is_subscribe", "N"),
                ("bank_type", "OTHERS"),
                ("cash_fee", amount.as_str()),
                ("time_end", time_end.as_str()),
            ];
            Ok(Shot {
                url: format!("{}/notify/wechat/v2/{account}/pay", target.base),
                headers: vec![("content-type".into(), "text/xml; charset=utf-8".into())],
                body: signed_xml(&fields, &m.api_v2_key, SignType::Md5).into_bytes(),
            })
        }
        Protocol::WechatV3 => {
            let m = merchant()?;
            let transaction = json!({
                "appid": m.appid, "mchid": m.mchid, "out_trade_no": no,
                "transaction_id": trade_no, "trade_type": "NATIVE", "trade_state": "SUCCESS",
                "trade_state_desc": "支付成功", "bank_type": "OTHERS",
                "success_time": rfc3339_beijing(now_ms),
                "payer": {"openid": "oBench000000000000000000000"},
                "amount": {"total": AMOUNT, "payer_total": AMOUNT, "currency": "CNY",
                           "payer_currency": "CNY"},
            });
            let nonce = format!("{:012}", i % 1_000_000_000_000);
            let body = notify_body(
                m.api_v3_key.as_bytes(),
                &format!("EV-bench-{run_id}-{i}"),
                &rfc3339_beijing(now_ms),
                "TRANSACTION.SUCCESS",
                "支付成功",
                "transaction",
                &nonce,
                &transaction.to_string(),
            )
            .map_err(|e| e.to_string())?;
            let mut headers = sign_response(
                &target.keys.wechat_key,
                &target.keys.wechat_serial,
                now_ms / 1000,
                &format!("bench{run_id}{i:07}"),
                body.as_bytes(),
            )
            .map_err(|e| e.to_string())?;
            headers.push(("content-type".into(), "application/json".into()));
            Ok(Shot {
                url: format!("{}/notify/wechat/v3/{account}", target.base),
                headers,
                body: body.into_bytes(),
            })
        }
    }
}
