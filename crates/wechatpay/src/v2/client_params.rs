//! Client invocation parameters, signed with the APIv2 rule.

use std::collections::BTreeMap;

use super::sign::{sign, SignType};

/// JSAPI: `appId, timeStamp, nonceStr, package=prepay_id=..., signType` → `paySign`.
pub fn jsapi_params(
    appid: &str,
    prepay_id: &str,
    timestamp: &str,
    nonce: &str,
    api_key: &str,
    sign_type: SignType,
) -> BTreeMap<String, String> {
    let mut p = BTreeMap::from([
        ("appId".to_string(), appid.to_string()),
        ("timeStamp".to_string(), timestamp.to_string()),
        ("nonceStr".to_string(), nonce.to_string()),
        ("package".to_string(), format!("prepay_id={prepay_id}")),
        ("signType".to_string(), sign_type.as_str().to_string()),
    ]);
    let s = sign(
        p.iter().map(|(k, v)| (k.as_str(), v.as_str())),
        api_key,
        sign_type,
    );
    p.insert("paySign".to_string(), s);
    p
}

/// APP: `appid, partnerid, prepayid, package=Sign=WXPay, noncestr, timestamp` → `sign`.
pub fn app_params(
    appid: &str,
    partnerid: &str,
    prepay_id: &str,
    timestamp: &str,
    nonce: &str,
    api_key: &str,
    sign_type: SignType,
) -> BTreeMap<String, String> {
    let mut p = BTreeMap::from([
        ("appid".to_string(), appid.to_string()),
        ("partnerid".to_string(), partnerid.to_string()),
        ("prepayid".to_string(), prepay_id.to_string()),
        ("package".to_string(), "Sign=WXPay".to_string()),
        ("noncestr".to_string(), nonce.to_string()),
        ("timestamp".to_string(), timestamp.to_string()),
    ]);
    let s = sign(
        p.iter().map(|(k, v)| (k.as_str(), v.as_str())),
        api_key,
        sign_type,
    );
    p.insert("sign".to_string(), s);
    p
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn pay_sign_covers_the_five_fields() {
        let p = jsapi_params("wx1", "pp", "1414561699", "n", "k", SignType::Md5);
        let expected = sign(
            [
                ("appId", "wx1"),
                ("nonceStr", "n"),
                ("package", "prepay_id=pp"),
                ("signType", "MD5"),
                ("timeStamp", "1414561699"),
            ],
            "k",
            SignType::Md5,
        );
        assert_eq!(p.get("paySign"), Some(&expected));
        let a = app_params("wx1", "m", "pp", "1", "n", "k", SignType::Md5);
        assert_eq!(a.get("package").map(String::as_str), Some("Sign=WXPay"));
        assert_eq!(a.get("sign").map(|s| s.len()), Some(32));
    }
}
