//! Photo evidence: ingest, verify, thumbnail, hash, attach, detach, collect garbage; and
//! every bad image refused with a typed error and nothing stored.

use std::io::Cursor;

use anjian_core::photo::{PhotoError, PhotoLimits, sha256_hex};
use anjian_core::{
    AnswerInput, AnswerResult, CaseId, Error, FindingId, PhotoInfo, PhotoTarget,
    RectificationOrder, Store,
};
use exif::{Field, In, Rational, Tag, Value};
use image::{ImageEncoder, RgbImage};
use proptest::prelude::*;

use crate::support::*;

pub use anjian_core::sample::jpeg;

fn png(w: u32, h: u32) -> Vec<u8> {
    let img = RgbImage::from_fn(w, h, |x, y| image::Rgb([x as u8, y as u8, 90]));
    let mut out = Vec::new();
    image::codecs::png::PngEncoder::new(&mut out)
        .write_image(img.as_raw(), w, h, image::ExtendedColorType::Rgb8)
        .expect("encode");
    out
}

/// Inserts an EXIF APP1 segment with `fields` right after the JPEG's SOI marker.
pub fn with_exif(jpeg: &[u8], fields: &[Field]) -> Vec<u8> {
    let mut writer = exif::experimental::Writer::new();
    for field in fields {
        writer.push_field(field);
    }
    let mut tiff = Cursor::new(Vec::new());
    writer.write(&mut tiff, false).expect("exif writes");
    with_app1(jpeg, &tiff.into_inner())
}

fn with_app1(jpeg: &[u8], tiff: &[u8]) -> Vec<u8> {
    let mut payload = b"Exif\0\0".to_vec();
    payload.extend_from_slice(tiff);
    let len = (payload.len() + 2) as u16;
    let mut out = jpeg[..2].to_vec();
    out.extend_from_slice(&[0xFF, 0xE1]);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(&payload);
    out.extend_from_slice(&jpeg[2..]);
    out
}

fn ascii(tag: Tag, text: &str) -> Field {
    Field {
        tag,
        ifd_num: In::PRIMARY,
        value: Value::Ascii(vec![text.as_bytes().to_vec()]),
    }
}

fn dms(tag: Tag, degrees: u32, minutes: u32, seconds: u32) -> Field {
    let r = |num| Rational { num, denom: 1 };
    Field {
        tag,
        ifd_num: In::PRIMARY,
        value: Value::Rational(vec![r(degrees), r(minutes), r(seconds)]),
    }
}

fn camera_fields(orientation: u16) -> Vec<Field> {
    vec![
        Field {
            tag: Tag::Orientation,
            ifd_num: In::PRIMARY,
            value: Value::Short(vec![orientation]),
        },
        ascii(Tag::DateTimeOriginal, "2026:11:20 09:41:07"),
        ascii(Tag::OffsetTimeOriginal, "+08:00"),
        dms(Tag::GPSLatitude, 31, 13, 48),
        ascii(Tag::GPSLatitudeRef, "N"),
        dms(Tag::GPSLongitude, 121, 28, 12),
        ascii(Tag::GPSLongitudeRef, "E"),
    ]
}

fn blob_count(store_path: &std::path::Path) -> i64 {
    rusqlite::Connection::open(store_path)
        .expect("open")
        .query_row("SELECT count(*) FROM blobs", [], |r| r.get(0))
        .expect("count")
}

#[test]
fn a_camera_photo_keeps_its_bytes_and_yields_time_place_and_an_upright_thumbnail() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (mut store, _case) = store_with_case(&dir, "a.db", "u1");
    let original = with_exif(&jpeg(1200, 800), &camera_fields(6));
    let info = store.ingest_photo(&original).expect("ingest");
    assert_eq!(info.sha256, sha256_hex(&original));
    assert_eq!(
        (info.width, info.height, info.orientation),
        (800, 1200, 6),
        "rotated 90° for display"
    );
    assert_eq!(
        info.captured_at.map(|t| t.to_rfc3339()).as_deref(),
        Some("2026-11-20T09:41:07+08:00")
    );
    let gps = info.gps.expect("gps");
    assert!(
        (gps.latitude - 31.23).abs() < 1e-9 && (gps.longitude - 121.47).abs() < 1e-9,
        "{gps:?}"
    );
    assert_eq!(
        store.blob(&info.sha256).expect("original"),
        original,
        "byte-exact"
    );
    let thumb = image::load_from_memory(&store.photo_thumbnail(&info.sha256).expect("thumbnail"))
        .expect("a JPEG");
    assert_eq!(
        (thumb.width(), thumb.height()),
        (213, 320),
        "long edge 320, portrait after orientation"
    );
}

