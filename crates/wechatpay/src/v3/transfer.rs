//! 商家转账 (transfer bills, since 2025-01-15): pay money out to a WeChat user, who confirms
//! receipt on WeChat's page. Pure builders and parsers in the shape of [`super::api`]:
//! create, query by either number, cancel, the `MCHTRANSFER.BILL.FINISHED` notification, the
//! `package_info` hand-off to `wx.requestMerchantTransfer`, and the electronic receipt (电子回单).
//!
//! The rule that matters most: after a non-200 or unknown answer never change `out_bill_no`;
//! query it, and only a definite FAIL frees the payout for a new number.

use std::collections::BTreeMap;

use paybridge_core::{CreatePayout, Fen, PayoutPayee, PayoutSnapshot, ProviderPayoutStatus};
use paybridge_crypto::Secret;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{json, Map, Value};

use super::api::{ApiRequest, Merchant};
use super::error::V3Error;
use super::notify::{parse_notify, Notification, NotifyError};
use super::verify::{SignatureHeaders, Verifier, VerifierKey};
use crate::common::percent_encode as enc;
use crate::status::TransferBillState;

pub const TRANSFER_BILLS_PATH: &str = "/v3/fund-app/mch-transfer/transfer-bills";
pub const ELECSIGN_PATH: &str = "/v3/fund-app/mch-transfer/elecsign";
/// The notification's `event_type`; it is sent on the final states only.
pub const FINISHED_EVENT: &str = "MCHTRANSFER.BILL.FINISHED";
/// `resource.original_type` and `associated_data` of that notification.
pub const NOTIFY_ORIGINAL_TYPE: &str = "mch_payment";
/// "单笔转账额度最低为0.1元".
pub const MIN_TRANSFER_FEN: i64 = 10;
/// From 2,000 yuan the payee's real name must be sent.
pub const NAME_REQUIRED_FROM_FEN: i64 = 200_000;
/// Below 0.3 yuan the name cannot be sent.
pub const NAME_ALLOWED_FROM_FEN: i64 = 30;
/// `transfer_remark` is at most 32 characters.
pub const MAX_REMARK_CHARS: usize = 32;

/// The fixed `transfer_scene_id` → `info_type` pairings WeChat checks (固定搭配组合). A scene not
/// listed here is passed through with whatever the merchant reports.
pub const SCENE_REPORT_TYPES: &[(&str, &[&str])] = &[
    ("1000", &["活动名称", "奖励说明"]),
    ("1002", &["补贴类型"]),
    ("1004", &["保险产品备案编号", "保险名称", "保险操作单号"]),
    ("1005", &["岗位类型", "报酬说明"]),
    ("1009", &["采购商品名称"]),
    ("1010", &["回收商品名称"]),
    ("1011", &["赔付原因"]),
    ("1013", &["公益活动名称", "公益活动备案编号"]),
];

/// A request WeChat Pay would refuse, caught before anything is sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransferBillError {
    #[error("transfer-bills is a direct-merchant API; service providers use their own paths")]
    PartnerMode,
    #[error("out_bill_no {0:?} must be 1..=32 ASCII letters and digits")]
    OutBillNo(String),
    #[error("transfer_amount {0} fen is below the minimum of 10 fen (0.1 yuan)")]
    AmountTooSmall(i64),
    #[error("transfer_remark must be 1..=32 characters, got {0}")]
    Remark(usize),
    #[error("{0} field {1} is empty")]
    Empty(&'static str, &'static str),
    #[error("a transfer of {0} fen (2,000 yuan or more) needs the payee's user_name")]
    NameRequired(i64),
    #[error("a transfer of {0} fen (below 0.3 yuan) cannot carry user_name")]
    NameNotAllowed(i64),
    #[error("scene {scene} needs exactly the report types {expected:?}, got {got:?}")]
    SceneReport {
        scene: String,
        expected: Vec<String>,
        got: Vec<String>,
    },
    #[error("no WeChat Pay public key or platform certificate to encrypt user_name with")]
    NoEncryptionKey,
    #[error("encrypting user_name: {0}")]
    Encrypt(String),
    #[error("a WeChat Pay transfer goes to a WeChat openid, not {0}")]
    Payee(&'static str),
    #[error("a WeChat Pay transfer needs its transfer_scene_id")]
    NoScene,
    #[error("hash_type {0:?} of the receipt is not supported")]
    HashType(String),
    #[error("the receipt's {hash_type} does not match hash_value")]
    HashMismatch { hash_type: String },
}

/// One `{info_type, info_content}` of `transfer_scene_report_infos`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SceneReportInfo {
    pub info_type: String,
    pub info_content: String,
}

impl SceneReportInfo {
    pub fn new(info_type: impl Into<String>, info_content: impl Into<String>) -> Self {
        SceneReportInfo {
            info_type: info_type.into(),
            info_content: info_content.into(),
        }
    }
}

/// `user_recv_style.type`: how the payee collects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecvStyle {
    ConfirmPage,
    /// Some scenes only, at most 200 yuan.
    RedPacket,
}

impl RecvStyle {
    fn as_str(self) -> &'static str {
        match self {
            RecvStyle::ConfirmPage => "CONFIRM_PAGE",
            RecvStyle::RedPacket => "RED_PACKET",
        }
    }
}

/// `POST /v3/fund-app/mch-transfer/transfer-bills`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreateTransferBill {
    /// The app the payee's openid belongs to; the merchant's configured appid when `None`.
    pub appid: Option<String>,
    /// The payout's own id: the same number again answers with the existing bill.
    pub out_bill_no: String,
    pub transfer_scene_id: String,
    pub openid: String,
    /// The payee's real name, checked by WeChat; sent RSA-OAEP encrypted.
    pub user_name: Option<Secret<String>>,
    pub transfer_amount: Fen,
    /// Shown to the payee; at most 32 characters.
    pub transfer_remark: String,
    pub notify_url: Option<String>,
    /// The reason the payee sees; must be one allowed for the scene.
    pub user_recv_perception: Option<String>,
    pub transfer_scene_report_infos: Vec<SceneReportInfo>,
    pub user_recv_style: Option<RecvStyle>,
}

