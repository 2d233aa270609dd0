//! Identifiers that carry their own rules: parsed once at the edge, valid afterwards.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::error::{Error, Result};

/// The 31 characters a unified social credit code may use (GB 32100-2015): digits and
/// upper-case letters without I, O, Z, S and V.
const CREDIT_CODE_CHARSET: &[u8; 31] = b"0123456789ABCDEFGHJKLMNPQRTUWXY";

/// Weights of the first 17 characters in the check-character computation (3^i mod 31).
const CREDIT_CODE_WEIGHTS: [u32; 17] = [
    1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28,
];

/// Whether `s` is a hex SHA-256 (64 lower-case hex digits), as blobs are named.
pub fn is_sha256(s: &str) -> bool {
    s.len() == 64
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// A unified social credit code (统一社会信用代码): 18 characters whose last one is a check
/// character computed over the first 17 (GB 32100-2015).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct CreditCode(String);

impl CreditCode {
    /// The code as its 18 characters.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The check character a code whose first 17 characters are `body` must end with.
    /// Returns `None` when `body` is not 17 characters of the code's alphabet.
    pub fn check_character(body: &str) -> Option<char> {
        let bytes = body.as_bytes();
        if bytes.len() != 17 {
            return None;
        }
        let mut sum = 0u32;
        for (byte, weight) in bytes.iter().zip(CREDIT_CODE_WEIGHTS) {
            let value = CREDIT_CODE_CHARSET.iter().position(|c| c == byte)?;
            sum += value as u32 * weight;
        }
        let check = (31 - sum % 31) % 31;
        Some(char::from(CREDIT_CODE_CHARSET[check as usize]))
    }

    /// The administrative district code embedded in characters 3 to 8.
    pub fn registration_district(&self) -> &str {
        &self.0[2..8]
    }
}

impl FromStr for CreditCode {
    type Err = Error;

    fn from_str(input: &str) -> Result<Self> {
        let code = input.trim().to_ascii_uppercase();
        let invalid = |message: String| Error::invalid("credit_code", message);
        if code.chars().count() != 18 {
            return Err(invalid(format!(
                "统一社会信用代码 must be 18 characters, got {} ({input:?})",
                code.chars().count()
            )));
        }
        if let Some(bad) = code.bytes().find(|b| !CREDIT_CODE_CHARSET.contains(b)) {
            return Err(invalid(format!(
                "{input:?} contains {:?}, which a credit code never uses (I, O, Z, S, V and lower-case letters are not allowed)",
                char::from(bad)
            )));
        }
        if !code.as_bytes()[2..8].iter().all(u8::is_ascii_digit) {
            return Err(invalid(format!(
                "characters 3 to 8 of {input:?} must be the 6-digit district code"
            )));
        }
        let expected = Self::check_character(&code[..17])
            .expect("17 characters of the alphabet, checked above");
        let found = char::from(code.as_bytes()[17]);
        if found != expected {
            return Err(invalid(format!(
                "check character of {input:?} is {found}, but the first 17 characters require {expected}; check the code for a typing error"
            )));
        }
        Ok(Self(code))
    }
}

impl TryFrom<String> for CreditCode {
    type Error = Error;
    fn try_from(value: String) -> Result<Self> {
        value.parse()
    }
}

impl From<CreditCode> for String {
    fn from(code: CreditCode) -> Self {
        code.0
    }
}

impl fmt::Display for CreditCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Province-level prefixes of administrative district codes (GB/T 2260).
const PROVINCE_PREFIXES: &[&str] = &[
    "11", "12", "13", "14", "15", "21", "22", "23", "31", "32", "33", "34", "35", "36", "37", "41",
    "42", "43", "44", "45", "46", "50", "51", "52", "53", "54", "61", "62", "63", "64", "65", "71",
    "81", "82",
];

/// A 6-digit administrative district code (行政区划代码, GB/T 2260), e.g. `310101`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct DistrictCode(String);

impl DistrictCode {
    /// The code as its six digits.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The division's name (`黄浦区` for 310101), or `None` when the table of districts
    /// shipped with the core does not know the code.
    pub fn name(&self) -> Option<&'static str> {
        super::districts::district_name(&self.0)
    }

    /// What people read: the name, or the code itself when the table does not know it.
    pub fn label(&self) -> &str {
        super::districts::district_label(&self.0)
    }

    /// The name with the code beside it (`黄浦区（310101）`), as in exports and tables; the
    /// code alone when the table does not know it.
    pub fn name_with_code(&self) -> String {
        super::districts::district_with_code(&self.0)
    }
}