#[test]
fn the_same_photo_ingested_twice_is_stored_once() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (mut store, _case) = store_with_case(&dir, "a.db", "u1");
    let bytes = jpeg(640, 480);
    let a = store.ingest_photo(&bytes).expect("first");
    let b = store.ingest_photo(&bytes).expect("second");
    assert_eq!(a, b);
    assert_eq!(
        blob_count(&dir.path().join("a.db")),
        2,
        "one original, one thumbnail"
    );
    let png_info = store.ingest_photo(&png(300, 200)).expect("png");
    assert_eq!(
        (png_info.mime, png_info.width, png_info.captured_at),
        ("image/png", 300, None)
    );
}

#[test]
fn photos_attach_to_findings_answers_and_rectification_evidence() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (mut store, case, finding, photo) = a_finding_and_a_photo(&dir);
    store
        .attach_photo(
            case,
            &PhotoTarget::Finding(finding),
            &photo.sha256,
            "配电箱全景",
        )
        .expect("attach");
    store
        .attach_photo(case, &PhotoTarget::Finding(finding), &photo.sha256, "again")
        .expect("idempotent");

    let err = store
        .attach_photo(
            case,
            &PhotoTarget::Rectification(finding),
            &photo.sha256,
            "整改后",
        )
        .expect_err("nothing ordered yet");
    assert!(matches!(err, Error::NotAllowed(_)), "{err}");
    store
        .order_rectification(
            case,
            finding,
            &RectificationOrder {
                measures: "加装箱门".into(),
                deadline: "2026-11-30".parse().expect("date"),
                responsible: "王五".into(),
            },
        )
        .expect("order");
    let after = store.ingest_photo(&jpeg(800, 600)).expect("evidence photo");
    store
        .attach_photo(
            case,
            &PhotoTarget::Rectification(finding),
            &after.sha256,
            "整改后",
        )
        .expect("evidence");

    let checklist = store
        .attach_checklist(case, "temporary-power")
        .expect("checklist");
    let answer = PhotoTarget::Answer {
        checklist,
        item: "tp-007".into(),
    };
    let err = store
        .attach_photo(case, &answer, &photo.sha256, "")
        .expect_err("not answered yet");
    assert!(matches!(err, Error::NotAllowed(_)), "{err}");
    let input = AnswerInput {
        result: AnswerResult::NonCompliant,
        note: String::new(),
        post: None,
        person: None,
    };
    store
        .answer_item(case, checklist, "tp-007", &input)
        .expect("answer");
    store
        .attach_photo(case, &answer, &photo.sha256, "配电箱")
        .expect("answer photo");

    let read = store.case(case).expect("case");
    let f = read
        .findings
        .iter()
        .find(|f| f.id == finding)
        .expect("finding");
    assert_eq!(f.photos.len(), 1);
    let p = &f.photos[0];
    assert_eq!(
        (p.sha256.as_str(), p.thumbnail.as_str(), p.caption.as_str()),
        (
            photo.sha256.as_str(),
            photo.thumbnail_sha256.as_str(),
            "配电箱全景"
        )
    );
    assert_eq!(
        (p.width, p.height, p.size, p.added_by.as_str()),
        (1600, 1200, photo.size, "u1")
    );
    assert_eq!(p.captured_at, photo.captured_at);
    assert_eq!(
        f.rectification.as_ref().expect("ordered").evidence[0].sha256,
        after.sha256
    );
    let entry = read.checklists[0]
        .entries
        .iter()
        .find(|e| e.item.id == "tp-007")
        .expect("entry");
    assert_eq!(
        entry.answer.as_ref().expect("answered").photos[0].sha256,
        photo.sha256
    );
    // The document holds hashes and metadata, never the bytes.
    assert!(store.export_case(case).expect("export").len() < photo.size as usize / 4);
}