/// A request whose body may carry encrypted fields: `wechatpay_serial` names the key they were
/// encrypted with and goes out as the `Wechatpay-Serial` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SensitiveRequest {
    pub request: ApiRequest,
    pub wechatpay_serial: Option<String>,
}

fn direct(m: &Merchant) -> Result<(&str, &str), TransferBillError> {
    match m {
        Merchant::Direct { mchid, appid } => Ok((mchid, appid)),
        Merchant::Partner { .. } => Err(TransferBillError::PartnerMode),
    }
}

/// `out_bill_no` allows only ASCII letters and digits.
pub fn check_out_bill_no(no: &str) -> Result<(), TransferBillError> {
    if no.is_empty() || no.len() > 32 || !no.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(TransferBillError::OutBillNo(no.to_string()));
    }
    Ok(())
}

impl CreateTransferBill {
    /// Every rule of the create page that can be checked locally.
    pub fn validate(&self) -> Result<(), TransferBillError> {
        check_out_bill_no(&self.out_bill_no)?;
        let fen = self.transfer_amount.as_i64();
        if fen < MIN_TRANSFER_FEN {
            return Err(TransferBillError::AmountTooSmall(fen));
        }
        let remark = self.transfer_remark.chars().count();
        if remark == 0 || remark > MAX_REMARK_CHARS {
            return Err(TransferBillError::Remark(remark));
        }
        if self.openid.is_empty() {
            return Err(TransferBillError::Empty("create", "openid"));
        }
        if self.transfer_scene_id.is_empty() {
            return Err(TransferBillError::Empty("create", "transfer_scene_id"));
        }
        let has_name = self
            .user_name
            .as_ref()
            .is_some_and(|n| !n.expose().is_empty());
        if fen >= NAME_REQUIRED_FROM_FEN && !has_name {
            return Err(TransferBillError::NameRequired(fen));
        }
        if fen < NAME_ALLOWED_FROM_FEN && has_name {
            return Err(TransferBillError::NameNotAllowed(fen));
        }
        let got: Vec<String> = self
            .transfer_scene_report_infos
            .iter()
            .map(|i| i.info_type.clone())
            .collect();
        if got.is_empty()
            || self
                .transfer_scene_report_infos
                .iter()
                .any(|i| i.info_content.is_empty())
        {
            return Err(TransferBillError::SceneReport {
                scene: self.transfer_scene_id.clone(),
                expected: expected_report_types(&self.transfer_scene_id),
                got,
            });
        }
        if let Some((_, types)) = SCENE_REPORT_TYPES
            .iter()
            .find(|(s, _)| *s == self.transfer_scene_id)
        {
            let mut want: Vec<&str> = types.to_vec();
            let mut have: Vec<&str> = got.iter().map(String::as_str).collect();
            want.sort_unstable();
            have.sort_unstable();
            if want != have {
                return Err(TransferBillError::SceneReport {
                    scene: self.transfer_scene_id.clone(),
                    expected: types.iter().map(|t| t.to_string()).collect(),
                    got,
                });
            }
        }
        Ok(())
    }
}

impl CreateTransferBill {
    /// The provider-neutral payout as a transfer bill (validated when it is built into a
    /// request).
    pub fn from_payout(p: &CreatePayout) -> Result<Self, TransferBillError> {
        let (openid, appid) = match &p.payee {
            PayoutPayee::WechatOpenId { openid, app_id } => (openid.clone(), app_id.clone()),
            PayoutPayee::AlipayUserId { .. } => {
                return Err(TransferBillError::Payee("an Alipay user id"))
            }
            PayoutPayee::AlipayLogonId { .. } => {
                return Err(TransferBillError::Payee("an Alipay logon id"))
            }
            PayoutPayee::AlipayOpenId { .. } => {
                return Err(TransferBillError::Payee("an Alipay open id"))
            }
        };
        Ok(CreateTransferBill {
            appid,
            out_bill_no: p.out_no.clone(),
            transfer_scene_id: p.scene.clone().ok_or(TransferBillError::NoScene)?,
            openid,
            user_name: p.payee_name.clone().map(Secret::new),
            transfer_amount: p.amount,
            transfer_remark: p.remark.clone(),
            notify_url: p.notify_url.clone(),
            user_recv_perception: p.recv_perception.clone(),
            transfer_scene_report_infos: p
                .scene_report
                .iter()
                .map(|r| SceneReportInfo::new(r.info_type.clone(), r.info_content.clone()))
                .collect(),
            user_recv_style: None,
        })
    }
}

fn expected_report_types(scene: &str) -> Vec<String> {
    SCENE_REPORT_TYPES
        .iter()
        .find(|(s, _)| *s == scene)
        .map(|(_, t)| t.iter().map(|x| x.to_string()).collect())
        .unwrap_or_default()
}

