//! Client invocation parameters: what the merchant's page or app hands to WeChat to pay.

use std::collections::BTreeMap;

use paybridge_crypto::{CryptoError, RsaPrivateKey};

/// JSAPI / mini-program message: `appId\ntimeStamp\nnonceStr\npackage\n`.
pub fn jsapi_message(appid: &str, timestamp: &str, nonce: &str, package: &str) -> String {
    format!("{appid}\n{timestamp}\n{nonce}\n{package}\n")
}

/// APP message: `appid\ntimestamp\nnoncestr\nprepayid\n` with the bare prepay id.
pub fn app_message(appid: &str, timestamp: &str, nonce: &str, prepay_id: &str) -> String {
    format!("{appid}\n{timestamp}\n{nonce}\n{prepay_id}\n")
}

/// `wx.requestPayment` / `WeixinJSBridge` parameters (`signType=RSA`).
pub fn jsapi_params(
    key: &RsaPrivateKey,
    appid: &str,
    prepay_id: &str,
    timestamp: &str,
    nonce: &str,
) -> Result<BTreeMap<String, String>, CryptoError> {
    let package = format!("prepay_id={prepay_id}");
    let pay_sign =
        key.sign_sha256_base64(jsapi_message(appid, timestamp, nonce, &package).as_bytes())?;
    Ok(BTreeMap::from([
        ("appId".to_string(), appid.to_string()),
        ("timeStamp".to_string(), timestamp.to_string()),
        ("nonceStr".to_string(), nonce.to_string()),
        ("package".to_string(), package),
        ("signType".to_string(), "RSA".to_string()),
        ("paySign".to_string(), pay_sign),
    ]))
}

/// OpenSDK `PayReq` parameters; `partnerid` is the (sub-)merchant id.
pub fn app_params(
    key: &RsaPrivateKey,
    appid: &str,
    partnerid: &str,
    prepay_id: &str,
    timestamp: &str,
    nonce: &str,
) -> Result<BTreeMap<String, String>, CryptoError> {
    let sign =
        key.sign_sha256_base64(app_message(appid, timestamp, nonce, prepay_id).as_bytes())?;
    Ok(BTreeMap::from([
        ("appid".to_string(), appid.to_string()),
        ("partnerid".to_string(), partnerid.to_string()),
        ("prepayid".to_string(), prepay_id.to_string()),
        ("package".to_string(), "Sign=WXPay".to_string()),
        ("noncestr".to_string(), nonce.to_string()),
        ("timestamp".to_string(), timestamp.to_string()),
        ("sign".to_string(), sign),
    ]))
}