impl FromStr for DistrictCode {
    type Err = Error;

    fn from_str(input: &str) -> Result<Self> {
        let code = input.trim();
        if code.len() != 6 || !code.bytes().all(|b| b.is_ascii_digit()) {
            return Err(Error::invalid(
                "district",
                format!("行政区划代码 must be 6 digits, got {input:?}"),
            ));
        }
        if !PROVINCE_PREFIXES.contains(&&code[..2]) {
            return Err(Error::invalid(
                "district",
                format!("{input:?} does not start with a province code (11 to 82)"),
            ));
        }
        Ok(Self(code.to_owned()))
    }
}

impl TryFrom<String> for DistrictCode {
    type Error = Error;
    fn try_from(value: String) -> Result<Self> {
        value.parse()
    }
}

impl From<DistrictCode> for String {
    fn from(code: DistrictCode) -> Self {
        code.0
    }
}

impl fmt::Display for DistrictCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Where an id bound to its device (`bound_id`) holds the device's tag: every byte of the
/// UUID but those with its version (6) and variant (8) bits, and the last four, random.
const TAG_AT: [usize; 10] = [0, 1, 2, 3, 4, 5, 7, 9, 10, 11];

/// The first ten bytes of the SHA-256 of a device's Automerge actor id.
fn device_tag(actor: &[u8]) -> [u8; 10] {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(actor);
    let mut tag = [0; 10];
    tag.copy_from_slice(&digest[..10]);
    tag
}

/// An id of a record made by the device `actor` (a case, a finding, a checklist, a
/// document), from `random`: a version-8 UUID holding the device's tag (80 bits) and 42
/// bits of `random`. The rule book lets no other device make a record under it
/// (`made_by`), so that a teammate who saw the id on site cannot take it first.
pub fn bound_id(random: Uuid, actor: &[u8]) -> Uuid {
    let mut bytes = *random.as_bytes();
    for (at, byte) in TAG_AT.into_iter().zip(device_tag(actor)) {
        bytes[at] = byte;
    }
    uuid::Builder::from_custom_bytes(bytes).into_uuid()
}

/// Whether the device `actor` may make a record under `id`: one bound to a device
/// (version 8) only by that device; any other (the random ids made before) by any.
pub fn made_by(id: Uuid, actor: &[u8]) -> bool {
    if id.get_version_num() != 8 {
        return true;
    }
    let bytes = id.as_bytes();
    TAG_AT
        .into_iter()
        .zip(device_tag(actor))
        .all(|(at, byte)| bytes[at] == byte)
}

