//! Small pieces both API versions' channels share.

use paybridge_core::channel::{
    ChannelError, PaymentSnapshot, ProviderPaymentStatus, ProviderRefundStatus, RefundSnapshot,
};

pub(crate) fn bad(e: impl std::fmt::Display) -> ChannelError {
    ChannelError::BadNotification(e.to_string())
}

/// What a query answers when WeChat does not know the order (`word` is its error code).
pub(crate) fn payment_not_found(out_trade_no: &str, word: &str) -> PaymentSnapshot {
    PaymentSnapshot {
        out_trade_no: out_trade_no.to_string(),
        provider_trade_no: None,
        status: ProviderPaymentStatus::NotFound,
        provider_status: word.to_string(),
        amount: None,
        paid_amount: None,
        paid_at: None,
        payer_id: None,
    }
}

pub(crate) fn refund_not_found(out_refund_no: &str, word: &str) -> RefundSnapshot {
    RefundSnapshot {
        out_refund_no: out_refund_no.to_string(),
        provider_refund_no: None,
        status: ProviderRefundStatus::NotFound,
        provider_status: word.to_string(),
        amount: None,
        succeeded_at: None,
    }
}

/// RFC 3986 unreserved characters kept, everything else percent-encoded.
pub(crate) fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// H5 pages return the buyer to `redirect_url` (URL-encoded) after paying.
pub(crate) fn with_redirect(url: String, return_url: Option<&str>) -> String {
    match return_url {
        Some(r) => {
            let sep = if url.contains('?') { '&' } else { '?' };
            format!("{url}{sep}redirect_url={}", percent_encode(r))
        }
        None => url,
    }
}