/// Builds the create request. `key` is the WeChat Pay public key (or newest platform
/// certificate) from [`Verifier::encryption_key`]: `user_name` is encrypted under it, and its
/// serial is sent as `Wechatpay-Serial` (also without a name: WeChat answers under the key the
/// request names). Repeating the request is harmless: the same `out_bill_no` answers with the
/// bill it already made.
pub fn create_transfer_bill(
    m: &Merchant,
    r: &CreateTransferBill,
    key: Option<&VerifierKey>,
) -> Result<SensitiveRequest, V3Error> {
    let (_, merchant_appid) = direct(m)?;
    r.validate()?;
    let mut body = Map::new();
    body.insert(
        "appid".into(),
        r.appid
            .clone()
            .unwrap_or_else(|| merchant_appid.into())
            .into(),
    );
    body.insert("out_bill_no".into(), r.out_bill_no.clone().into());
    body.insert(
        "transfer_scene_id".into(),
        r.transfer_scene_id.clone().into(),
    );
    body.insert("openid".into(), r.openid.clone().into());
    if let Some(name) = r.user_name.as_ref().filter(|n| !n.expose().is_empty()) {
        let key = key.ok_or(TransferBillError::NoEncryptionKey)?;
        let ct = super::sensitive::encrypt(&key.key, name.expose())
            .map_err(|e| TransferBillError::Encrypt(e.to_string()))?;
        body.insert("user_name".into(), ct.into());
    }
    body.insert("transfer_amount".into(), r.transfer_amount.as_i64().into());
    body.insert("transfer_remark".into(), r.transfer_remark.clone().into());
    if let Some(u) = &r.notify_url {
        body.insert("notify_url".into(), u.clone().into());
    }
    if let Some(p) = &r.user_recv_perception {
        body.insert("user_recv_perception".into(), p.clone().into());
    }
    body.insert(
        "transfer_scene_report_infos".into(),
        serde_json::to_value(&r.transfer_scene_report_infos)
            .map_err(|e| V3Error::Json(e.to_string()))?,
    );
    if let Some(style) = r.user_recv_style {
        body.insert("user_recv_style".into(), json!({"type": style.as_str()}));
    }
    Ok(SensitiveRequest {
        request: ApiRequest {
            method: "POST",
            path: TRANSFER_BILLS_PATH.into(),
            body: Value::Object(body).to_string(),
            idempotent: true,
        },
        wechatpay_serial: key.map(|k| k.serial.clone()),
    })
}

fn get(path: String) -> ApiRequest {
    ApiRequest {
        method: "GET",
        path,
        body: String::new(),
        idempotent: true,
    }
}

/// `GET …/transfer-bills/out-bill-no/{out_bill_no}`.
pub fn query_by_out_bill_no(out_bill_no: &str) -> ApiRequest {
    get(format!(
        "{TRANSFER_BILLS_PATH}/out-bill-no/{}",
        enc(out_bill_no)
    ))
}

/// `GET …/transfer-bills/transfer-bill-no/{transfer_bill_no}`.
pub fn query_by_transfer_bill_no(transfer_bill_no: &str) -> ApiRequest {
    get(format!(
        "{TRANSFER_BILLS_PATH}/transfer-bill-no/{}",
        enc(transfer_bill_no)
    ))
}

/// `POST …/out-bill-no/{out_bill_no}/cancel` with no body. Only before the payee confirms; an
/// accepted cancel is asynchronous (CANCELING), so query for the final state.
pub fn cancel_transfer_bill(out_bill_no: &str) -> ApiRequest {
    ApiRequest {
        method: "POST",
        path: format!(
            "{TRANSFER_BILLS_PATH}/out-bill-no/{}/cancel",
            enc(out_bill_no)
        ),
        body: String::new(),
        idempotent: true,
    }
}

/// Amounts are integers in fen; one SDK types the query's as a string, so both are read.
fn fen_int_or_string<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Fen>, D::Error> {
    use serde::de::Error;
    match Option::<Value>::deserialize(d)? {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => n
            .as_i64()
            .map(|v| Some(Fen(v)))
            .ok_or_else(|| D::Error::custom(format!("transfer_amount {n} is not an integer"))),
        Some(Value::String(s)) => s
            .parse::<i64>()
            .map(|v| Some(Fen(v)))
            .map_err(|_| D::Error::custom(format!("transfer_amount {s:?} is not an integer"))),
        Some(other) => Err(D::Error::custom(format!(
            "transfer_amount {other} is not a number"
        ))),
    }
}

/// The create answer. `package_info` comes only with WAIT_USER_CONFIRM; a create can also
/// answer other states (follow the state, do not assume ACCEPTED).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct TransferBillCreated {
    pub out_bill_no: String,
    pub transfer_bill_no: String,
    #[serde(default)]
    pub create_time: Option<String>,
    pub state: TransferBillState,
    #[serde(default)]
    pub fail_reason: Option<String>,
    #[serde(default)]
    pub package_info: Option<String>,
}

/// A bill as both queries describe it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct TransferBill {
    #[serde(default, alias = "mchid")]
    pub mch_id: Option<String>,
    pub out_bill_no: String,
    pub transfer_bill_no: String,
    #[serde(default)]
    pub appid: Option<String>,
    pub state: TransferBillState,
    #[serde(default, deserialize_with = "fen_int_or_string")]
    pub transfer_amount: Option<Fen>,
    #[serde(default)]
    pub transfer_remark: Option<String>,
    #[serde(default)]
    pub fail_reason: Option<String>,
    #[serde(default)]
    pub openid: Option<String>,
    /// Ciphertext under the merchant's key, when the name was sent.
    #[serde(default)]
    pub user_name: Option<String>,
    #[serde(default)]
    pub create_time: Option<String>,
    #[serde(default)]
    pub update_time: Option<String>,
}

/// The cancel answer: CANCELING or CANCELLED.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct TransferBillCancel {
    pub out_bill_no: String,
    pub transfer_bill_no: String,
    pub state: TransferBillState,
    #[serde(default)]
    pub update_time: Option<String>,
}

/// The decrypted resource of `MCHTRANSFER.BILL.FINISHED`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct TransferBillNotify {
    pub out_bill_no: String,
    pub transfer_bill_no: String,
    pub state: TransferBillState,
    #[serde(default, alias = "mchid")]
    pub mch_id: Option<String>,
    #[serde(default)]
    pub sub_mchid: Option<String>,
    #[serde(default, deserialize_with = "fen_int_or_string")]
    pub transfer_amount: Option<Fen>,
    #[serde(default)]
    pub openid: Option<String>,
    #[serde(default)]
    pub fail_reason: Option<String>,
    #[serde(default)]
    pub create_time: Option<String>,
    #[serde(default)]
    pub update_time: Option<String>,
    /// CFT or WPHK.
    #[serde(default)]
    pub payment_method_type: Option<String>,
}

