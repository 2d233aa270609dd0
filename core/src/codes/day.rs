//! Days as the schema writes them (`YYYY-MM-DD`), and the day a moment falls on.
//!
//! The product's days are days in China (UTC+8, no daylight saving): a visit's day, a
//! deadline, the day a step was taken, a bulletin's period. A device writes times with the
//! offset its clock shows, almost always +08:00; a phone set to another zone writes the
//! same moment under another date. Every day the product derives from a time is the day
//! in China (`day_in_china`), and every time it stores to compare or sort as text is
//! written in China's offset (`in_china`), so that text order is time order.

use chrono::{DateTime, FixedOffset, NaiveDate, TimeZone};

/// China's time: UTC+8.
pub fn china() -> FixedOffset {
    FixedOffset::east_opt(8 * 3600).expect("+08:00 is a valid offset")
}

/// The moment `t` as a clock in China shows it.
pub fn in_china<Tz: TimeZone>(t: &DateTime<Tz>) -> DateTime<FixedOffset> {
    t.with_timezone(&china())
}

/// The day in China at the moment `t`, whatever offset it was written with.
pub fn day_in_china<Tz: TimeZone>(t: &DateTime<Tz>) -> NaiveDate {
    in_china(t).date_naive()
}

/// The day `text` names, if it is written `YYYY-MM-DD` (a four-digit year) and exists.
/// chrono's own parsing also reads signed years of up to six digits (`+12026-01-01`,
/// `-0001-12-31`), which no app writes and which are not days in the `date` format the
/// server's API promises.
pub fn parse_day(text: &str) -> Option<NaiveDate> {
    let bytes = text.as_bytes();
    let shaped = bytes.len() == 10
        && bytes.iter().enumerate().all(|(i, b)| match i {
            4 | 7 => *b == b'-',
            _ => b.is_ascii_digit(),
        });
    if shaped { text.parse().ok() } else { None }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_days_written_yyyy_mm_dd_are_days() {
        for (text, day) in [
            ("2026-12-01", NaiveDate::from_ymd_opt(2026, 12, 1)),
            ("0000-01-01", NaiveDate::from_ymd_opt(0, 1, 1)),
            ("9999-12-31", NaiveDate::from_ymd_opt(9999, 12, 31)),
            ("2026-02-30", None),
            ("2026-1-01", None),
            ("+12026-01-01", None),
            ("-0001-12-31", None),
            ("2026-12-01 ", None),
            ("2026/12/01", None),
            ("", None),
        ] {
            assert_eq!(parse_day(text), day, "{text:?}");
        }
    }

    #[test]
    fn a_moment_falls_on_its_day_in_china_whatever_its_offset() {
        for (time, day) in [
            ("2026-12-05T23:59:59+08:00", "2026-12-05"),
            ("2026-12-06T00:00:00+08:00", "2026-12-06"),
            // The same moments on a phone whose clock shows UTC, or another zone.
            ("2026-12-05T15:59:59Z", "2026-12-05"),
            ("2026-12-05T16:00:00Z", "2026-12-06"),
            ("2026-12-05T11:00:00-05:00", "2026-12-06"),
            ("2026-12-06T07:30:00+14:00", "2026-12-06"),
            ("2026-12-06T01:59:00+14:00", "2026-12-05"),
        ] {
            let t = DateTime::parse_from_rfc3339(time).expect("time");
            assert_eq!(day_in_china(&t).to_string(), day, "{time}");
            assert_eq!(in_china(&t), t, "{time}: the same moment");
            assert_eq!(in_china(&t).offset(), &china(), "{time}");
        }
    }
}
