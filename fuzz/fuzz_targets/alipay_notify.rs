//! Alipay asynchronous notifications: the form body as the notify endpoint receives it, with
//! the charset fallback from the `Content-Type` header, then verification and the typed view.
#![no_main]

use libfuzzer_sys::fuzz_target;
use paybridge_alipay::notify::{content_type_charset, NotifyForm, NotifyRule, TradeNotify};

fn check(form: &NotifyForm) {
    let fields = form.fields();
    assert!(!fields.is_empty(), "an empty form parsed");
    for (i, (k, _)) in fields.iter().enumerate() {
        assert!(
            fields[..i].iter().all(|(seen, _)| seen != k),
            "duplicate field {k:?} accepted"
        );
    }
    for rule in [NotifyRule::V1, NotifyRule::V2] {
        let _ = form.string_to_sign(rule);
        let _ = form.string_to_sign_keeping_empty(rule);
    }
    let ambiguous = form.ambiguous_field().is_some();
    let key = &paybridge_fuzz::rsa().1;
    let verified = form.verified_content(&[key]);
    // A form whose fields could be re-split is never verified; nothing here is signed by our
    // key, so nothing verifies at all.
    assert!(verified.is_none() || !ambiguous);
    assert!(verified.is_none(), "an unsigned form verified");
    if let Ok(n) = TradeNotify::from_form(form) {
        assert!(n.total_amount.as_i64() > 0);
        assert!(!n.out_trade_no.is_empty() && !n.trade_no.is_empty());
        let _ = n.is_refund();
    }
}

fuzz_target!(|data: &[u8]| {
    // First line: a Content-Type header value; the rest: the body.
    let (header, body) = paybridge_fuzz::split_line(data);
    let header = std::str::from_utf8(header).unwrap_or("");
    let fallback = content_type_charset(header);
    if let Ok(form) = NotifyForm::parse_with_fallback(body, fallback) {
        check(&form);
    }
    let Ok(form) = NotifyForm::parse(body) else {
        return;
    };
    check(&form);
    // Round trip: a form decoded as UTF-8, encoded again as UTF-8, decodes to the same fields.
    let utf8 = form
        .get("charset")
        .map(|c| c.trim())
        .map_or(true, |c| c.is_empty() || c.eq_ignore_ascii_case("utf-8"));
    if utf8 {
        let mut ser = form_urlencoded::Serializer::new(String::new());
        for (k, v) in form.fields() {
            ser.append_pair(k, v);
        }
        let again = NotifyForm::parse(ser.finish().as_bytes()).expect("re-encoded form parses");
        assert_eq!(again.fields(), form.fields());
    }
});
