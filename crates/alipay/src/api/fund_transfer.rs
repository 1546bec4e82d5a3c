//! `alipay.fund.trans.uni.transfer` (单笔转账): pay out from the merchant's balance to an Alipay
//! account (`TRANS_ACCOUNT_NO_PWD` + `DIRECT_TRANSFER`). Certificate mode only. The same
//! `out_biz_no` with the same parameters answers with the earlier result instead of paying
//! twice; after an unknown outcome resend exactly the same request, never a new number.

use paybridge_core::money::MAX_TRADE_FEN;
use paybridge_core::{CreatePayout, Fen, PayoutPayee, PayoutSnapshot};
use paybridge_crypto::Secret;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::AlipayApi;
use crate::AlipayError;

pub const METHOD: &str = "alipay.fund.trans.uni.transfer";
/// 单笔无密转账到支付宝账户.
pub const PRODUCT_TRANS_ACCOUNT_NO_PWD: &str = "TRANS_ACCOUNT_NO_PWD";
pub const BIZ_SCENE_DIRECT_TRANSFER: &str = "DIRECT_TRANSFER";
/// `TRANS_ACCOUNT_NO_PWD` accepts 0.1 ..= 100,000,000 yuan.
pub const MIN_TRANSFER_FEN: i64 = 10;

/// Whom the money goes to (`payee_info.identity_type` + `identity`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PayeeIdentity {
    /// `ALIPAY_USER_ID`: the `2088…` user id.
    UserId(String),
    /// `ALIPAY_LOGON_ID`: e-mail or mobile; Alipay requires the real name with it.
    LogonId(String),
    /// `ALIPAY_OPEN_ID`: the per-app open id.
    OpenId(String),
}

impl PayeeIdentity {
    pub fn identity_type(&self) -> &'static str {
        match self {
            PayeeIdentity::UserId(_) => "ALIPAY_USER_ID",
            PayeeIdentity::LogonId(_) => "ALIPAY_LOGON_ID",
            PayeeIdentity::OpenId(_) => "ALIPAY_OPEN_ID",
        }
    }

    pub fn identity(&self) -> &str {
        match self {
            PayeeIdentity::UserId(i) | PayeeIdentity::LogonId(i) | PayeeIdentity::OpenId(i) => i,
        }
    }
}

/// `payee_info`. When `name` is given Alipay checks it against the account
/// (`PAYEE_USER_INFO_ERROR` when it does not match).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Payee {
    pub identity: PayeeIdentity,
    /// Personal data: redacted from `Debug`.
    pub name: Option<Secret<String>>,
}

impl Payee {
    pub fn user_id(id: impl Into<String>) -> Self {
        Payee {
            identity: PayeeIdentity::UserId(id.into()),
            name: None,
        }
    }

    /// A logon id always travels with the name Alipay checks it against.
    pub fn logon_id(id: impl Into<String>, name: impl Into<String>) -> Self {
        Payee {
            identity: PayeeIdentity::LogonId(id.into()),
            name: Some(Secret::new(name.into())),
        }
    }

    pub fn open_id(id: impl Into<String>) -> Self {
        Payee {
            identity: PayeeIdentity::OpenId(id.into()),
            name: None,
        }
    }

    /// Adds the name check to a user id or open id payee.
    pub fn with_name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(Secret::new(name.into()));
        self
    }

    fn to_json(&self) -> Value {
        let mut m = Map::new();
        m.insert("identity".into(), self.identity.identity().into());
        m.insert("identity_type".into(), self.identity.identity_type().into());
        if let Some(n) = self.name.as_ref().filter(|n| !n.expose().is_empty()) {
            m.insert("name".into(), n.expose().clone().into());
        }
        Value::Object(m)
    }
}

/// `{info_type, info_content}` of `transfer_scene_report_infos` (fixed `info_type` per scene).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TransferSceneReportInfo {
    pub info_type: String,
    pub info_content: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FundTransUniTransfer {
    /// The payout's own id; half-width letters, digits, `-` and `_`.
    pub out_biz_no: String,
    pub trans_amount: Fen,
    pub payee: Payee,
    /// Shown in the payee's Alipay bill.
    pub order_title: Option<String>,
    /// Required by Alipay from 50,000 yuan.
    pub remark: Option<String>,
    /// JSON text, passed through.
    pub business_params: Option<String>,
    /// Echoed in the notification; URL-encode it (a raw `&` would make the notification
    /// unverifiable, so it is refused).
    pub passback_params: Option<String>,
    /// 现金营销, 佣金报酬, … (newer field).
    pub transfer_scene_name: Option<String>,
    pub transfer_scene_report_infos: Vec<TransferSceneReportInfo>,
}