macro_rules! uuid_id {
    ($(#[$doc:meta])* $name:ident, $field:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(Uuid);

        impl $name {
            /// A new random id.
            pub fn new() -> Self {
                Self(Uuid::new_v4())
            }

            /// The underlying UUID.
            pub fn uuid(&self) -> Uuid {
                self.0
            }

            /// The id holding this UUID.
            pub fn from_uuid(uuid: Uuid) -> Self {
                Self(uuid)
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl FromStr for $name {
            type Err = Error;
            fn from_str(input: &str) -> Result<Self> {
                Uuid::parse_str(input.trim())
                    .map(Self)
                    .map_err(|_| Error::invalid($field, format!("{input:?} is not a UUID")))
            }
        }

        impl TryFrom<String> for $name {
            type Error = Error;
            fn try_from(value: String) -> Result<Self> {
                value.parse()
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> Self {
                id.0.to_string()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }
    };
}

uuid_id!(
    /// The id of a case (one inspection visit); also the id of its Automerge document.
    CaseId,
    "case_id"
);
uuid_id!(
    /// The id of a finding within its case.
    FindingId,
    "finding_id"
);
uuid_id!(
    /// The id of one checklist attached to a case (a case may carry the same template
    /// twice, e.g. for two hot-work sites).
    ChecklistId,
    "checklist_id"
);
uuid_id!(
    /// The id of an enforcement document (执法文书) within its case.
    WritId,
    "writ_id"
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_id_bound_to_a_device_is_made_by_that_device_alone() {
        let (ours, theirs) = (b"phone-a".as_slice(), b"phone-b".as_slice());
        let random = Uuid::new_v4();
        let id = bound_id(random, ours);
        assert_eq!(id.get_version_num(), 8);
        assert_eq!(id.get_variant(), uuid::Variant::RFC4122);
        assert!(made_by(id, ours));
        assert!(!made_by(id, theirs));
        assert_ne!(bound_id(Uuid::new_v4(), ours), id, "random bits remain");
        assert!(made_by(random, theirs), "a random id binds no device");
        let parsed: FindingId = id.to_string().parse().expect("a UUID like any");
        assert_eq!(parsed.uuid(), id);
    }

    fn with_check(body: &str) -> String {
        let check = CreditCode::check_character(body).expect("valid body");
        format!("{body}{check}")
    }

    #[test]
    fn published_credit_codes_are_accepted() {
        // Codes printed on public business licences.
        for code in [
            "914403001922038216",
            "91440300708461136T",
            "91330100799655058B",
            "91110108551385082Q",
        ] {
            let parsed: CreditCode = code.parse().expect(code);
            assert_eq!(parsed.as_str(), code);
        }
    }

    #[test]
    fn credit_code_with_wrong_check_character_is_rejected_with_the_expected_one() {
        let good = with_check("91310101MA1FPX0Y2");
        assert!(good.parse::<CreditCode>().is_ok());
        let last = good.chars().last().expect("18 chars");
        let wrong = if last == '0' { '1' } else { '0' };
        let bad = format!("{}{wrong}", &good[..17]);
        let err = bad
            .parse::<CreditCode>()
            .expect_err("wrong check character");
        assert!(
            err.to_string().contains(&format!("require {last}")),
            "{err}"
        );
    }

    #[test]
    fn credit_code_shape_errors_say_what_is_wrong() {
        let check = |input: &str, needle: &str| {
            let err = input.parse::<CreditCode>().expect_err(input);
            assert!(err.to_string().contains(needle), "{input}: {err}");
        };
        check("", "18 characters");
        check("9131010MA1FPX0Y2", "18 characters");
        check("91310101MA1FPX0YIO", "never uses");
        check("91AB0101MA1FPX0Y2X", "6-digit district");
    }

    #[test]
    fn lower_case_credit_code_is_normalised() {
        let good = with_check("91310101MA1FPX0Y2");
        let parsed: CreditCode = good.to_lowercase().parse().expect("normalised");
        assert_eq!(parsed.as_str(), good);
        assert_eq!(parsed.registration_district(), "310101");
    }

    #[test]
    fn district_codes_need_six_digits_and_a_province() {
        assert!("310101".parse::<DistrictCode>().is_ok());
        assert!("650102".parse::<DistrictCode>().is_ok());
        for bad in ["", "31010", "3101011", "31010a", "990101", "000000"] {
            assert!(bad.parse::<DistrictCode>().is_err(), "{bad}");
        }
    }

    #[test]
    fn ids_round_trip_through_strings() {
        let id = CaseId::new();
        assert_eq!(id.to_string().parse::<CaseId>().expect("round trip"), id);
        assert!("not-a-uuid".parse::<FindingId>().is_err());
    }
}
