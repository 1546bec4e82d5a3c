//! The cashier's HTML (maud, compiled in). The page states what the gateway knows; the
//! embedded `cashier.js` keeps that live (countdown, status polling, the redirect once paid,
//! WeChat's JSAPI bridge).

use std::collections::BTreeMap;

use maud::{html, Markup, PreEscaped, DOCTYPE};
use paybridge_core::{Fen, Mode};
use paybridge_server::service::CashierState;
use qrcode::render::svg;
use qrcode::{EcLevel, QrCode};

use super::Client;
use crate::assets::asset_url;
use crate::i18n::Lang;

/// Something the page tells the buyer besides the order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Notice {
    /// Inside WeChat, but the merchant's WeChat account has no web authorization set up.
    WechatUnavailable,
    /// WeChat's web authorization did not give the buyer's openid.
    WechatAuthFailed,
    /// The wallet order exists but the provider's answer is not known yet.
    WalletPending,
    /// The wallet order could not be started.
    WalletFailed,
}

pub struct View<'a> {
    pub lang: Lang,
    pub state: &'a CashierState,
    pub client: Client,
    pub notice: Option<Notice>,
    /// Inside WeChat: the signed `getBrandWCPayRequest` parameters of the JSAPI order.
    pub wechat_params: Option<BTreeMap<String, String>>,
}

/// `¥12.34` from fen, exactly (integer arithmetic).
pub fn yuan(amount: Fen) -> String {
    let fen = amount.0;
    let sign = if fen < 0 { "-" } else { "" };
    let abs = fen.unsigned_abs();
    format!("¥{sign}{}.{:02}", abs / 100, abs % 100)
}

/// `mm:ss` (or `h:mm:ss`) left of `ms`, as the countdown first shows it.
fn remaining(ms: i64) -> String {
    let s = ms.max(0) / 1000;
    let (h, m, s) = (s / 3600, (s % 3600) / 60, s % 60);
    if h > 0 {
        format!("{h}:{m:02}:{s:02}")
    } else {
        format!("{m:02}:{s:02}")
    }
}

/// The cashier URL as a QR code, drawn here as SVG (no outside service).
fn qr_svg(url: &str) -> Option<String> {
    let code = QrCode::with_error_correction_level(url.as_bytes(), EcLevel::M).ok()?;
    Some(
        code.render::<svg::Color<'_>>()
            .min_dimensions(220, 220)
            .quiet_zone(true)
            .build(),
    )
}

fn shell(lang: Lang, title: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang=(lang.tag()) {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                meta name="referrer" content="no-referrer";
                title { (title) }
                link rel="stylesheet" href=(asset_url("base.css"));
                link rel="stylesheet" href=(asset_url("cashier.css"));
            }
            body { (body) }
        }
    }
}

pub fn missing(lang: Lang) -> Markup {
    let t = lang.text("Order not found", "订单不存在");
    shell(
        lang,
        t,
        html! {
            main.cashier { section.card { h1 { (t) } p { (lang.text(
                "This payment link is not valid. Ask the merchant for a new one.",
                "付款链接无效，请向商家索取新的链接。")) } } }
        },
    )
}

pub fn unavailable(lang: Lang) -> Markup {
    let t = lang.text("Temporarily unavailable", "暂时无法访问");
    shell(
        lang,
        t,
        html! {
            main.cashier { section.card { h1 { (t) } p { (lang.text(
                "The payment page cannot be shown right now. Please try again in a moment.",
                "付款页面暂时无法显示，请稍后重试。")) } } }
        },
    )
}

fn notice_text(lang: Lang, n: Notice) -> &'static str {
    match n {
        Notice::WechatUnavailable => lang.text(
            "WeChat Pay cannot be used inside WeChat for this order. Open the link in another browser.",
            "此订单无法在微信内支付，请在其他浏览器中打开链接。",
        ),
        Notice::WechatAuthFailed => lang.text(
            "WeChat did not confirm who is paying.",
            "未能获取微信授权。",
        ),
        Notice::WalletPending => lang.text(
            "The wallet has not confirmed the order yet. This page updates by itself.",
            "钱包尚未确认订单，本页面会自动更新。",
        ),
        Notice::WalletFailed => lang.text(
            "The payment could not be started. Reload the page to see where the order stands.",
            "无法发起支付，请刷新页面查看订单状态。",
        ),
    }
}

fn wallet_button(lang: Lang, token: &str, channel: &str) -> Markup {
    let (id, label, class) = match channel {
        "wechat" => (
            "pay-wechat",
            lang.text("Pay with WeChat Pay", "微信支付"),
            "wechat",
        ),
        _ => (
            "pay-alipay",
            lang.text("Pay with Alipay", "支付宝支付"),
            "alipay",
        ),
    };
    html! {
        form method="post" action={ "/cashier/" (token) "/pay" } {
            input type="hidden" name="channel" value=(channel);
            button.wallet.(class) id=(id) type="submit" { (label) }
        }
    }
}