impl FundTransUniTransfer {
    pub fn new(out_biz_no: impl Into<String>, trans_amount: Fen, payee: Payee) -> Self {
        FundTransUniTransfer {
            out_biz_no: out_biz_no.into(),
            trans_amount,
            payee,
            order_title: None,
            remark: None,
            business_params: None,
            passback_params: None,
            transfer_scene_name: None,
            transfer_scene_report_infos: Vec::new(),
        }
    }

    /// The provider-neutral payout as a uni.transfer (validated when it is signed).
    pub fn from_payout(p: &CreatePayout) -> Result<Self, AlipayError> {
        let identity = match &p.payee {
            PayoutPayee::AlipayUserId { user_id } => PayeeIdentity::UserId(user_id.clone()),
            PayoutPayee::AlipayLogonId { logon_id } => PayeeIdentity::LogonId(logon_id.clone()),
            PayoutPayee::AlipayOpenId { open_id } => PayeeIdentity::OpenId(open_id.clone()),
            PayoutPayee::WechatOpenId { .. } => {
                return Err(AlipayError::InvalidRequest(
                    "an Alipay transfer goes to an Alipay account, not a WeChat openid".into(),
                ))
            }
        };
        let mut t = FundTransUniTransfer::new(
            p.out_no.clone(),
            p.amount,
            Payee {
                identity,
                name: p.payee_name.clone().map(Secret::new),
            },
        );
        t.order_title = p.title.clone();
        t.remark = Some(p.remark.clone()).filter(|r| !r.is_empty());
        t.transfer_scene_name = p.scene.clone();
        t.transfer_scene_report_infos = p
            .scene_report
            .iter()
            .map(|r| TransferSceneReportInfo {
                info_type: r.info_type.clone(),
                info_content: r.info_content.clone(),
            })
            .collect();
        Ok(t)
    }

    /// The rules that can be checked before sending.
    pub fn validate(&self) -> Result<(), AlipayError> {
        let bad = |m: String| Err(AlipayError::InvalidRequest(m));
        let no = &self.out_biz_no;
        if no.is_empty()
            || no.len() > 64
            || !no
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return bad(format!(
                "out_biz_no {no:?} must be 1..=64 letters, digits, '-' or '_'"
            ));
        }
        let fen = self.trans_amount.as_i64();
        if !(MIN_TRANSFER_FEN..=MAX_TRADE_FEN).contains(&fen) {
            return bad(format!(
                "trans_amount {} is outside 0.10..=100000000.00 yuan",
                self.trans_amount
            ));
        }
        if self.payee.identity.identity().is_empty() {
            return bad("payee identity is empty".into());
        }
        let named = self
            .payee
            .name
            .as_ref()
            .is_some_and(|n| !n.expose().is_empty());
        if matches!(self.payee.identity, PayeeIdentity::LogonId(_)) && !named {
            return bad("an ALIPAY_LOGON_ID payee needs the payee's name".into());
        }
        for (field, v) in [
            ("order_title", &self.order_title),
            ("remark", &self.remark),
            ("passback_params", &self.passback_params),
        ] {
            if v.as_deref().is_some_and(|v| v.contains('&')) {
                return bad(format!(
                    "{field} must not contain '&' (URL-encode it): the notification's signed \
                     string could not be verified"
                ));
            }
        }
        Ok(())
    }
}

impl AlipayApi for FundTransUniTransfer {
    type Response = FundTransUniTransferResponse;

    fn method(&self) -> &str {
        METHOD
    }

    fn biz_content(&self) -> Result<String, AlipayError> {
        self.validate()?;
        let mut m = Map::new();
        m.insert("out_biz_no".into(), self.out_biz_no.clone().into());
        m.insert("trans_amount".into(), self.trans_amount.to_yuan().into());
        m.insert("product_code".into(), PRODUCT_TRANS_ACCOUNT_NO_PWD.into());
        m.insert("biz_scene".into(), BIZ_SCENE_DIRECT_TRANSFER.into());
        // Absent options are left out, never sent empty.
        let opt = |m: &mut Map<String, Value>, k: &str, v: &Option<String>| {
            if let Some(v) = v.as_ref().filter(|v| !v.is_empty()) {
                m.insert(k.into(), v.clone().into());
            }
        };
        opt(&mut m, "order_title", &self.order_title);
        m.insert("payee_info".into(), self.payee.to_json());
        opt(&mut m, "remark", &self.remark);
        opt(&mut m, "business_params", &self.business_params);
        opt(&mut m, "passback_params", &self.passback_params);
        opt(&mut m, "transfer_scene_name", &self.transfer_scene_name);
        if !self.transfer_scene_report_infos.is_empty() {
            m.insert(
                "transfer_scene_report_infos".into(),
                serde_json::to_value(&self.transfer_scene_report_infos)
                    .map_err(|e| AlipayError::InvalidRequest(e.to_string()))?,
            );
        }
        super::to_biz_content(&Value::Object(m))
    }