fn json_body<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, V3Error> {
    serde_json::from_slice(body).map_err(|e| V3Error::Json(e.to_string()))
}

pub fn parse_created(body: &[u8]) -> Result<TransferBillCreated, V3Error> {
    json_body(body)
}

pub fn parse_transfer_bill(body: &[u8]) -> Result<TransferBill, V3Error> {
    json_body(body)
}

pub fn parse_cancel(body: &[u8]) -> Result<TransferBillCancel, V3Error> {
    json_body(body)
}

fn snapshot(
    out_bill_no: &str,
    transfer_bill_no: &str,
    state: TransferBillState,
    amount: Option<Fen>,
    fail_reason: &Option<String>,
    package_info: Option<String>,
    updated_at: Option<String>,
) -> PayoutSnapshot {
    PayoutSnapshot {
        out_no: out_bill_no.to_string(),
        provider_no: Some(transfer_bill_no.to_string()),
        status: state.to_core(),
        provider_status: state.as_str().to_string(),
        amount,
        fail_reason: fail_reason.clone().filter(|r| !r.is_empty()),
        package_info: package_info.filter(|_| state == TransferBillState::WaitUserConfirm),
        updated_at,
    }
}

impl TransferBillCreated {
    pub fn snapshot(&self) -> PayoutSnapshot {
        snapshot(
            &self.out_bill_no,
            &self.transfer_bill_no,
            self.state,
            None,
            &self.fail_reason,
            self.package_info.clone(),
            self.create_time.clone(),
        )
    }
}

impl TransferBill {
    /// The payee's name, which the answer carries encrypted under the merchant's key.
    pub fn decrypt_user_name(
        &self,
        merchant_key: &paybridge_crypto::RsaPrivateKey,
    ) -> Result<Option<Secret<String>>, V3Error> {
        match self.user_name.as_deref().filter(|n| !n.is_empty()) {
            None => Ok(None),
            Some(ct) => super::sensitive::decrypt(merchant_key, ct)
                .map(|n| Some(Secret::new(n)))
                .map_err(|e| V3Error::Crypto(e.to_string())),
        }
    }

    /// A query does not return `package_info`; the one from the create stays valid until the
    /// bill leaves WAIT_USER_CONFIRM.
    pub fn snapshot(&self) -> PayoutSnapshot {
        snapshot(
            &self.out_bill_no,
            &self.transfer_bill_no,
            self.state,
            self.transfer_amount,
            &self.fail_reason,
            None,
            self.update_time.clone().or(self.create_time.clone()),
        )
    }
}

impl TransferBillCancel {
    pub fn snapshot(&self) -> PayoutSnapshot {
        snapshot(
            &self.out_bill_no,
            &self.transfer_bill_no,
            self.state,
            None,
            &None,
            None,
            self.update_time.clone(),
        )
    }
}

impl TransferBillNotify {
    pub fn snapshot(&self) -> PayoutSnapshot {
        snapshot(
            &self.out_bill_no,
            &self.transfer_bill_no,
            self.state,
            self.transfer_amount,
            &self.fail_reason,
            None,
            self.update_time.clone(),
        )
    }
}

/// What a query answers for a bill WeChat does not have.
pub fn not_found_snapshot(out_bill_no: &str, word: &str) -> PayoutSnapshot {
    PayoutSnapshot {
        out_no: out_bill_no.to_string(),
        provider_no: None,
        status: ProviderPayoutStatus::NotFound,
        provider_status: word.to_string(),
        amount: None,
        fail_reason: None,
        package_info: None,
        updated_at: None,
    }
}

/// Whether a query error says the bill does not exist. The code of the transfer-bills 404 is
/// not documented, so the status decides; the known codes are accepted with it.
pub fn is_not_found(e: &V3Error) -> bool {
    match e {
        V3Error::Api { status, code, .. } => {
            *status == 404
                && matches!(
                    code.as_str(),
                    "NOT_FOUND" | "ORDER_NOT_EXIST" | "RESOURCE_NOT_EXISTS" | "NO_DATA"
                )
        }
        V3Error::Status { status } => *status == 404,
        _ => false,
    }
}

impl Notification {
    /// The transfer-bill resource, when this is `MCHTRANSFER.BILL.FINISHED`.
    pub fn transfer_bill(&self) -> Result<TransferBillNotify, NotifyError> {
        if self.envelope.event_type != FINISHED_EVENT {
            return Err(NotifyError::Envelope(format!(
                "event_type {} is not {FINISHED_EVENT}",
                self.envelope.event_type
            )));
        }
        serde_json::from_str(&self.plaintext).map_err(|e| NotifyError::Resource(e.to_string()))
    }
}

/// Verifies, decrypts and reads a transfer notification in one step.
pub fn parse_transfer_notify(
    verifier: &Verifier,
    headers: &SignatureHeaders,
    body: &[u8],
    apiv3_key: &[u8],
    now: i64,
) -> Result<TransferBillNotify, NotifyError> {
    parse_notify(verifier, headers, body, apiv3_key, now)?.transfer_bill()
}

/// What the payee's client needs to open WeChat's confirmation page (`package_info` from a
/// WAIT_USER_CONFIRM bill). Nothing here is signed: the package itself binds the bill.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfirmParams {
    pub mch_id: String,
    /// The app the openid belongs to (the mobile-app AppID for native apps).
    pub app_id: String,
    pub package: String,
}

/// `businessType` of the native-app hand-off.
pub const APP_BUSINESS_TYPE: &str = "requestMerchantTransfer";

