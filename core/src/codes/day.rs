//! Days as the schema writes them: `YYYY-MM-DD`.

use chrono::NaiveDate;

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
}
