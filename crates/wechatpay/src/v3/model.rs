//! APIv3 wire types shared by responses and decrypted notifications.
//!
//! Merchant and partner mode share them: partner replies carry `sp_*`/`sub_*` instead of
//! `appid`/`mchid`, so those are all optional.

use paybridge_core::Fen;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Payer {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub openid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sp_openid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sub_openid: Option<String>,
}

impl Payer {
    pub fn any_openid(&self) -> Option<&str> {
        self.openid
            .as_deref()
            .or(self.sub_openid.as_deref())
            .or(self.sp_openid.as_deref())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct TransactionAmount {
    #[serde(default)]
    pub total: Option<Fen>,
    #[serde(default)]
    pub payer_total: Option<Fen>,
    #[serde(default)]
    pub currency: Option<String>,
    #[serde(default)]
    pub payer_currency: Option<String>,
}

/// A payment as query responses and `TRANSACTION.SUCCESS` notifications describe it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Transaction {
    #[serde(default)]
    pub appid: Option<String>,
    #[serde(default)]
    pub mchid: Option<String>,
    #[serde(default)]
    pub sp_appid: Option<String>,
    #[serde(default)]
    pub sp_mchid: Option<String>,
    #[serde(default)]
    pub sub_appid: Option<String>,
    #[serde(default)]
    pub sub_mchid: Option<String>,
    pub out_trade_no: String,
    #[serde(default)]
    pub transaction_id: Option<String>,
    #[serde(default)]
    pub trade_type: Option<String>,
    pub trade_state: String,
    #[serde(default)]
    pub trade_state_desc: Option<String>,
    #[serde(default)]
    pub bank_type: Option<String>,
    #[serde(default)]
    pub attach: Option<String>,
    #[serde(default)]
    pub success_time: Option<String>,
    #[serde(default)]
    pub payer: Option<Payer>,
    #[serde(default)]
    pub amount: Option<TransactionAmount>,
}

impl Transaction {
    pub fn app_id(&self) -> Option<&str> {
        self.appid.as_deref().or(self.sp_appid.as_deref())
    }
    pub fn merchant_id(&self) -> Option<&str> {
        self.mchid.as_deref().or(self.sp_mchid.as_deref())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct RefundAmount {
    #[serde(default)]
    pub total: Option<Fen>,
    #[serde(default)]
    pub refund: Option<Fen>,
    #[serde(default)]
    pub payer_total: Option<Fen>,
    #[serde(default)]
    pub payer_refund: Option<Fen>,
    #[serde(default)]
    pub currency: Option<String>,
}

/// A refund as the refund APIs and `REFUND.*` notifications describe it. The API names the
/// status `status`, the notification `refund_status`; both land in `status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refund {
    #[serde(default)]
    pub mchid: Option<String>,
    #[serde(default)]
    pub sp_mchid: Option<String>,
    #[serde(default)]
    pub sub_mchid: Option<String>,
    #[serde(default)]
    pub refund_id: Option<String>,
    pub out_refund_no: String,
    #[serde(default)]
    pub transaction_id: Option<String>,
    #[serde(default)]
    pub out_trade_no: Option<String>,
    #[serde(alias = "refund_status")]
    pub status: String,
    #[serde(default)]
    pub success_time: Option<String>,
    #[serde(default)]
    pub create_time: Option<String>,
    #[serde(default)]
    pub user_received_account: Option<String>,
    #[serde(default)]
    pub amount: Option<RefundAmount>,
}
