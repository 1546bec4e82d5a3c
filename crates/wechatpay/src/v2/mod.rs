//! WeChat Pay APIv2: XML bodies signed with the API key (MD5 or HMAC-SHA256).

pub mod api;
pub mod channel;
pub mod client;
pub mod client_params;
pub mod error;
pub mod notify;
pub mod provider;
pub mod sign;
pub mod xml;

use paybridge_core::Fen;

pub use error::{BusinessError, V2Error};
pub use sign::SignType;
pub use xml::{parse_xml, write_xml, XmlDoc, XmlError};

/// Production host and its backup.
pub const BASE_URL: &str = "https://api.mch.weixin.qq.com";
pub const BACKUP_BASE_URL: &str = "https://api2.mch.weixin.qq.com";

pub(crate) fn opt(doc: &XmlDoc, name: &str) -> Option<String> {
    doc.get(name).filter(|v| !v.is_empty()).map(str::to_string)
}

/// An amount in fen as APIv2 writes it: a non-negative decimal integer.
pub(crate) fn parse_fen(doc: &XmlDoc, name: &'static str) -> Result<Fen, V2Error> {
    parse_fen_str(doc.require(name)?, name)
}

pub(crate) fn parse_opt_fen(doc: &XmlDoc, name: &'static str) -> Result<Option<Fen>, V2Error> {
    match doc.get(name) {
        Some(v) if !v.is_empty() => parse_fen_str(v, name).map(Some),
        _ => Ok(None),
    }
}

pub(crate) fn parse_fen_str(v: &str, field: &'static str) -> Result<Fen, V2Error> {
    if v.is_empty() || v.len() > 15 || !v.bytes().all(|b| b.is_ascii_digit()) {
        return Err(V2Error::Invalid {
            field,
            reason: format!("{v:?} is not an amount in fen"),
        });
    }
    v.parse::<i64>().map(Fen).map_err(|e| V2Error::Invalid {
        field,
        reason: e.to_string(),
    })
}
