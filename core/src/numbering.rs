//! Document numbers issued offline (docs/decisions/0004): the server allocates each device
//! blocks of numbers per document kind and year while it has signal, and signs each block
//! with its key; the device issues from its blocks with no signal, and every seal names
//! the block its number came from, so that the server and every teammate's phone check,
//! with the server's public key alone, that the number was allocated to the key that
//! signed the seal.
//!
//! A block is bound to a device's signing key, not only to the device: a store restored
//! from a backup makes a new key (the key is never in a backup), so it cannot reuse the
//! blocks it had, whose numbers it may already have issued after the backup was made.
//!
//! A number reads `（沪黄）应急责改〔2026〕0012号`: the district's abbreviation and the
//! department's (the block's prefix), the kind's abbreviation, the year and the sequence.

use crate::codes::{DistrictCode, WritKind};
use crate::error::{Error, Result};
use crate::signing::{KeyId, PublicKey, Signer};

/// What precedes a block's body in the bytes the server signs.
pub const BLOCK_CONTEXT: &[u8] = b"anjian number block v1\n";

/// The format name, a block's first line.
pub const BLOCK_FORMAT: &str = "anjian-numbers/1";

/// What the printed number of a provisional document starts with.
pub const PROVISIONAL_MARK: &str = "（临时）";

/// Characters a document number written by hand or by a device may hold (a provisional
/// number, a listing's 文号): far more than any (（临时）责改〔2026〕3f9a0c21号 holds 22),
/// and few enough for the registers that index them.
pub const MAX_NUMBER_CHARS: usize = 64;

/// A block of numbers the server allocated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NumberBlock {
    /// The district's and department's abbreviations: `（沪黄）应急`.
    pub prefix: String,
    /// The kind of document the numbers are for.
    pub kind: WritKind,
    /// The year the numbers are for.
    pub year: i32,
    /// The first sequence number of the block.
    pub first: u32,
    /// The last sequence number of the block (inclusive).
    pub last: u32,
    /// The device (actor id, hex) the block was allocated to.
    pub actor: String,
    /// The key id of the device key the block is bound to.
    pub key: KeyId,
    /// When it was allocated (unix seconds, server time).
    pub issued_at: i64,
    /// The key id of the server key that signs it.
    pub issuer: KeyId,
}

impl NumberBlock {
    /// The document number with sequence `n`.
    pub fn number(&self, n: u32) -> String {
        format!(
            "{}{}〔{}〕{n:04}号",
            self.prefix,
            self.kind.abbreviation(),
            self.year
        )
    }

    /// The sequence of `number` if it is one of this block's.
    pub fn sequence_of(&self, number: &str) -> Option<u32> {
        let head = format!(
            "{}{}〔{}〕",
            self.prefix,
            self.kind.abbreviation(),
            self.year
        );
        let n: u32 = number
            .strip_prefix(&head)?
            .strip_suffix('号')?
            .parse()
            .ok()?;
        (self.first..=self.last)
            .contains(&n)
            .then_some(n)
            .filter(|n| self.number(*n) == number)
    }

    fn body(&self) -> String {
        [
            BLOCK_FORMAT.to_owned(),
            self.prefix.clone(),
            self.kind.code().to_owned(),
            self.year.to_string(),
            self.first.to_string(),
            self.last.to_string(),
            self.actor.clone(),
            hex::encode(self.key),
            self.issued_at.to_string(),
            hex::encode(self.issuer),
        ]
        .join("\n")
    }
}

/// A block with the server's signature, as a seal carries it: its body's lines, then a
/// line with the signature in hex. The server signs [`BLOCK_CONTEXT`] followed by the
/// body's bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedBlock {
    block: NumberBlock,
    signature: Vec<u8>,
}

impl SignedBlock {
    /// `block` signed by `server` (whose key id it must name as issuer).
    pub fn issue(server: &dyn Signer, block: NumberBlock) -> Result<SignedBlock> {
        if block.issuer != server.public_key().id() {
            return Err(Error::invalid("block", "the issuer is not the signing key"));
        }
        let signature = server.sign(&signed_bytes(&block))?;
        Ok(SignedBlock { block, signature })
    }

    /// What it says (not yet verified: see [`SignedBlock::verify`]).
    pub fn block(&self) -> &NumberBlock {
        &self.block
    }

    /// Whether one of `servers` issued it.
    pub fn verify(&self, servers: &[PublicKey]) -> Result<()> {
        let server = servers
            .iter()
            .find(|k| k.id() == self.block.issuer)
            .ok_or_else(|| {
                Error::invalid("block", "issued by a server key this device does not trust")
            })?;
        server
            .verify(&signed_bytes(&self.block), &self.signature)
            .map_err(|e| Error::invalid("block", format!("the server's signature: {e}")))
    }

    /// Its text, as seals and answers carry it.
    pub fn encode(&self) -> String {
        format!("{}\n{}", self.block.body(), hex::encode(&self.signature))
    }