    /// The same `out_biz_no` and parameters answer idempotently.
    fn idempotent(&self) -> bool {
        true
    }

    fn requires_cert_mode(&self) -> bool {
        true
    }
}

/// A transfer's `status` (uni.transfer, common.query and the order-changed message). The
/// query's enum is the widest; INIT and UNKNOWN come from the legacy order query.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum FundTransStatus {
    Success,
    Fail,
    /// Processing (bank-card transfers).
    Dealing,
    /// 退票: a bank-card transfer that succeeded came back.
    Refund,
    WaitPay,
    Closed,
    Init,
    Unknown,
}

impl FundTransStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            FundTransStatus::Success => "SUCCESS",
            FundTransStatus::Fail => "FAIL",
            FundTransStatus::Dealing => "DEALING",
            FundTransStatus::Refund => "REFUND",
            FundTransStatus::WaitPay => "WAIT_PAY",
            FundTransStatus::Closed => "CLOSED",
            FundTransStatus::Init => "INIT",
            FundTransStatus::Unknown => "UNKNOWN",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct FundTransUniTransferResponse {
    pub out_biz_no: String,
    /// 支付宝转账订单号.
    #[serde(default)]
    pub order_id: Option<String>,
    /// 支付资金流水号.
    #[serde(default)]
    pub pay_fund_order_id: Option<String>,
    pub status: FundTransStatus,
    /// `yyyy-MM-dd HH:mm:ss`, Beijing.
    #[serde(default)]
    pub trans_date: Option<String>,
    #[serde(default)]
    pub settle_serial_no: Option<String>,
}