#[test]
fn detaching_keeps_evidence_still_referenced_and_only_collection_deletes() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("a.db");
    let (mut store, case) = store_with_case(&dir, "a.db", "u1");
    let a = store.add_finding(case, &finding("A")).expect("a");
    let b = store.add_finding(case, &finding("B")).expect("b");
    let shared = store.ingest_photo(&jpeg(640, 480)).expect("shared");
    let loose = store.ingest_photo(&jpeg(320, 240)).expect("never attached");
    store
        .attach_photo(case, &PhotoTarget::Finding(a), &shared.sha256, "")
        .expect("a");
    store
        .attach_photo(case, &PhotoTarget::Finding(b), &shared.sha256, "")
        .expect("b");

    store
        .detach_photo(case, &PhotoTarget::Finding(a), &shared.sha256)
        .expect("detach from a");
    let err = store
        .detach_photo(case, &PhotoTarget::Finding(a), &shared.sha256)
        .expect_err("not there");
    assert!(
        matches!(err, Error::NotFound { what: "photo", .. }),
        "{err}"
    );
    assert_eq!(
        store.collect_garbage().expect("gc").blobs,
        0,
        "a photo just taken may not be attached yet"
    );
    let later = store.now() + chrono::Duration::hours(anjian_core::UNATTACHED_HOURS + 1);
    store.set_clock(std::sync::Arc::new(move || later));
    let report = store.collect_garbage().expect("gc");
    assert_eq!(report.blobs, 2, "only the loose photo and its thumbnail go");
    assert!(
        store.has_blob(&shared.sha256).expect("query"),
        "still evidence of finding B"
    );
    assert!(!store.has_blob(&loose.sha256).expect("query"));

    // A removed finding's photos remain evidence.
    store.remove_finding(case, b).expect("remove b");
    assert_eq!(store.collect_garbage().expect("gc").blobs, 0);
    assert_eq!(blob_count(&path), 2);
}

#[test]
fn uploads_are_pending_until_acknowledged_thumbnails_first() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (mut store, _case) = store_with_case(&dir, "a.db", "u1");
    let photo = store.ingest_photo(&jpeg(640, 480)).expect("ingest");
    let pending = store.pending_uploads().expect("pending");
    let kinds: Vec<&str> = pending.iter().map(|p| p.kind.as_str()).collect();
    assert_eq!(kinds, ["thumbnail", "original"]);
    assert_eq!(pending[1].sha256, photo.sha256);
    store.mark_uploaded(&photo.thumbnail_sha256).expect("mark");
    assert_eq!(store.pending_uploads().expect("pending").len(), 1);
    assert!(matches!(
        store.mark_uploaded(&"0".repeat(64)).expect_err("unknown"),
        Error::NotFound { .. }
    ));
}

#[test]
fn a_blob_damaged_in_storage_is_reported_not_served() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("a.db");
    let (mut store, _case) = store_with_case(&dir, "a.db", "u1");
    let photo = store.ingest_photo(&jpeg(640, 480)).expect("ingest");
    rusqlite::Connection::open(&path)
        .expect("open")
        .execute(
            "UPDATE blobs SET bytes = zeroblob(10) WHERE sha256 = ?1",
            [&photo.sha256],
        )
        .expect("damage");
    let err = store.blob(&photo.sha256).expect_err("damaged");
    assert!(matches!(err, Error::BlobDamaged { .. }), "{err}");
}

/// What was read from a photo at ingest (when and where it was taken) is evidence: a
/// stored value damaged since is reported, and the photo is not attached without it.
#[test]
fn a_photo_whose_stored_capture_time_is_damaged_is_not_attached_without_it() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (mut store, case, finding, photo) = a_finding_and_a_photo(&dir);
    assert!(photo.captured_at.is_some());
    rusqlite::Connection::open(dir.path().join("a.db"))
        .expect("open")
        .execute(
            "UPDATE photos SET captured_at = 'yesterday' WHERE sha256 = ?1",
            [&photo.sha256],
        )
        .expect("damage");
    let err = store
        .attach_photo(case, &PhotoTarget::Finding(finding), &photo.sha256, "全景")
        .expect_err("damaged");
    assert!(matches!(err, Error::Corrupt(_)), "{err}");
    assert!(
        store.case(case).expect("case").findings[0]
            .photos
            .is_empty()
    );
}

/// A store in `dir` with a case, a finding and an ingested camera photo (not attached).
fn a_finding_and_a_photo(dir: &tempfile::TempDir) -> (Store, CaseId, FindingId, PhotoInfo) {
    let (mut store, case) = store_with_case(dir, "a.db", "u1");
    let finding = store
        .add_finding(case, &finding("配电箱门缺失"))
        .expect("finding");
    let photo = store
        .ingest_photo(&with_exif(&jpeg(1600, 1200), &camera_fields(1)))
        .expect("ingest");
    (store, case, finding, photo)
}

/// A PNG whose header declares `w` x `h` pixels (with a tiny body).
fn png_declaring(w: u32, h: u32) -> Vec<u8> {
    let mut bytes = png(1, 1);
    // IHDR data starts at byte 16: width, height; its CRC covers type and data.
    bytes[16..20].copy_from_slice(&w.to_be_bytes());
    bytes[20..24].copy_from_slice(&h.to_be_bytes());
    let crc = crc32(&bytes[12..29]);
    bytes[29..33].copy_from_slice(&crc.to_be_bytes());
    bytes
}

fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &byte in data {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

#[test]
fn every_bad_image_is_a_typed_error_and_stores_nothing() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("a.db");
    let (mut store, _case) = store_with_case(&dir, "a.db", "u1");
    let good = jpeg(640, 480);
    let exif_garbage = with_app1(&good, b"MM\0*\0\0\0\x08\xff\xff\x01\x02");
    let check = |store: &mut Store, what: &str, bytes: &[u8], expected: fn(&PhotoError) -> bool| {
        match store.ingest_photo(bytes) {
            Err(Error::Photo(e)) => assert!(expected(&e), "{what}: unexpected {e:?}"),
            other => panic!("{what}: expected a photo error, got {other:?}"),
        }
    };
    check(&mut store, "empty", b"", |e| matches!(e, PhotoError::Empty));
    check(&mut store, "text", b"this is a report, not a photo", |e| {
        matches!(e, PhotoError::NotAnImage)
    });
    check(&mut store, "gif", b"GIF89a\x01\0\x01\0\0\0\0;", |e| {
        matches!(e, PhotoError::Unsupported(_))
    });
    check(&mut store, "truncated jpeg", &good[..good.len() / 2], |e| {
        matches!(e, PhotoError::Damaged(_))
    });
    check(
        &mut store,
        "png bomb",
        &png_declaring(100_000, 100_000),
        |e| matches!(e, PhotoError::TooManyPixels { .. }),
    );
    check(&mut store, "garbage exif", &exif_garbage, |e| {
        matches!(e, PhotoError::InvalidExif { .. })
    });
    let future = with_exif(
        &good,
        &[ascii(Tag::DateTimeOriginal, "2150:01:01 00:00:00")],
    );
    check(&mut store, "absurd time", &future, |e| {
        matches!(
            e,
            PhotoError::InvalidExif {
                field: "DateTimeOriginal",
                ..
            }
        )
    });
    let not_a_time = with_exif(&good, &[ascii(Tag::DateTimeOriginal, "yesterday")]);
    check(&mut store, "garbage time", &not_a_time, |e| {
        matches!(
            e,
            PhotoError::InvalidExif {
                field: "DateTimeOriginal",
                ..
            }
        )
    });
    let mut off_earth = camera_fields(1);
    off_earth[3] = dms(Tag::GPSLatitude, 95, 0, 0);
    check(
        &mut store,
        "latitude 95",
        &with_exif(&good, &off_earth),
        |e| matches!(e, PhotoError::InvalidExif { field: "GPS", .. }),
    );
    let mut bad_minutes = camera_fields(1);
    bad_minutes[5] = dms(Tag::GPSLongitude, 121, 75, 0);
    check(
        &mut store,
        "75 minutes",
        &with_exif(&good, &bad_minutes),
        |e| {
            matches!(
                e,
                PhotoError::InvalidExif {
                    field: "GPSLongitude",
                    ..
                }
            )
        },
    );
    check(
        &mut store,
        "orientation 9",
        &with_exif(&good, &camera_fields(9)),
        |e| {
            matches!(
                e,
                PhotoError::InvalidExif {
                    field: "Orientation",
                    ..
                }
            )
        },
    );
    store.set_photo_limits(PhotoLimits {
        max_bytes: 10_000,
        ..PhotoLimits::default()
    });
    check(&mut store, "over the size limit", &good, |e| {
        matches!(e, PhotoError::TooLarge { limit: 10_000, .. })
    });
    assert_eq!(blob_count(&path), 0, "nothing was stored");
    let err = store
        .ingest_photo_file(dir.path().join("missing.jpg"))
        .expect_err("no such file");
    assert!(matches!(err, Error::Invalid { field: "path", .. }), "{err}");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 192, ..ProptestConfig::default() })]

    /// Mutated real photos (flipped bytes, cut short, spliced) never panic the ingest
    /// path; what it accepts is stored under the hash of exactly the bytes given.
    #[test]
    fn mutated_photos_never_panic_and_accepted_ones_hash_their_bytes(
        flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..12),
        cut in prop::option::of(any::<prop::sample::Index>()),
        exif in any::<bool>(),
    ) {
        let mut bytes = if exif { with_exif(&jpeg(96, 64), &camera_fields(3)) } else { jpeg(96, 64) };
        for (index, value) in &flips {
            let i = index.index(bytes.len());
            bytes[i] = *value;
        }
        if let Some(cut) = cut {
            bytes.truncate(cut.index(bytes.len()));
        }
        if let Ok(ingested) = anjian_core::photo::ingest(&bytes, &PhotoLimits::default()) {
            prop_assert_eq!(ingested.info.sha256, sha256_hex(&bytes));
        }
    }
}
