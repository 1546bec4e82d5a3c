//! Beijing-time formatting for expiry fields, without a calendar dependency.

/// China Standard Time, which both API versions write.
const CST_OFFSET_SECS: i64 = 8 * 3600;

/// (year, month, day, hour, minute, second) of a Unix time in UTC+8.
fn civil(unix: i64) -> (i64, u32, u32, u32, u32, u32) {
    let t = unix + CST_OFFSET_SECS;
    let days = t.div_euclid(86_400);
    let secs = t.rem_euclid(86_400);
    // Howard Hinnant's days-to-civil.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    let as_u32 = |v: i64| u32::try_from(v).unwrap_or(0);
    (
        y,
        as_u32(m),
        as_u32(d),
        as_u32(secs / 3600),
        as_u32(secs % 3600 / 60),
        as_u32(secs % 60),
    )
}

/// APIv2 `time_expire`: `yyyyMMddHHmmss` in Beijing time.
pub fn v2_time(unix: i64) -> String {
    let (y, mo, d, h, mi, s) = civil(unix);
    format!("{y:04}{mo:02}{d:02}{h:02}{mi:02}{s:02}")
}

/// APIv3 `time_expire`: RFC 3339 with the +08:00 offset.
pub fn v3_time(unix: i64) -> String {
    let (y, mo, d, h, mi, s) = civil(unix);
    format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}+08:00")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_in_beijing_time() {
        // 2021-06-24T08:37:26Z
        assert_eq!(v3_time(1_624_523_846), "2021-06-24T16:37:26+08:00");
        assert_eq!(v2_time(1_624_523_846), "20210624163726");
        assert_eq!(v2_time(951_782_400), "20000229080000");
    }
}