impl ConfirmParams {
    pub fn new(mch_id: &str, app_id: &str, package_info: &str) -> Self {
        ConfirmParams {
            mch_id: mch_id.to_string(),
            app_id: app_id.to_string(),
            package: package_info.to_string(),
        }
    }

    /// `wx.requestMerchantTransfer` (mini program) and the JSSDK / `WeixinJSBridge` call of
    /// the same name: `{mchId, appId, package}`.
    pub fn jsapi(&self) -> BTreeMap<String, String> {
        BTreeMap::from([
            ("mchId".to_string(), self.mch_id.clone()),
            ("appId".to_string(), self.app_id.clone()),
            ("package".to_string(), self.package.clone()),
        ])
    }

    /// OpenSDK `WXOpenBusinessView` / `wx.miniapp.openBusinessView`: `businessType` and its
    /// `query`, with the package URL-encoded (it carries `+`, `/` and `=`).
    pub fn app_business_view(&self) -> (String, String) {
        (
            APP_BUSINESS_TYPE.to_string(),
            format!(
                "mchId={}&appId={}&package={}",
                enc(&self.mch_id),
                enc(&self.app_id),
                enc(&self.package)
            ),
        )
    }
}

/// Names a bill for the electronic-receipt APIs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BillRef {
    OutBillNo(String),
    TransferBillNo(String),
}

impl BillRef {
    fn segment(&self) -> (&'static str, &'static str, &str) {
        match self {
            BillRef::OutBillNo(n) => ("out-bill-no", "out_bill_no", n),
            BillRef::TransferBillNo(n) => ("transfer-bill-no", "transfer_bill_no", n),
        }
    }
}

/// 电子回单申请: `POST …/elecsign/{out-bill-no|transfer-bill-no}`. Applying twice is harmless.
pub fn apply_receipt(bill: &BillRef) -> ApiRequest {
    let (seg, field, no) = bill.segment();
    ApiRequest {
        method: "POST",
        path: format!("{ELECSIGN_PATH}/{seg}"),
        body: json!({ field: no }).to_string(),
        idempotent: true,
    }
}

/// 电子回单查询: `GET …/elecsign/{out-bill-no|transfer-bill-no}/{no}`. Each query hands out a
/// fresh `download_url` (valid 10 minutes) without applying again.
pub fn query_receipt(bill: &BillRef) -> ApiRequest {
    let (seg, _, no) = bill.segment();
    get(format!("{ELECSIGN_PATH}/{seg}/{}", enc(no)))
}