    /// Reads a block's text (its signature is checked by [`SignedBlock::verify`]).
    pub fn decode(text: &str) -> Result<SignedBlock> {
        let bad = |what: &str| Error::invalid("block", format!("not a number block: {what}"));
        let lines: Vec<&str> = text.split('\n').collect();
        let [
            format,
            prefix,
            kind,
            year,
            first,
            last,
            actor,
            key,
            issued_at,
            issuer,
            signature,
        ] = lines.as_slice()
        else {
            return Err(bad("eleven lines"));
        };
        if *format != BLOCK_FORMAT {
            return Err(bad("format"));
        }
        let key_id = |hex_text: &str| -> Result<KeyId> {
            hex::decode(hex_text)
                .ok()
                .and_then(|b| b.try_into().ok())
                .ok_or_else(|| bad("a key id"))
        };
        let block = NumberBlock {
            prefix: (*prefix).to_owned(),
            kind: kind.parse()?,
            year: year.parse().map_err(|_| bad("year"))?,
            first: first.parse().map_err(|_| bad("first"))?,
            last: last.parse().map_err(|_| bad("last"))?,
            actor: (*actor).to_owned(),
            key: key_id(key)?,
            issued_at: issued_at.parse().map_err(|_| bad("issued at"))?,
            issuer: key_id(issuer)?,
        };
        if block.first == 0 || block.first > block.last || prefix.is_empty() {
            return Err(bad("a range of numbers"));
        }
        Ok(SignedBlock {
            block,
            signature: hex::decode(signature).map_err(|_| bad("signature"))?,
        })
    }
}

fn signed_bytes(block: &NumberBlock) -> Vec<u8> {
    let mut message = BLOCK_CONTEXT.to_vec();
    message.extend_from_slice(block.body().as_bytes());
    message
}

/// The prefix of a department's numbers: the province's abbreviation and the district's
/// first character in full-width brackets, then the department's name without
/// `管理局`/`管理`/`局` (黄浦区, 应急管理 → `（沪黄）应急`).
pub fn prefix(district: &DistrictCode, department: &str) -> String {
    let province = province_abbreviation(district.as_str());
    let county = match district.name() {
        Some(name) if !district.as_str().ends_with("0000") => name.chars().next(),
        _ => None,
    };
    let department = ["管理局", "管理", "局"]
        .iter()
        .find_map(|suffix| department.strip_suffix(suffix))
        .unwrap_or(department);
    let mut out = String::from("（");
    out.extend(province);
    out.extend(county);
    out.push('）');
    out.push_str(department.trim());
    out
}

/// The one-character abbreviation of the province a district code belongs to.
fn province_abbreviation(code: &str) -> Option<char> {
    let abbreviations = [
        ("11", '京'),
        ("12", '津'),
        ("13", '冀'),
        ("14", '晋'),
        ("15", '蒙'),
        ("21", '辽'),
        ("22", '吉'),
        ("23", '黑'),
        ("31", '沪'),
        ("32", '苏'),
        ("33", '浙'),
        ("34", '皖'),
        ("35", '闽'),
        ("36", '赣'),
        ("37", '鲁'),
        ("41", '豫'),
        ("42", '鄂'),
        ("43", '湘'),
        ("44", '粤'),
        ("45", '桂'),
        ("46", '琼'),
        ("50", '渝'),
        ("51", '川'),
        ("52", '黔'),
        ("53", '滇'),
        ("54", '藏'),
        ("61", '陕'),
        ("62", '甘'),
        ("63", '青'),
        ("64", '宁'),
        ("65", '新'),
    ];
    abbreviations
        .iter()
        .find(|(prefix, _)| code.starts_with(prefix))
        .map(|(_, c)| *c)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::signing::{KeyAlgorithm, SoftwareKey};

    fn block(server: &SoftwareKey) -> NumberBlock {
        NumberBlock {
            prefix: prefix(&"310101".parse().expect("district"), "应急管理"),
            kind: WritKind::RectificationOrder,
            year: 2026,
            first: 11,
            last: 30,
            actor: "ab".repeat(16),
            key: [7; 8],
            issued_at: 1_780_000_000,
            issuer: server.public_key().id(),
        }
    }

    #[test]
    fn numbers_follow_the_departments_format() {
        let server = SoftwareKey::from_secret(KeyAlgorithm::Ed25519, [1; 32]);
        let block = block(&server);
        assert_eq!(block.number(12), "（沪黄）应急责改〔2026〕0012号");
        assert_eq!(
            block.sequence_of("（沪黄）应急责改〔2026〕0012号"),
            Some(12)
        );
        for outside in [
            "（沪黄）应急责改〔2026〕0010号",
            "（沪黄）应急责改〔2026〕0031号",
            "（沪黄）应急责改〔2025〕0012号",
            "（沪黄）应急现决〔2026〕0012号",
            "（沪黄）应急责改〔2026〕012号",
            "（沪黄）应急责改〔2026〕+012号",
        ] {
            assert_eq!(block.sequence_of(outside), None, "{outside}");
        }
        assert_eq!(
            prefix(&"310115".parse().expect("district"), "消防"),
            "（沪浦）消防"
        );
        assert_eq!(
            prefix(&"310000".parse().expect("district"), "应急管理局"),
            "（沪）应急"
        );
    }

    #[test]
    fn a_block_verifies_only_as_the_server_signed_it() {
        let server = SoftwareKey::from_secret(KeyAlgorithm::Ed25519, [1; 32]);
        let other = SoftwareKey::from_secret(KeyAlgorithm::Ed25519, [2; 32]);
        let signed = SignedBlock::issue(&server, block(&server)).expect("signed");
        let text = signed.encode();
        let read = SignedBlock::decode(&text).expect("reads");
        assert_eq!(read, signed);
        read.verify(&[other.public_key(), server.public_key()])
            .expect("verifies");
        assert!(read.verify(&[other.public_key()]).is_err());
        // Widening the range breaks the signature.
        let widened = text.replacen("\n30\n", "\n99\n", 1);
        let widened = SignedBlock::decode(&widened).expect("reads");
        assert_eq!(widened.block().last, 99);
        assert!(widened.verify(&[server.public_key()]).is_err());
        assert!(SignedBlock::decode("anjian-numbers/1\nx").is_err());
        // Signed by a key it does not name as issuer.
        assert!(SignedBlock::issue(&other, block(&server)).is_err());
    }
}