fn open_section(v: &View<'_>) -> Markup {
    let lang = v.lang;
    let c = &v.state.cashier;
    let token = &c.token;
    let alipay = c.alipay_account.is_some();
    let wechat = c.wechat_account.is_some();
    match v.client {
        Client::Desktop => {
            let scan = match (alipay, wechat) {
                (true, true) => lang.text(
                    "Scan with WeChat or Alipay to pay",
                    "请使用微信或支付宝扫码支付",
                ),
                (true, false) => lang.text("Scan with Alipay to pay", "请使用支付宝扫码支付"),
                (false, _) => lang.text("Scan with WeChat to pay", "请使用微信扫码支付"),
            };
            html! {
                figure.qr id="qr" {
                    @if let Some(svg) = qr_svg(&v.state.url) { (PreEscaped(svg)) }
                    figcaption { (scan) }
                }
                ul.wallets {
                    @if wechat { li.wechat id="offer-wechat" { (lang.text("WeChat Pay", "微信支付")) } }
                    @if alipay { li.alipay id="offer-alipay" { (lang.text("Alipay", "支付宝")) } }
                }
            }
        }
        Client::Mobile => html! {
            p { (lang.text("Choose how to pay", "请选择支付方式")) }
            @if wechat { (wallet_button(lang, token, "wechat")) }
            @if alipay { (wallet_button(lang, token, "alipay")) }
        },
        Client::Alipay => html! {
            @if alipay {
                (wallet_button(lang, token, "alipay"))
            } @else {
                p { (lang.text(
                    "This order takes WeChat Pay only: open the link in WeChat.",
                    "此订单仅支持微信支付，请在微信中打开链接。")) }
            }
        },
        Client::Wechat => match &v.wechat_params {
            Some(params) => {
                let json = serde_json::to_string(params).unwrap_or_default();
                html! {
                    button.wallet.wechat id="pay-wechat" type="button" data-params=(json) {
                        (lang.text("Pay with WeChat Pay", "微信支付"))
                    }
                }
            }
            None if !wechat => html! {
                p { (lang.text(
                    "This order takes Alipay only: open the link in Alipay or another browser.",
                    "此订单仅支持支付宝，请在支付宝或其他浏览器中打开链接。")) }
            },
            None => html! {},
        },
    }
}

pub fn cashier(v: &View<'_>) -> Markup {
    let lang = v.lang;
    let s = v.state;
    let c = &s.cashier;
    let status = s.status.as_str();
    let title = lang.text("Checkout", "收银台");
    let hidden_unless = |want: &str| status != want;
    let body = html! {
        main.cashier id="cashier"
            data-status=(status)
            data-status-url={ "/cashier/" (c.token) "/status" }
            data-expires-at=(c.expires_at)
            data-now=(s.now_ms)
            data-text-expired=(lang.text("Expired", "已过期"))
            data-text-checking=(lang.text("Checking the payment…", "正在确认支付结果…")) {
            @if c.mode == Mode::Sandbox {
                p.sandbox id="sandbox-banner" { (lang.text("Sandbox: no real money moves", "沙箱环境：不涉及真实资金")) }
            }
            section.card {
                p.merchant id="merchant" { (c.merchant) }
                h1 id="subject" { (c.subject) }
                @if let Some(d) = &c.description { p.description { (d) } }
                p.amount id="amount" { (yuan(c.amount)) }
                p.countdown id="countdown-line" hidden[status != "open"] {
                    (lang.text("Pay within ", "剩余支付时间 "))
                    span id="countdown" { (remaining(c.expires_at - s.now_ms)) }
                }
            }
            section.card.state.paid id="state-paid" hidden[hidden_unless("paid")] {
                h2 { (lang.text("Payment received", "支付成功")) }
                p { (lang.text("Thank you. Taking you back to the merchant…", "感谢您的付款，正在返回商家…")) }
                @if let Some(url) = &c.return_url {
                    a id="return-link" href=(url) { (lang.text("Back to the merchant", "返回商家")) }
                }
            }
            section.card.state.expired id="state-expired" hidden[hidden_unless("expired")] {
                h2 { (lang.text("This order has expired", "订单已过期")) }
                p { (lang.text("It can no longer be paid. Ask the merchant for a new one.", "该订单已无法支付，请联系商家重新下单。")) }
            }
            section.card.state.open id="state-open" hidden[hidden_unless("open")] {
                @if status == "open" { (open_section(v)) }
                p.notice id="notice" { @if let Some(n) = v.notice { (notice_text(lang, n)) } }
                @if v.notice == Some(Notice::WechatAuthFailed) {
                    a id="retry" href=(s.url) { (lang.text("Try again", "重试")) }
                }
            }
        }
        script src=(asset_url("cashier.js")) {}
    };
    shell(lang, title, body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_are_exact() {
        assert_eq!(yuan(Fen(1)), "¥0.01");
        assert_eq!(yuan(Fen(1999)), "¥19.99");
        assert_eq!(yuan(Fen(10_000_000_000)), "¥100000000.00");
        assert_eq!(yuan(Fen(-5)), "¥-0.05");
    }

    #[test]
    fn countdown_starts_from_what_is_left() {
        assert_eq!(remaining(61_500), "01:01");
        assert_eq!(remaining(-1), "00:00");
        assert_eq!(remaining(7_200_000), "2:00:00");
    }

    #[test]
    fn the_qr_code_is_an_svg_of_the_url() {
        let svg = qr_svg("https://pay.example/cashier/abc").unwrap_or_default();
        assert!(svg.contains("<svg"), "{svg}");
    }
}
