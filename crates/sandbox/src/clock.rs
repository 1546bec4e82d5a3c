//! Injected time: the sandbox never reads the system clock directly, so tests drive expiry and
//! notification retries by moving a [`ManualClock`] instead of sleeping.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use time::{format_description::FormatItem, macros::format_description, OffsetDateTime, UtcOffset};

/// Unix time in milliseconds.
pub type Millis = i64;

pub trait Clock: Send + Sync {
    fn now_ms(&self) -> Millis;
}

/// Wall-clock time, for the standalone sandbox.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> Millis {
        let now = OffsetDateTime::now_utc();
        (now.unix_timestamp_nanos() / 1_000_000) as i64
    }
}

/// A clock that only moves when told to. Clones share the same time.
#[derive(Debug, Clone)]
pub struct ManualClock(Arc<AtomicI64>);

impl ManualClock {
    pub fn new(start_ms: Millis) -> Self {
        ManualClock(Arc::new(AtomicI64::new(start_ms)))
    }

    pub fn set(&self, ms: Millis) {
        self.0.store(ms, Ordering::SeqCst);
    }

    pub fn advance(&self, ms: Millis) -> Millis {
        self.0.fetch_add(ms, Ordering::SeqCst) + ms
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> Millis {
        self.0.load(Ordering::SeqCst)
    }
}

const BEIJING: UtcOffset = match UtcOffset::from_hms(8, 0, 0) {
    Ok(o) => o,
    Err(_) => UtcOffset::UTC,
};

const ALIPAY_TIME: &[FormatItem<'static>] =
    format_description!("[year]-[month]-[day] [hour]:[minute]:[second]");
const WECHAT_V2_TIME: &[FormatItem<'static>] =
    format_description!("[year][month][day][hour][minute][second]");
const RFC3339_BEIJING: &[FormatItem<'static>] =
    format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]+08:00");
const DATE: &[FormatItem<'static>] = format_description!("[year]-[month]-[day]");

fn beijing(ms: Millis) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(ms.div_euclid(1000))
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
        .to_offset(BEIJING)
}

/// `yyyy-MM-dd HH:mm:ss` in Beijing time, as Alipay writes times.
pub fn alipay_time(ms: Millis) -> String {
    beijing(ms).format(ALIPAY_TIME).unwrap_or_default()
}

/// `yyyyMMddHHmmss` in Beijing time (WeChat APIv2 `time_end`).
pub fn wechat_v2_time(ms: Millis) -> String {
    beijing(ms).format(WECHAT_V2_TIME).unwrap_or_default()
}

/// RFC 3339 with the +08:00 offset (WeChat APIv3 `success_time`).
pub fn rfc3339_beijing(ms: Millis) -> String {
    beijing(ms).format(RFC3339_BEIJING).unwrap_or_default()
}

/// The Beijing calendar day of an instant, `yyyy-MM-dd` (bills are per Beijing day).
pub fn beijing_date(ms: Millis) -> String {
    beijing(ms).format(DATE).unwrap_or_default()
}

/// Parses `yyyyMMddHHmmss` (Beijing) into unix ms.
pub fn parse_wechat_v2_time(text: &str) -> Option<Millis> {
    let pdt = time::PrimitiveDateTime::parse(text, WECHAT_V2_TIME).ok()?;
    Some(pdt.assume_offset(BEIJING).unix_timestamp() * 1000)
}

/// Parses an RFC 3339 time (WeChat APIv3 `time_expire`) into unix ms.
pub fn parse_rfc3339(text: &str) -> Option<Millis> {
    let dt = OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339).ok()?;
    Some(dt.unix_timestamp() * 1000)
}

/// Parses `yyyy-MM-dd HH:mm:ss` (Beijing) into unix ms (Alipay `time_expire`).
pub fn parse_alipay_time(text: &str) -> Option<Millis> {
    let pdt = time::PrimitiveDateTime::parse(text, ALIPAY_TIME).ok()?;
    Some(pdt.assume_offset(BEIJING).unix_timestamp() * 1000)
}

/// Start (inclusive) and end (exclusive) unix ms of a Beijing day given as `yyyy-MM-dd`.
pub fn beijing_day_bounds(date: &str) -> Option<(Millis, Millis)> {
    let d = time::Date::parse(date, DATE).ok()?;
    let start = d.midnight().assume_offset(BEIJING).unix_timestamp() * 1000;
    Some((start, start + 86_400_000))
}

/// Alipay `timeout_express`: `90m`, `2h`, `1d`, `1c` (until the end of the Beijing day).
/// Alipay accepts 1m..15d.
pub fn parse_timeout_express(text: &str, now: Millis) -> Option<Millis> {
    // Split on a character boundary: the unit may be any (hostile) character.
    let (cut, _) = text.char_indices().last()?;
    let (num, unit) = text.split_at(cut);
    let n: i64 = num.parse().ok()?;
    if n <= 0 || n > 100_000 {
        return None;
    }
    let ms = match unit {
        "m" => n * 60_000,
        "h" => n * 3_600_000,
        "d" => n * 86_400_000,
        "c" => {
            let (_, end) = beijing_day_bounds(&beijing_date(now))?;
            return Some(end);
        }
        _ => return None,
    };
    if ms > 15 * 86_400_000 {
        return None;
    }
    Some(now + ms)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn formats_in_beijing_time() {
        // 2024-01-01T00:00:00Z is 08:00 in Beijing.
        let ms = 1_704_067_200_000;
        assert_eq!(alipay_time(ms), "2024-01-01 08:00:00");
        assert_eq!(wechat_v2_time(ms), "20240101080000");
        assert_eq!(rfc3339_beijing(ms), "2024-01-01T08:00:00+08:00");
        assert_eq!(parse_wechat_v2_time("20240101080000"), Some(ms));
        assert_eq!(parse_alipay_time("2024-01-01 08:00:00"), Some(ms));
        assert_eq!(parse_rfc3339("2024-01-01T08:00:00+08:00"), Some(ms));
        assert_eq!(beijing_date(ms - 8 * 3_600_000 - 1), "2023-12-31");
    }

    #[test]
    fn timeout_express_units() {
        let now = 1_704_067_200_000;
        assert_eq!(parse_timeout_express("90m", now), Some(now + 5_400_000));
        assert_eq!(parse_timeout_express("2h", now), Some(now + 7_200_000));
        assert_eq!(parse_timeout_express("16d", now), None);
        assert_eq!(parse_timeout_express("x", now), None);
        assert_eq!(parse_timeout_express("", now), None);
        assert_eq!(parse_timeout_express("1分", now), None);
        assert_eq!(parse_timeout_express("99999999999999m", now), None);
        // "1c" closes at the next Beijing midnight.
        assert_eq!(parse_timeout_express("1c", now), Some(now + 16 * 3_600_000));
    }

    #[test]
    fn manual_clock_moves_only_when_told() {
        let c = ManualClock::new(5);
        assert_eq!(c.now_ms(), 5);
        assert_eq!(c.advance(10), 15);
        assert_eq!(c.clone().now_ms(), 15);
    }
}
