//! Alipay's clock format: `yyyy-MM-dd HH:mm:ss` in Beijing time (UTC+8), and the injectable clock.

use time::macros::{format_description, offset};
use time::{OffsetDateTime, PrimitiveDateTime, UtcOffset};

const BEIJING: UtcOffset = offset!(+8);

/// The source of "now"; tests inject a fixed one.
pub trait Clock: Send + Sync {
    fn now_unix(&self) -> i64;
}

#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_unix(&self) -> i64 {
        OffsetDateTime::now_utc().unix_timestamp()
    }
}

#[derive(Debug, Clone, Copy)]
pub struct FixedClock(pub i64);

impl Clock for FixedClock {
    fn now_unix(&self) -> i64 {
        self.0
    }
}

/// Formats unix seconds as Beijing `yyyy-MM-dd HH:mm:ss`; out-of-range input clamps to epoch.
pub fn format_beijing(unix: i64) -> String {
    let fmt = format_description!("[year]-[month]-[day] [hour]:[minute]:[second]");
    OffsetDateTime::from_unix_timestamp(unix)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
        .to_offset(BEIJING)
        .format(&fmt)
        .unwrap_or_default()
}

/// Parses a Beijing `yyyy-MM-dd HH:mm:ss` into unix seconds.
pub fn parse_beijing(text: &str) -> Option<i64> {
    let fmt = format_description!("[year]-[month]-[day] [hour]:[minute]:[second]");
    PrimitiveDateTime::parse(text.trim(), &fmt)
        .ok()
        .map(|t| t.assume_offset(BEIJING).unix_timestamp())
}

/// A provider time: the text as Alipay wrote it and the instant it denotes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlipayTime {
    pub text: String,
    pub unix: i64,
}

impl AlipayTime {
    pub fn parse(text: &str) -> Option<AlipayTime> {
        parse_beijing(text).map(|unix| AlipayTime {
            text: text.to_string(),
            unix,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn beijing_round_trip() {
        // 2023-12-21 06:54:37 +08:00
        let unix = 1_703_112_877;
        assert_eq!(format_beijing(unix), "2023-12-21 06:54:37");
        assert_eq!(parse_beijing("2023-12-21 06:54:37"), Some(unix));
        assert_eq!(parse_beijing("2023-12-21T06:54:37"), None);
        assert_eq!(parse_beijing(""), None);
    }
}
