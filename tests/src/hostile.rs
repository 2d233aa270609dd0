//! What a hostile signed-in client sends, made for the tests and benchmarks: decompression
//! bombs, heavy PNGs, photo records naming any hash, records copied under ids not their own.

use std::io::Write;

use anjian_core::FindingId;
use automerge::transaction::Transactable;
use automerge::{AutoCommit, ObjId, ObjType, ROOT, ReadDoc, Value};

/// An Automerge compressed-change chunk whose DEFLATE data inflates to `size` zero bytes.
pub fn compressed_bomb(size: usize) -> Vec<u8> {
    let mut deflated = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::best());
    let block = vec![0u8; 1 << 20];
    let mut left = size;
    while left > 0 {
        let n = left.min(block.len());
        deflated.write_all(&block[..n]).expect("deflate");
        left -= n;
    }
    let data = deflated.finish().expect("deflate");
    let mut chunk = vec![0x85, 0x6f, 0x4a, 0x83, 0, 0, 0, 0, 2];
    put_uleb(&mut chunk, data.len() as u64);
    chunk.extend(data);
    chunk
}

/// A summary (`have`) whose bloom filter asks `probes` probes per lookup, as a hostile
/// peer would send it (every probe of every lookup is allocated).
pub fn bloom_asking(probes: u64) -> automerge::sync::Have {
    let mut bloom = Vec::new();
    for field in [1, 10, probes] {
        put_uleb(&mut bloom, field);
    }
    bloom.extend([0xff; 2]);
    automerge::sync::Have {
        last_sync: Vec::new(),
        bloom: automerge::sync::BloomFilter::try_from(bloom.as_slice()).expect("bloom"),
    }
}

fn put_uleb(out: &mut Vec<u8>, mut value: u64) {
    loop {
        let byte = (value & 0x7f) as u8;
        value >>= 7;
        if value == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

/// A sync message carrying `entries` as its change chunks, as a hostile peer would send it.
pub fn sync_message(entries: Vec<Vec<u8>>) -> Vec<u8> {
    automerge::sync::Message {
        heads: Vec::new(),
        need: Vec::new(),
        have: Vec::new(),
        changes: entries.into(),
        flags: None,
        version: automerge::sync::MessageVersion::V1,
    }
    .encode()
}

/// The IDAT data of a `width` × `height` RGB PNG whose every row is filtered with Paeth
/// (so that decoding it costs work on every byte), zlib-compressed.
pub fn png_rows(width: u32, height: u32) -> Vec<u8> {
    let mut row = vec![0u8; 1 + 3 * width as usize];
    row[0] = 4;
    let mut zlib = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
    for _ in 0..height {
        zlib.write_all(&row).expect("zlib");
    }
    zlib.finish().expect("zlib")
}

/// A whole PNG of `width` × `height` around `rows` (from `png_rows`), made distinct by
/// `seed` in a text chunk (so that each has a hash of its own).
pub fn png(width: u32, height: u32, rows: &[u8], seed: u32) -> Vec<u8> {
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut ihdr = Vec::new();
    ihdr.extend(width.to_be_bytes());
    ihdr.extend(height.to_be_bytes());
    ihdr.extend([8, 2, 0, 0, 0]);
    png_chunk(&mut out, b"IHDR", &ihdr);
    png_chunk(&mut out, b"tEXt", format!("Comment\0{seed}").as_bytes());
    png_chunk(&mut out, b"IDAT", rows);
    png_chunk(&mut out, b"IEND", &[]);
    out
}

fn png_chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
    out.extend((data.len() as u32).to_be_bytes());
    out.extend(kind);
    out.extend(data);
    let mut crc = flate2::Crc::new();
    crc.update(kind);
    crc.update(data);
    out.extend(crc.sum().to_be_bytes());
}

/// Adds a photo record naming `sha256` to a finding of `doc`, as `by` (a device may name
/// any hash: the server accepts the blob only if its bytes hash to it and it is an image).
pub fn name_photo(doc: &mut AutoCommit, finding: FindingId, sha256: &str, by: &str) {
    let findings = match doc.get(ROOT, "findings").expect("read") {
        Some((_, id)) => id,
        None => panic!("a case document"),
    };
    let obj = match doc.get(&findings, finding.to_string()).expect("read") {
        Some((_, id)) => id,
        None => panic!("the finding exists"),
    };
    let list = match doc.get(&obj, "photos").expect("read") {
        Some((_, id)) => id,
        None => panic!("a photos list"),
    };
    let at = doc.length(&list);
    let entry = doc.insert_object(&list, at, ObjType::Map).expect("insert");
    for (key, value) in [
        ("sha256", sha256),
        ("thumbnail", sha256),
        ("caption", "现场照片"),
        ("mime", "image/png"),
        ("added_by", by),
        ("added_at", "2026-11-29T10:00:00+08:00"),
    ] {
        doc.put(&entry, key, value).expect("put");
    }
    doc.put(&entry, "size", automerge::ScalarValue::Uint(1))
        .expect("put");
    doc.put(&entry, "width", 1).expect("put");
    doc.put(&entry, "height", 1).expect("put");
}

/// Copies into the object `target` of `to` every entry of the object `source` of `from`,
/// objects copied whole: records made again by `to`'s device, as they stand in `from`.
pub fn copy_into(from: &AutoCommit, source: &ObjId, to: &mut AutoCommit, target: &ObjId) {
    match from.object_type(source).expect("an object") {
        ObjType::Map | ObjType::Table => {
            for key in from.keys(source) {
                let (value, id) = from.get(source, &key).expect("read").expect("a value");
                match value {
                    Value::Object(kind) => {
                        let made = to.put_object(target, &key, kind).expect("put");
                        copy_into(from, &id, to, &made);
                    }
                    Value::Scalar(scalar) => {
                        to.put(target, &key, scalar.into_owned()).expect("put")
                    }
                }
            }
        }
        ObjType::List => {
            for at in 0..from.length(source) {
                let (value, id) = from.get(source, at).expect("read").expect("a value");
                match value {
                    Value::Object(kind) => {
                        let made = to.insert_object(target, at, kind).expect("insert");
                        copy_into(from, &id, to, &made);
                    }
                    Value::Scalar(scalar) => {
                        to.insert(target, at, scalar.into_owned()).expect("insert");
                    }
                }
            }
        }
        ObjType::Text => {
            let text = from.text(source).expect("text");
            to.splice_text(target, 0, 0, &text).expect("splice");
        }
    }
}

/// Comments on the case in `doc` as `user`, now, and commits it: a change made past the
/// store, as a device that writes its own changes does.
pub fn comment(doc: &mut AutoCommit, user: &str, text: &str) {
    anjian_core::case_doc::review(
        doc,
        user,
        anjian_core::ReviewAction::Comment,
        text,
        chrono::Utc::now().fixed_offset(),
    )
    .expect("comment");
    doc.commit();
}
