//! Building and signing a gateway request, and the forms it takes on the wire: a POST for the
//! server-to-server APIs, an auto-submitting form or GET URL for page/wap pay, the App SDK's
//! order string.

use std::collections::BTreeMap;

use paybridge_http::HttpRequest;

use crate::config::AlipayConfig;
use crate::sign::{encrypt_content, sign_params};
use crate::time_fmt::format_beijing;
use crate::AlipayError;

/// Per-call common parameters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CallOptions {
    pub notify_url: Option<String>,
    pub return_url: Option<String>,
    /// ISV mode: the merchant's authorisation token; the same code serves both modes.
    pub app_auth_token: Option<String>,
}

/// A signed request: every parameter including `sign`, and the string that was signed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedRequest {
    pub method: String,
    pub gateway_url: String,
    /// Sorted by name; includes `sign`.
    pub params: BTreeMap<String, String>,
    pub string_to_sign: String,
    /// Sending it twice is harmless (queries, refunds with the same `out_request_no`).
    pub idempotent: bool,
}

/// Signs `method` with `biz_content` (encrypted first when the config has an AES key).
pub fn build_request(
    config: &AlipayConfig,
    method: &str,
    biz_content: Option<&str>,
    opts: &CallOptions,
    now_unix: i64,
) -> Result<SignedRequest, AlipayError> {
    let mut params: BTreeMap<String, String> = BTreeMap::new();
    let mut put = |k: &str, v: Option<&str>| {
        // Some SDKs sign an empty field as `k=`: never send one.
        if let Some(v) = v.filter(|v| !v.is_empty()) {
            params.insert(k.to_string(), v.to_string());
        }
    };
    put("app_id", Some(&config.app_id));
    put("method", Some(method));
    put("format", Some("JSON"));
    put("charset", Some("utf-8"));
    put("sign_type", Some("RSA2"));
    put("timestamp", Some(&format_beijing(now_unix)));
    put("version", Some("1.0"));
    put("notify_url", opts.notify_url.as_deref());
    put("return_url", opts.return_url.as_deref());
    put("app_auth_token", opts.app_auth_token.as_deref());
    put("app_cert_sn", config.keys.app_cert_sn.as_deref());
    put(
        "alipay_root_cert_sn",
        config.keys.alipay_root_cert_sn.as_deref(),
    );
    match (biz_content, &config.aes_key) {
        (Some(biz), Some(key)) => {
            let encrypted = encrypt_content(key, biz)?;
            put("biz_content", Some(&encrypted));
            put("encrypt_type", Some("AES"));
        }
        (Some(biz), None) => put("biz_content", Some(biz)),
        (None, _) => {}
    }
    let (string_to_sign, sign) = sign_params(
        params.iter().map(|(k, v)| (k.as_str(), v.as_str())),
        &config.keys.app_key,
    )?;
    params.insert("sign".to_string(), sign);
    Ok(SignedRequest {
        method: method.to_string(),
        gateway_url: config.gateway_url.clone(),
        params,
        string_to_sign,
        idempotent: false,
    })
}

fn urlencode(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

fn html_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

impl SignedRequest {
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params.get(name).map(String::as_str)
    }

    /// `k=urlencode(v)&...` over every parameter (sign included), sorted.
    pub fn encoded_params(&self) -> String {
        let mut out = String::new();
        for (i, (k, v)) in self.params.iter().enumerate() {
            if i > 0 {
                out.push('&');
            }
            out.push_str(&urlencode(k));
            out.push('=');
            out.push_str(&urlencode(v));
        }
        out
    }

    /// The App SDK's order string (`alipay.trade.app.pay`): handed to the app as-is.
    pub fn order_string(&self) -> String {
        self.encoded_params()
    }

    /// The GET form of page/wap pay: gateway + every signed parameter in the query string.
    pub fn get_url(&self) -> String {
        let sep = if self.gateway_url.contains('?') {
            '&'
        } else {
            '?'
        };
        format!("{}{sep}{}", self.gateway_url, self.encoded_params())
    }

    fn action_url(&self) -> String {
        let sep = if self.gateway_url.contains('?') {
            '&'
        } else {
            '?'
        };
        format!("{}{sep}charset=utf-8", self.gateway_url)
    }

    /// The POST form of page/wap pay: an HTML form that submits itself on load.
    pub fn form_html(&self) -> String {
        let mut html = format!(
            "<form name=\"punchout_form\" method=\"post\" action=\"{}\">\n",
            html_escape(&self.action_url())
        );
        for (k, v) in &self.params {
            html.push_str(&format!(
                "<input type=\"hidden\" name=\"{}\" value=\"{}\">\n",
                html_escape(k),
                html_escape(v)
            ));
        }
        html.push_str("<input type=\"submit\" value=\"Pay\" style=\"display:none\">\n</form>\n");
        html.push_str("<script>document.forms[0].submit();</script>");
        html
    }

    /// The server-to-server POST (`application/x-www-form-urlencoded`, UTF-8).
    pub fn to_http_request(&self) -> HttpRequest {
        HttpRequest::new("POST", self.action_url())
            .header(
                "content-type",
                "application/x-www-form-urlencoded;charset=utf-8",
            )
            .header("accept", "application/json")
            .body(self.encoded_params().into_bytes())
            .idempotent(self.idempotent)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::api::testutil::{test_config, NOW};
    use crate::notify::NotifyForm;

    #[test]
    fn common_params_and_wire_forms() {
        let (config, _) = test_config();
        let opts = CallOptions {
            notify_url: Some("https://m.example/n?a=1&b=2".into()),
            return_url: None,
            app_auth_token: Some("tok".into()),
        };
        let req = build_request(
            &config,
            "alipay.trade.query",
            Some("{\"a\":\"<&>\"}"),
            &opts,
            NOW,
        )
        .unwrap();
        assert_eq!(
            req.string_to_sign,
            "app_auth_token=tok&app_id=2021000000000001&biz_content={\"a\":\"<&>\"}&charset=utf-8\
             &format=JSON&method=alipay.trade.query&notify_url=https://m.example/n?a=1&b=2\
             &sign_type=RSA2&timestamp=2026-11-26 20:00:00&version=1.0"
        );
        // The POST body decodes back to exactly the signed parameters.
        let http = req.to_http_request();
        assert_eq!(http.url, "https://gw.example/gateway.do?charset=utf-8");
        let form = NotifyForm::parse(&http.body).unwrap();
        assert_eq!(form.fields().len(), req.params.len());
        for (k, v) in &req.params {
            assert_eq!(form.get(k), Some(v.as_str()));
        }
        assert!(req
            .get_url()
            .starts_with("https://gw.example/gateway.do?app_auth_token=tok&"));
        let html = req.form_html();
        assert!(html.contains("value=\"{&quot;a&quot;:&quot;&lt;&amp;&gt;&quot;}\""));
        assert!(html.contains("document.forms[0].submit()"));
    }
}