/// The receipt's `state`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ReceiptState {
    Generating,
    Finished,
    Failed,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ReceiptApplied {
    pub state: ReceiptState,
    #[serde(default)]
    pub create_time: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Receipt {
    pub state: ReceiptState,
    #[serde(default)]
    pub create_time: Option<String>,
    #[serde(default)]
    pub update_time: Option<String>,
    #[serde(default)]
    pub hash_type: Option<String>,
    #[serde(default)]
    pub hash_value: Option<String>,
    #[serde(default)]
    pub download_url: Option<String>,
    #[serde(default)]
    pub fail_reason: Option<String>,
}

pub fn parse_receipt_applied(body: &[u8]) -> Result<ReceiptApplied, V3Error> {
    json_body(body)
}

pub fn parse_receipt(body: &[u8]) -> Result<Receipt, V3Error> {
    json_body(body)
}

/// Checks a downloaded receipt PDF against the receipt's `hash_value`. The schema says SHA256
/// (or SM3, which needs a 国密 stack we do not have); one SDK says SHA1: both SHA variants are
/// accepted, anything else is refused rather than trusted.
pub fn check_receipt(receipt: &Receipt, pdf: &[u8]) -> Result<(), V3Error> {
    let hash_type = receipt.hash_type.clone().unwrap_or_default();
    let actual = match hash_type.to_ascii_uppercase().as_str() {
        "SHA256" | "SHA-256" => hex_lower(&paybridge_crypto::sha256(pdf)),
        "SHA1" | "SHA-1" => paybridge_crypto::sha1_hex(pdf),
        _ => return Err(TransferBillError::HashType(hash_type).into()),
    };
    let expected = receipt
        .hash_value
        .as_deref()
        .unwrap_or_default()
        .to_ascii_lowercase();
    if paybridge_crypto::constant_time_eq(actual.as_bytes(), expected.as_bytes()) {
        Ok(())
    } else {
        Err(TransferBillError::HashMismatch { hash_type }.into())
    }
}

fn hex_lower(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use crate::v3::verify::KeySource;
    use paybridge_crypto::{generate_rsa_private_key_pkcs8, RsaPrivateKey};

    fn direct() -> Merchant {
        Merchant::Direct {
            mchid: "1230000109".into(),
            appid: "wxf636efh567hg4356".into(),
        }
    }

    fn bill(amount: i64, name: Option<&str>) -> CreateTransferBill {
        CreateTransferBill {
            appid: None,
            out_bill_no: "plfk2020042013".into(),
            transfer_scene_id: "1000".into(),
            openid: "o-MYE42l80oelYMDE34nYD456Xoy".into(),
            user_name: name.map(|n| Secret::new(n.to_string())),
            transfer_amount: Fen(amount),
            transfer_remark: "新会员开通有礼".into(),
            notify_url: Some("https://www.weixin.qq.com/wxpay/pay.php".into()),
            user_recv_perception: Some("现金奖励".into()),
            transfer_scene_report_infos: vec![
                SceneReportInfo::new("活动名称", "新会员有礼"),
                SceneReportInfo::new("奖励说明", "注册会员抽奖一等奖"),
            ],
            user_recv_style: None,
        }
    }

    fn key() -> (RsaPrivateKey, VerifierKey) {
        let private = RsaPrivateKey::from_der(&generate_rsa_private_key_pkcs8().unwrap()).unwrap();
        let vk = VerifierKey {
            serial: "PUB_KEY_ID_0112300001092026120400000001".into(),
            key: private.public_key().unwrap(),
            source: KeySource::PublicKey,
        };
        (private, vk)
    }

    #[test]
    fn create_wire_form_without_name() {
        let (_, vk) = key();
        let r = create_transfer_bill(&direct(), &bill(400, None), Some(&vk)).unwrap();
        assert_eq!(r.request.method, "POST");
        assert_eq!(r.request.path, "/v3/fund-app/mch-transfer/transfer-bills");
        assert!(r.request.idempotent);
        assert_eq!(
            r.request.body,
            r#"{"appid":"wxf636efh567hg4356","out_bill_no":"plfk2020042013","transfer_scene_id":"1000","openid":"o-MYE42l80oelYMDE34nYD456Xoy","transfer_amount":400,"transfer_remark":"新会员开通有礼","notify_url":"https://www.weixin.qq.com/wxpay/pay.php","user_recv_perception":"现金奖励","transfer_scene_report_infos":[{"info_type":"活动名称","info_content":"新会员有礼"},{"info_type":"奖励说明","info_content":"注册会员抽奖一等奖"}]}"#
        );
        assert_eq!(
            r.wechatpay_serial.as_deref(),
            Some("PUB_KEY_ID_0112300001092026120400000001")
        );
        // Without a key nothing names a serial, and nothing needed one.
        let r = create_transfer_bill(&direct(), &bill(400, None), None).unwrap();
        assert_eq!(r.wechatpay_serial, None);
    }

    #[test]
    fn signed_wire_forms_of_create_and_cancel() {
        use crate::v3::provider::verify_request;
        use crate::v3::sign::{request_message, MerchantSigner};
        let (merchant_key, _) = key();
        let public = merchant_key.public_key().unwrap();
        let signer = MerchantSigner::new(
            "1230000109",
            "5157F09EFDC096DE15EBE81A47057A7232F1B8E1",
            merchant_key,
        );
        let create = create_transfer_bill(&direct(), &bill(400, None), None)
            .unwrap()
            .request;
        assert_eq!(
            request_message(create.method, &create.path, "1554208460", "593BEC0C930BF1AFEB40B4A08C8FB242", &create.body),
            format!("POST\n/v3/fund-app/mch-transfer/transfer-bills\n1554208460\n593BEC0C930BF1AFEB40B4A08C8FB242\n{}\n", create.body)
        );
        let cancel = cancel_transfer_bill("plfk2020042013");
        // No body: the message ends with an empty line.
        assert_eq!(
            request_message(cancel.method, &cancel.path, "1554208460", "593BEC0C930BF1AFEB40B4A08C8FB242", &cancel.body),
            "POST\n/v3/fund-app/mch-transfer/transfer-bills/out-bill-no/plfk2020042013/cancel\n1554208460\n593BEC0C930BF1AFEB40B4A08C8FB242\n\n"
        );
        for r in [&create, &cancel, &query_by_out_bill_no("plfk2020042013")] {
            let signed = signer
                .sign_request(
                    r.method,
                    &r.path,
                    &r.body,
                    "1554208460",
                    "593BEC0C930BF1AFEB40B4A08C8FB242",
                )
                .unwrap();
            let parts = verify_request(
                &signed.authorization,
                r.method,
                &r.path,
                r.body.as_bytes(),
                Some("1230000109"),
                &public,
                1_554_208_500,
            )
            .unwrap();
            assert_eq!(parts.serial_no, "5157F09EFDC096DE15EBE81A47057A7232F1B8E1");
        }
    }

    #[test]
    fn user_name_is_oaep_encrypted_under_the_named_key() {
        let (private, vk) = key();
        let mut b = bill(300_000, Some("张三"));
        b.appid = Some("wxmini000000000001".into());
        b.user_recv_style = Some(RecvStyle::ConfirmPage);
        let r = create_transfer_bill(&direct(), &b, Some(&vk)).unwrap();
        let v: Value = serde_json::from_str(&r.request.body).unwrap();
        assert_eq!(v["appid"], "wxmini000000000001");
        assert_eq!(v["user_recv_style"], json!({"type": "CONFIRM_PAGE"}));
        let ct = v["user_name"].as_str().unwrap();
        assert_ne!(ct, "张三");
        assert_eq!(
            super::super::sensitive::decrypt(&private, ct).unwrap(),
            "张三"
        );
        assert_eq!(r.wechatpay_serial.as_deref(), Some(vk.serial.as_str()));
        assert!(
            !format!("{b:?}").contains("张三"),
            "the name never reaches Debug"
        );
        assert!(matches!(
            create_transfer_bill(&direct(), &b, None),
            Err(V3Error::Transfer(TransferBillError::NoEncryptionKey))
        ));
    }

    #[test]
    fn local_rules_refuse_before_sending() {
        let refuse = |b: CreateTransferBill| create_transfer_bill(&direct(), &b, None).unwrap_err();
        let t = |e: V3Error| match e {
            V3Error::Transfer(t) => t,
            other => panic!("{other:?}"),
        };
        assert_eq!(
            t(refuse(CreateTransferBill {
                out_bill_no: "has-dash".into(),
                ..bill(400, None)
            })),
            TransferBillError::OutBillNo("has-dash".into())
        );
        assert_eq!(
            t(refuse(bill(9, None))),
            TransferBillError::AmountTooSmall(9)
        );
        assert_eq!(
            t(refuse(bill(200_000, None))),
            TransferBillError::NameRequired(200_000)
        );
        assert_eq!(
            t(refuse(bill(29, Some("李四")))),
            TransferBillError::NameNotAllowed(29)
        );
        assert_eq!(
            t(refuse(CreateTransferBill {
                transfer_remark: "字".repeat(33),
                ..bill(400, None)
            })),
            TransferBillError::Remark(33)
        );
        // 32 CJK characters are 96 bytes and still allowed.
        assert!(create_transfer_bill(
            &direct(),
            &CreateTransferBill {
                transfer_remark: "字".repeat(32),
                ..bill(400, None)
            },
            None
        )
        .is_ok());
        let mut wrong = bill(400, None);
        wrong.transfer_scene_report_infos.pop();
        assert!(matches!(
            t(refuse(wrong)),
            TransferBillError::SceneReport { .. }
        ));
        // A scene we do not know is passed through as reported.
        let mut other = bill(400, None);
        other.transfer_scene_id = "1099".into();
        assert!(create_transfer_bill(&direct(), &other, None).is_ok());
        let partner = Merchant::Partner {
            sp_mchid: "1".into(),
            sp_appid: "a".into(),
            sub_mchid: "2".into(),
            sub_appid: None,
        };
        assert!(matches!(
            create_transfer_bill(&partner, &bill(400, None), None),
            Err(V3Error::Transfer(TransferBillError::PartnerMode))
        ));
    }

    #[test]
    fn query_cancel_and_receipt_paths() {
        assert_eq!(
            query_by_out_bill_no("plfk2020042013").path,
            "/v3/fund-app/mch-transfer/transfer-bills/out-bill-no/plfk2020042013"
        );
        assert_eq!(
            query_by_transfer_bill_no("1330000071100999991182020050700019480001").path,
            "/v3/fund-app/mch-transfer/transfer-bills/transfer-bill-no/1330000071100999991182020050700019480001"
        );
        let c = cancel_transfer_bill("plfk2020042013");
        assert_eq!(
            (c.method, c.path.as_str(), c.body.as_str(), c.idempotent),
            (
                "POST",
                "/v3/fund-app/mch-transfer/transfer-bills/out-bill-no/plfk2020042013/cancel",
                "",
                true
            )
        );
        let a = apply_receipt(&BillRef::OutBillNo("plfk2020042013".into()));
        assert_eq!(
            (a.path.as_str(), a.body.as_str()),
            (
                "/v3/fund-app/mch-transfer/elecsign/out-bill-no",
                r#"{"out_bill_no":"plfk2020042013"}"#
            )
        );
        let a = apply_receipt(&BillRef::TransferBillNo("133".into()));
        assert_eq!(a.body, r#"{"transfer_bill_no":"133"}"#);
        assert_eq!(
            query_receipt(&BillRef::TransferBillNo("133".into())).path,
            "/v3/fund-app/mch-transfer/elecsign/transfer-bill-no/133"
        );
    }

    #[test]
    fn parses_the_documented_answers() {
        let c = parse_created(br#"{"out_bill_no":"plfk2020042013","transfer_bill_no":"1330000071100999991182020050700019480001","create_time":"2015-05-20T13:29:35.120+08:00","state":"WAIT_USER_CONFIRM","package_info":"affffddafdfafddffda=="}"#).unwrap();
        let s = c.snapshot();
        assert_eq!(s.status, ProviderPayoutStatus::AwaitingConfirmation);
        assert_eq!(s.package_info.as_deref(), Some("affffddafdfafddffda=="));
        let c = parse_created(br#"{"out_bill_no":"a1","transfer_bill_no":"t1","create_time":"2015-05-20T13:29:35.120+08:00","state":"FAIL","fail_reason":"PAYEE_ACCOUNT_ABNORMAL"}"#).unwrap();
        assert_eq!(
            (c.snapshot().status, c.snapshot().fail_reason.as_deref()),
            (ProviderPayoutStatus::Failed, Some("PAYEE_ACCOUNT_ABNORMAL"))
        );
        assert!(matches!(
            parse_created(br#"{"out_bill_no":"a","transfer_bill_no":"t","state":"LOST"}"#),
            Err(V3Error::Json(_))
        ));
        let q = parse_transfer_bill(r#"{"mch_id":"1900001109","out_bill_no":"plfk2020042013","transfer_bill_no":"1330000071100999991182020050700019480001","appid":"wxf636efh567hg4356","state":"SUCCESS","transfer_amount":400,"transfer_remark":"新会员开通有礼","fail_reason":"","openid":"o-MYE42l80oelYMDE34nYD456Xoy","user_name":"757b340b45ebef5467rter35gf464344v3542sdf4t6re4tb4f54ty45t4yyry45","create_time":"2015-05-20T13:29:35.120+08:00","update_time":"2015-05-20T13:29:35.120+08:00"}"#.as_bytes()).unwrap();
        assert_eq!(q.transfer_amount, Some(Fen(400)));
        let s = q.snapshot();
        assert_eq!(
            (s.status, s.fail_reason, s.amount),
            (ProviderPayoutStatus::Succeeded, None, Some(Fen(400)))
        );
        // The amount as a string (one SDK's typing) reads the same; a fraction does not.
        let q = parse_transfer_bill(br#"{"out_bill_no":"a","transfer_bill_no":"t","state":"ACCEPTED","transfer_amount":"400"}"#).unwrap();
        assert_eq!(q.transfer_amount, Some(Fen(400)));
        assert!(parse_transfer_bill(br#"{"out_bill_no":"a","transfer_bill_no":"t","state":"ACCEPTED","transfer_amount":4.5}"#).is_err());
        let x = parse_cancel(br#"{"out_bill_no":"plfk2020042013","transfer_bill_no":"1330000071100999991182020050700019480001","state":"CANCELING","update_time":"2015-05-20T13:29:35.120+08:00"}"#).unwrap();
        assert_eq!(x.snapshot().status, ProviderPayoutStatus::Cancelling);
        let r = parse_receipt(br#"{"state":"FINISHED","create_time":"2015-05-20T13:29:35.120+08:00","update_time":"2015-05-20T13:29:35.120+08:00","hash_type":"SHA256","hash_value":"8fb9e4e0a1b8bf37fb1c4d4dbb24a8ebb0e6f38bf4e3fe5f1c9e8b1e60c27a2e","download_url":"https://api.mch.weixin.qq.com/v3/transferdownload/signfile?token=abc"}"#).unwrap();
        assert_eq!(r.state, ReceiptState::Finished);
        assert_eq!(
            super::super::api::download_path(r.download_url.as_deref().unwrap()).unwrap(),
            "/v3/transferdownload/signfile?token=abc"
        );
        let applied = parse_receipt_applied(
            br#"{"state":"GENERATING","create_time":"2015-05-20T13:29:35.120+08:00"}"#,
        )
        .unwrap();
        assert_eq!(applied.state, ReceiptState::Generating);
    }

    #[test]
    fn receipt_hash_is_checked() {
        let pdf = b"%PDF-1.4 receipt";
        let mut r = Receipt {
            state: ReceiptState::Finished,
            create_time: None,
            update_time: None,
            hash_type: Some("SHA256".into()),
            hash_value: Some(hex_lower(&paybridge_crypto::sha256(pdf)).to_uppercase()),
            download_url: None,
            fail_reason: None,
        };
        assert!(check_receipt(&r, pdf).is_ok());
        assert!(check_receipt(&r, b"%PDF-1.4 tampered").is_err());
        r.hash_type = Some("SHA1".into());
        r.hash_value = Some(paybridge_crypto::sha1_hex(pdf));
        assert!(check_receipt(&r, pdf).is_ok());
        r.hash_type = Some("SM3".into());
        assert!(matches!(
            check_receipt(&r, pdf),
            Err(V3Error::Transfer(TransferBillError::HashType(_)))
        ));
    }

    #[test]
    fn confirm_hand_off() {
        let p = ConfirmParams::new("1230000109", "wxf636efh567hg4356", "ABBQO+oYAAAB/AA==");
        let js = p.jsapi();
        assert_eq!(
            js.into_iter().collect::<Vec<_>>(),
            vec![
                ("appId".to_string(), "wxf636efh567hg4356".to_string()),
                ("mchId".to_string(), "1230000109".to_string()),
                ("package".to_string(), "ABBQO+oYAAAB/AA==".to_string()),
            ]
        );
        assert_eq!(
            p.app_business_view(),
            (
                "requestMerchantTransfer".to_string(),
                "mchId=1230000109&appId=wxf636efh567hg4356&package=ABBQO%2BoYAAAB%2FAA%3D%3D"
                    .to_string()
            )
        );
    }

    #[test]
    fn finished_notification_is_verified_decrypted_and_typed() {
        use crate::v3::provider::{notify_body, sign_response};
        let platform = RsaPrivateKey::from_der(&generate_rsa_private_key_pkcs8().unwrap()).unwrap();
        let apiv3 = b"0123456789abcdef0123456789abcdef";
        let resource = r#"{"out_bill_no":"plfk2020042013","transfer_bill_no":"1330000071100999991182020050700019480001","state":"SUCCESS","mch_id":"1900001109","transfer_amount":2000,"openid":"o-MYE42l80oelYMDE34nYD456Xoy","create_time":"2015-05-20T13:29:35+08:00","update_time":"2015-05-20T13:29:35+08:00"}"#;
        let body = notify_body(
            apiv3,
            "EV-2018022511223320873",
            "2015-05-20T13:29:35+08:00",
            FINISHED_EVENT,
            "商家转账单据终态通知",
            NOTIFY_ORIGINAL_TYPE,
            "fdasfjihihih",
            resource,
        )
        .unwrap();
        let v: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["resource"]["original_type"], "mch_payment");
        assert_eq!(v["resource"]["associated_data"], "mch_payment");
        let mut verifier = Verifier::new();
        verifier.add_public_key("PUB_KEY_ID_01", platform.public_key().unwrap());
        let headers = SignatureHeaders::from_pairs(
            &sign_response(&platform, "PUB_KEY_ID_01", 1_000, "nonce", body.as_bytes()).unwrap(),
        )
        .unwrap();
        let n = parse_transfer_notify(&verifier, &headers, body.as_bytes(), apiv3, 1_010).unwrap();
        assert_eq!(
            (n.state, n.transfer_amount, n.mch_id.as_deref()),
            (
                TransferBillState::Success,
                Some(Fen(2000)),
                Some("1900001109")
            )
        );
        assert_eq!(n.snapshot().status, ProviderPayoutStatus::Succeeded);
        // A payment notification is not a transfer notification.
        let other = notify_body(
            apiv3,
            "EV-1",
            "t",
            "TRANSACTION.SUCCESS",
            "s",
            "transaction",
            "fdasfjihihih",
            "{}",
        )
        .unwrap();
        let h = SignatureHeaders::from_pairs(
            &sign_response(&platform, "PUB_KEY_ID_01", 1_000, "nonce", other.as_bytes()).unwrap(),
        )
        .unwrap();
        assert!(matches!(
            parse_transfer_notify(&verifier, &h, other.as_bytes(), apiv3, 1_010),
            Err(NotifyError::Envelope(_))
        ));
        // The signature covers the body: another state is refused.
        let tampered = body.replace("fdasfjihihih", "fdasfjihihiX");
        assert!(matches!(
            parse_transfer_notify(&verifier, &headers, tampered.as_bytes(), apiv3, 1_010),
            Err(NotifyError::Verify(_))
        ));
    }

    #[test]
    fn not_found_is_the_404() {
        assert!(is_not_found(&V3Error::Api {
            status: 404,
            code: "NOT_FOUND".into(),
            message: "记录不存在".into(),
            detail: None
        }));
        assert!(!is_not_found(&V3Error::Api {
            status: 400,
            code: "NOT_FOUND".into(),
            message: String::new(),
            detail: None
        }));
        assert_eq!(
            not_found_snapshot("a1", "NOT_FOUND").status,
            ProviderPayoutStatus::NotFound
        );
    }
}
