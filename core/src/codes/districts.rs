//! The names of administrative divisions (行政区划代码, GB/T 2260), from the table shipped
//! with the core (`core/data/districts.tsv`, its source and how to extend it in its
//! header), so that people read 黄浦区 where the records hold 310101.

use std::sync::LazyLock;

use super::ids::DistrictCode;

/// The table as shipped: a header of `#` comments, then one `code<TAB>name` a line.
const SOURCE: &str = include_str!("../../data/districts.tsv");

/// The table, parsed once and sorted by code.
static TABLE: LazyLock<Vec<(&'static str, &'static str)>> = LazyLock::new(|| {
    let mut rows: Vec<_> = rows(SOURCE)
        .map(|row| row.expect("core/data/districts.tsv is checked by this module's tests"))
        .collect();
    rows.sort_unstable();
    rows
});

/// Every division the table names, as `(code, name)`, sorted by code.
pub fn districts() -> &'static [(&'static str, &'static str)] {
    &TABLE
}

/// The name of the division `code` (`"310101"` → `黄浦区`), or `None` when the table does
/// not know it.
pub fn district_name(code: &str) -> Option<&'static str> {
    let table = districts();
    table
        .binary_search_by(|(c, _)| (*c).cmp(code))
        .ok()
        .map(|i| table[i].1)
}

/// What people read for the division `code`: its name (`黄浦区`), or the code itself when
/// the table does not know it.
pub fn district_label(code: &str) -> &str {
    district_name(code).unwrap_or(code)
}

/// The name with the code beside it, as an official expects in exports and tables
/// (`黄浦区（310101）`); the code alone when the table does not know it.
pub fn district_with_code(code: &str) -> String {
    match district_name(code) {
        Some(name) => format!("{name}（{code}）"),
        None => code.to_owned(),
    }
}

/// The rows of `text`: `(code, name)` or what is wrong with a line, by line number.
fn rows(text: &'static str) -> impl Iterator<Item = Result<(&'static str, &'static str), String>> {
    text.lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty() && !line.starts_with('#'))
        .map(|(i, line)| {
            let number = i + 1;
            let (code, name) = line
                .split_once('\t')
                .ok_or_else(|| format!("line {number}: {line:?} is not `code<TAB>name`"))?;
            code.parse::<DistrictCode>()
                .map_err(|e| format!("line {number}: {e}"))?;
            if code != code.trim() || code.len() != 6 {
                return Err(format!("line {number}: {code:?} has spaces around it"));
            }
            let name = name.trim();
            if name.is_empty() || name.contains('\t') {
                return Err(format!(
                    "line {number}: {code} needs one name after one tab"
                ));
            }
            Ok((code, name))
        })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    #[test]
    fn known_codes_are_named() {
        for (code, name) in [
            ("310000", "上海市"),
            ("310101", "黄浦区"),
            ("310104", "徐汇区"),
            ("310106", "静安区"),
            ("310115", "浦东新区"),
            ("310151", "崇明区"),
        ] {
            assert_eq!(district_name(code), Some(name), "{code}");
            assert_eq!(district_label(code), name, "{code}");
            assert_eq!(district_with_code(code), format!("{name}（{code}）"));
            let parsed: DistrictCode = code.parse().expect("valid code");
            assert_eq!(parsed.name(), Some(name));
            assert_eq!(parsed.label(), name);
            assert_eq!(parsed.name_with_code(), format!("{name}（{code}）"));
        }
    }

    #[test]
    fn unknown_codes_fall_back_to_the_code() {
        // 310108 was 闸北区 until it merged into 静安区 in 2015; 650102 is not in the table.
        for code in ["310108", "650102", "", "not a code"] {
            assert_eq!(district_name(code), None, "{code}");
            assert_eq!(district_label(code), code);
            assert_eq!(district_with_code(code), code);
        }
        let parsed: DistrictCode = "650102".parse().expect("valid code");
        assert_eq!(parsed.name(), None);
        assert_eq!(parsed.label(), "650102");
        assert_eq!(parsed.name_with_code(), "650102");
    }

    #[test]
    fn the_table_holds_each_valid_code_once() {
        let mut seen = BTreeSet::new();
        for row in rows(SOURCE) {
            let (code, name) = row.unwrap_or_else(|e| panic!("core/data/districts.tsv {e}"));
            assert!(code.parse::<DistrictCode>().is_ok(), "{code}");
            assert!(!name.is_empty(), "{code}");
            assert!(seen.insert(code), "{code} appears twice");
        }
        assert_eq!(districts().len(), seen.len());
        // The whole of 上海市: the city and its sixteen districts.
        assert_eq!(
            districts()
                .iter()
                .filter(|(c, _)| c.starts_with("31"))
                .count(),
            17
        );
    }

    #[test]
    fn malformed_lines_are_reported_by_number() {
        let check = |text: &'static str, says: &str| {
            let err = rows(text)
                .find_map(Result::err)
                .unwrap_or_else(|| panic!("{text:?} should fail"));
            assert!(err.contains(says), "{text:?}: {err}");
        };
        check("# header\n310101 黄浦区\n", "line 2");
        check("310101\t\n", "needs one name");
        check("990101\t某区\n", "province");
        check("31010\t某区\n", "6 digits");
        check("310101\t黄浦区\t多余\n", "needs one name");
    }
}
