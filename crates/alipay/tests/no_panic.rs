//! The notify parser and the response extractor see untrusted bytes: they must return errors,
//! never panic, on anything (random bytes, truncated JSON, huge fields).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use paybridge_alipay::notify::{NotifyForm, TradeNotify};
use paybridge_alipay::response::{extract_node, split_response};
use proptest::prelude::*;

const SAMPLE: &str = r#"{"alipay_trade_query_response":{"code":"10000","msg":"Su\"cc{ess","nested":{"a":[1,"}"]},"out_trade_no":"x\\"},"sign":"abc","alipay_cert_sn":"sn"}"#;
const FORM: &str = "charset=gbk&notify_id=1&app_id=2&trade_no=3&out_trade_no=4&trade_status=TRADE_SUCCESS&total_amount=1.00&subject=%D6%D0&sign=x";

fn exercise_response(raw: &str) {
    let _ = extract_node(raw, "alipay_trade_query_response");
    let _ = extract_node(raw, "error_response");
    let _ = split_response(raw, "alipay.trade.query");
}

fn exercise_form(body: &[u8]) {
    if let Ok(form) = NotifyForm::parse(body) {
        let _ = TradeNotify::from_form(&form);
        let _ = form.string_to_sign(paybridge_alipay::notify::NotifyRule::V1);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn response_random_text(raw in ".{0,300}") {
        exercise_response(&raw);
    }

    #[test]
    fn response_truncated(cut in 0usize..SAMPLE.len()) {
        exercise_response(&SAMPLE[..cut]);
    }

    #[test]
    fn response_json_alphabet(raw in r#"[{}\[\]":,\\ a-z_0-9]{0,200}"#) {
        let framed = format!("{{\"alipay_trade_query_response\":{raw}");
        exercise_response(&framed);
        exercise_response(&raw);
    }

    #[test]
    fn notify_random_bytes(body in proptest::collection::vec(any::<u8>(), 0..400)) {
        exercise_form(&body);
    }

    #[test]
    fn notify_truncated_and_mutated(cut in 0usize..FORM.len(), at in 0usize..FORM.len(), b in any::<u8>()) {
        let mut body = FORM.as_bytes()[..cut].to_vec();
        if at < body.len() {
            body[at] = b;
        }
        exercise_form(&body);
    }

    #[test]
    fn notify_form_alphabet(body in "[a-z_=&%+0-9A-F.]{0,300}") {
        exercise_form(body.as_bytes());
    }
}

#[test]
fn huge_fields() {
    let big = "{".repeat(200_000);
    exercise_response(&format!("{{\"alipay_trade_query_response\":{big}"));
    let long_string = "\\\"".repeat(100_000);
    exercise_response(&format!(
        "{{\"alipay_trade_query_response\":\"{long_string}"
    ));
    let body = format!(
        "total_amount={}&trade_status={}",
        "9".repeat(100_000),
        "%".repeat(100_000)
    );
    exercise_form(body.as_bytes());
    let form = NotifyForm::parse(FORM.as_bytes()).unwrap();
    assert!(TradeNotify::from_form(&form).is_ok());
}
