//! WeChat official-account web authorization (网页授权), `snsapi_base`: how a page opened inside
//! WeChat learns the buyer's `openid`, which a JSAPI order needs. Pure: the URLs to send the
//! browser and the server to, and the parse of the token answer. The gateway's client side and
//! the sandbox's provider side share these shapes.
//!
//! 1. The page redirects the buyer to `{open}/connect/oauth2/authorize?appid=…&redirect_uri=…
//!    &response_type=code&scope=snsapi_base&state=…#wechat_redirect`.
//! 2. WeChat redirects back to `redirect_uri?code=CODE&state=STATE` (a code is single-use and
//!    lives five minutes).
//! 3. The server exchanges it at `{api}/sns/oauth2/access_token?appid=…&secret=…&code=…
//!    &grant_type=authorization_code` for JSON with `openid`, or `{"errcode":…,"errmsg":…}`.

use serde::{Deserialize, Serialize};

use crate::common::percent_encode;

/// Where WeChat's authorize page lives.
pub const OPEN_BASE_URL: &str = "https://open.weixin.qq.com";
/// Where the code is exchanged.
pub const API_BASE_URL: &str = "https://api.weixin.qq.com";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OauthError {
    /// WeChat's refusal (40029 invalid code, 40125 invalid secret, 40163 code used…).
    #[error("WeChat OAuth refused: {errcode}: {errmsg}")]
    Refused { errcode: i64, errmsg: String },
    #[error("WeChat OAuth answer unreadable: {0}")]
    Malformed(String),
}

/// The authorize URL the buyer's browser is sent to.
pub fn authorize_url(open_base: &str, appid: &str, redirect_uri: &str, state: &str) -> String {
    format!(
        "{}/connect/oauth2/authorize?appid={}&redirect_uri={}&response_type=code&scope=snsapi_base&state={}#wechat_redirect",
        open_base.trim_end_matches('/'),
        percent_encode(appid),
        percent_encode(redirect_uri),
        percent_encode(state)
    )
}

/// The server-to-server URL that exchanges `code` (it carries the app secret: never log it).
pub fn access_token_url(api_base: &str, appid: &str, secret: &str, code: &str) -> String {
    format!(
        "{}/sns/oauth2/access_token?appid={}&secret={}&code={}&grant_type=authorization_code",
        api_base.trim_end_matches('/'),
        percent_encode(appid),
        percent_encode(secret),
        percent_encode(code)
    )
}

/// The token answer: only what a cashier needs is kept.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessToken {
    pub openid: String,
    #[serde(default)]
    pub scope: Option<String>,
}

#[derive(Deserialize)]
struct Answer {
    openid: Option<String>,
    scope: Option<String>,
    errcode: Option<i64>,
    errmsg: Option<String>,
}

/// Parses the exchange's answer: the buyer's `openid`, or WeChat's refusal.
pub fn parse_access_token(body: &[u8]) -> Result<AccessToken, OauthError> {
    let a: Answer =
        serde_json::from_slice(body).map_err(|e| OauthError::Malformed(e.to_string()))?;
    match (a.errcode, a.openid) {
        (Some(code), _) if code != 0 => Err(OauthError::Refused {
            errcode: code,
            errmsg: a.errmsg.unwrap_or_default(),
        }),
        (_, Some(openid)) if !openid.is_empty() => Ok(AccessToken {
            openid,
            scope: a.scope,
        }),
        _ => Err(OauthError::Malformed("no openid in the answer".into())),
    }
}

/// WeChat's side, for the sandbox: the token answer's JSON.
pub fn access_token_answer(access_token: &str, openid: &str) -> serde_json::Value {
    serde_json::json!({
        "access_token": access_token,
        "expires_in": 7200,
        "refresh_token": format!("r_{access_token}"),
        "openid": openid,
        "scope": "snsapi_base",
    })
}

/// WeChat's side, for the sandbox: a refusal's JSON.
pub fn error_answer(errcode: i64, errmsg: &str) -> serde_json::Value {
    serde_json::json!({ "errcode": errcode, "errmsg": errmsg })
}

/// WeChat's side, for the sandbox: where the browser goes back with its code.
pub fn redirect_back(redirect_uri: &str, code: &str, state: &str) -> String {
    let sep = if redirect_uri.contains('?') { '&' } else { '?' };
    format!(
        "{redirect_uri}{sep}code={}&state={}",
        percent_encode(code),
        percent_encode(state)
    )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn urls_have_wechats_shape() {
        let u = authorize_url(
            OPEN_BASE_URL,
            "wx1",
            "https://pay.example/cashier/t?a=1",
            "s1",
        );
        assert_eq!(
            u,
            "https://open.weixin.qq.com/connect/oauth2/authorize?appid=wx1&redirect_uri=https%3A%2F%2Fpay.example%2Fcashier%2Ft%3Fa%3D1&response_type=code&scope=snsapi_base&state=s1#wechat_redirect"
        );
        assert_eq!(
            access_token_url("http://127.0.0.1:9/", "wx1", "sec", "c&1"),
            "http://127.0.0.1:9/sns/oauth2/access_token?appid=wx1&secret=sec&code=c%261&grant_type=authorization_code"
        );
        assert_eq!(
            redirect_back("https://x/y?w=1", "C", "S"),
            "https://x/y?w=1&code=C&state=S"
        );
    }

    #[test]
    fn token_answers_parse_and_refusals_are_errors() {
        let ok = serde_json::to_vec(&access_token_answer("AT", "o_buyer")).unwrap();
        assert_eq!(parse_access_token(&ok).unwrap().openid, "o_buyer");
        let refused = serde_json::to_vec(&error_answer(40029, "invalid code")).unwrap();
        assert_eq!(
            parse_access_token(&refused),
            Err(OauthError::Refused {
                errcode: 40029,
                errmsg: "invalid code".into()
            })
        );
        assert!(matches!(
            parse_access_token(b"{}"),
            Err(OauthError::Malformed(_))
        ));
        assert!(matches!(
            parse_access_token(b"<xml/>"),
            Err(OauthError::Malformed(_))
        ));
    }
}