impl FundTransUniTransferResponse {
    pub fn snapshot(&self, amount: Fen) -> PayoutSnapshot {
        PayoutSnapshot {
            out_no: self.out_biz_no.clone(),
            provider_no: self.order_id.clone(),
            status: crate::convert::payout_status(self.status),
            provider_status: self.status.as_str().to_string(),
            amount: Some(amount),
            fail_reason: None,
            package_info: None,
            updated_at: self.trans_date.clone(),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::api::testutil::{answer, sub_code, test_config, NOW};
    use crate::request::CallOptions;
    use crate::sign::{verify_params, REQUEST_EXCLUDED};
    use paybridge_core::ProviderPayoutStatus;

    fn transfer() -> FundTransUniTransfer {
        let mut t = FundTransUniTransfer::new(
            "201806300001",
            Fen(2300),
            Payee::logon_id("payee@example.com", "王五"),
        );
        t.order_title = Some("佣金".into());
        t.remark = Some("十一月佣金".into());
        t
    }

    #[test]
    fn biz_content_is_the_documented_shape() {
        assert_eq!(
            transfer().biz_content().unwrap(),
            r#"{"out_biz_no":"201806300001","trans_amount":"23.00","product_code":"TRANS_ACCOUNT_NO_PWD","biz_scene":"DIRECT_TRANSFER","order_title":"佣金","payee_info":{"identity":"payee@example.com","identity_type":"ALIPAY_LOGON_ID","name":"王五"},"remark":"十一月佣金"}"#
        );
        let mut t = FundTransUniTransfer::new("P-1_a", Fen(10), Payee::user_id("2088123412341234"));
        t.transfer_scene_name = Some("佣金报酬".into());
        t.transfer_scene_report_infos = vec![TransferSceneReportInfo {
            info_type: "佣金报酬说明".into(),
            info_content: "推广佣金".into(),
        }];
        assert_eq!(
            t.biz_content().unwrap(),
            r#"{"out_biz_no":"P-1_a","trans_amount":"0.10","product_code":"TRANS_ACCOUNT_NO_PWD","biz_scene":"DIRECT_TRANSFER","payee_info":{"identity":"2088123412341234","identity_type":"ALIPAY_USER_ID"},"transfer_scene_name":"佣金报酬","transfer_scene_report_infos":[{"info_type":"佣金报酬说明","info_content":"推广佣金"}]}"#
        );
        let t = FundTransUniTransfer::new(
            "o1",
            Fen(100),
            Payee::open_id("074a1CcTG1LelxKe4xQC0zgNdId0nxi95b5lsNpazWYoCo5").with_name("赵六"),
        );
        assert!(t
            .biz_content()
            .unwrap()
            .contains(r#""identity_type":"ALIPAY_OPEN_ID","name":"赵六"}"#));
        assert!(
            !format!("{t:?}").contains("赵六"),
            "names never reach Debug"
        );
    }

    #[test]
    fn local_rules() {
        let refused = |t: FundTransUniTransfer| {
            matches!(t.biz_content(), Err(AlipayError::InvalidRequest(_)))
        };
        assert!(refused(FundTransUniTransfer::new(
            "a1",
            Fen(9),
            Payee::user_id("2088")
        )));
        assert!(refused(FundTransUniTransfer::new(
            "a1",
            Fen(10_000_000_001),
            Payee::user_id("2088")
        )));
        assert!(refused(FundTransUniTransfer::new(
            "a 1",
            Fen(10),
            Payee::user_id("2088")
        )));
        assert!(refused(FundTransUniTransfer::new(
            "a1",
            Fen(10),
            Payee {
                identity: PayeeIdentity::LogonId("a@b.c".into()),
                name: None
            }
        )));
        let mut t = transfer();
        t.passback_params = Some("a=1&b=2".into());
        assert!(refused(t));
    }

    #[test]
    fn needs_certificate_mode() {
        let (config, _) = test_config();
        match crate::api::prepare(&config, &transfer(), &CallOptions::default(), NOW) {
            Err(AlipayError::CertModeRequired { method }) => assert_eq!(method, METHOD),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn golden_string_to_sign_in_cert_mode_and_responses() {
        let (config, alipay) = crate::api::testutil::cert_config();
        let signed = crate::api::prepare(
            &config,
            &transfer(),
            &CallOptions {
                notify_url: Some("https://m.example/alipay/payout".into()),
                ..CallOptions::default()
            },
            NOW,
        )
        .unwrap();
        let biz = transfer().biz_content().unwrap();
        let app_sn = config.keys.app_cert_sn.clone().unwrap();
        let root_sn = config.keys.alipay_root_cert_sn.clone().unwrap();
        assert_eq!(
            signed.string_to_sign,
            format!(
                "alipay_root_cert_sn={root_sn}&app_cert_sn={app_sn}&app_id=2021000000000002&biz_content={biz}&charset=utf-8&format=JSON&method=alipay.fund.trans.uni.transfer&notify_url=https://m.example/alipay/payout&sign_type=RSA2&timestamp=2026-11-26 20:00:00&version=1.0"
            )
        );
        assert!(signed.idempotent);
        let public = config.keys.app_key.public_key().unwrap();
        assert!(verify_params(
            signed.params.iter().map(|(k, v)| (k.as_str(), v.as_str())),
            REQUEST_EXCLUDED,
            &public
        ));
        let resp = answer(&config, &alipay, &transfer(), r#"{"code":"10000","msg":"Success","order_id":"20191115110070000006770064917564","out_biz_no":"201806300001","pay_fund_order_id":"20191115110070001506770064943911","status":"SUCCESS","trans_date":"2019-11-15 10:41:39"}"#).unwrap();
        assert_eq!(resp.status, FundTransStatus::Success);
        let s = resp.snapshot(Fen(2300));
        assert_eq!(
            (s.status, s.provider_no.as_deref()),
            (
                ProviderPayoutStatus::Succeeded,
                Some("20191115110070000006770064917564")
            )
        );
        let refused = answer(
            &config,
            &alipay,
            &transfer(),
            r#"{"code":"40004","msg":"Business Failed","sub_code":"PAYER_BALANCE_NOT_ENOUGH","sub_msg":"付款方余额不足"}"#,
        );
        assert_eq!(sub_code(refused), "PAYER_BALANCE_NOT_ENOUGH");
        let unknown = answer(
            &config,
            &alipay,
            &transfer(),
            r#"{"code":"10000","msg":"Success","out_biz_no":"201806300001","status":"LOST"}"#,
        );
        assert!(matches!(
            unknown,
            Err(AlipayError::MalformedResponse { .. })
        ));
    }
}
