//! Photo ingest benchmark (docs/BENCHMARKS.md): a 12-megapixel JPEG through
//! `Store::ingest_photo` (decode, EXIF, orientation, thumbnail, hash, store) against
//! `vipsthumbnail` and ImageMagick's `convert -thumbnail` on the same file.
//!
//! Run: `cargo bench -p anjian-tests --bench photo` (needs Debian's libvips-tools and
//! imagemagick; a missing tool is reported and skipped).

use anjian_tests::bench::ms;
use std::io::Cursor;
use std::process::Command;
use std::time::{Duration, Instant};

use anjian_core::{Store, sample};
use image::{ImageEncoder, RgbImage};

const RUNS: usize = 7;

fn main() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("photo-12mp.jpg");
    let bytes = camera_like_jpeg(4000, 3000);
    std::fs::write(&path, &bytes).expect("write photo");
    println!(
        "# Ingesting a 12-megapixel JPEG (4000 x 3000, {:.1} MB), median of {RUNS}",
        bytes.len() as f64 / 1e6
    );

    let mut ours = Vec::new();
    for run in 0..RUNS {
        // A fresh store each run, so that every run stores the blob for real.
        let mut store = Store::open(
            dir.path().join(format!("s{run}.db")),
            sample::inspector("bench"),
        )
        .expect("open");
        let start = Instant::now();
        let read = std::fs::read(&path).expect("read");
        store.ingest_photo(&read).expect("ingest");
        ours.push(start.elapsed());
    }
    let ours = median(ours);
    println!(
        "anjian ingest (read file, verify, EXIF, thumbnail, SHA-256, store with fsync): {:7.1} ms",
        ms(ours)
    );

    let out = dir.path().join("thumb.jpg");
    let vips = time_command(
        "vipsthumbnail",
        &[
            path.to_str().expect("utf-8 path"),
            "-s",
            "320",
            "-o",
            out.to_str().expect("utf-8 path"),
        ],
    );
    let magick = time_command(
        "/usr/bin/convert",
        &[
            path.to_str().expect("utf-8 path"),
            "-auto-orient",
            "-thumbnail",
            "320x320",
            out.to_str().expect("utf-8 path"),
        ],
    );
    // What the external tools spend just starting, on a 16 x 16 image, for reading the
    // ratios: their times include a process start that an app's in-process call does not pay.
    let tiny = dir.path().join("tiny.jpg");
    std::fs::write(&tiny, camera_like_jpeg(16, 16)).expect("write tiny");
    let vips_start = time_command(
        "vipsthumbnail",
        &[
            tiny.to_str().expect("utf-8 path"),
            "-s",
            "320",
            "-o",
            out.to_str().expect("utf-8 path"),
        ],
    );
    if let Some(t) = vips_start {
        println!(
            "{:<64} {:7.1} ms",
            "(vipsthumbnail on a 16 x 16 image: process start)",
            ms(t)
        );
    }
    for (name, time) in [
        ("vipsthumbnail -s 320", vips),
        ("convert -thumbnail 320x320", magick),
    ] {
        match time {
            Some(t) => println!(
                "{name:<64} {:7.1} ms   anjian / this = {:.2}",
                ms(t),
                ours.as_secs_f64() / t.as_secs_f64()
            ),
            None => println!("{name:<64} not installed"),
        }
    }
}

/// A 12-megapixel scene with gradients, edges and sensor-like noise, encoded at the
/// quality phones use, with an EXIF block like a camera writes.
fn camera_like_jpeg(w: u32, h: u32) -> Vec<u8> {
    let mut seed = 0x2545_F491_4F6C_DD1Du64;
    let img = RgbImage::from_fn(w, h, |x, y| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let noise = (seed % 24) as i32 - 12;
        let edge = if (x / 97 + y / 131) % 2 == 0 { 50 } else { 0 };
        let c = |v: i32| (v + noise).clamp(0, 255) as u8;
        image::Rgb([
            c((x * 200 / w) as i32 + edge),
            c((y * 180 / h) as i32 + 30),
            c(120 + edge / 2),
        ])
    });
    let mut jpeg = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpeg, 90)
        .write_image(img.as_raw(), w, h, image::ExtendedColorType::Rgb8)
        .expect("encode");
    let mut writer = exif::experimental::Writer::new();
    let fields = [
        exif::Field {
            tag: exif::Tag::Orientation,
            ifd_num: exif::In::PRIMARY,
            value: exif::Value::Short(vec![6]),
        },
        exif::Field {
            tag: exif::Tag::DateTimeOriginal,
            ifd_num: exif::In::PRIMARY,
            value: exif::Value::Ascii(vec![b"2026:11:20 09:41:07".to_vec()]),
        },
    ];
    for field in &fields {
        writer.push_field(field);
    }
    let mut tiff = Cursor::new(Vec::new());
    writer.write(&mut tiff, false).expect("exif");
    let mut app1 = b"Exif\0\0".to_vec();
    app1.extend_from_slice(&tiff.into_inner());
    let mut out = jpeg[..2].to_vec();
    out.extend_from_slice(&[0xFF, 0xE1]);
    out.extend_from_slice(&((app1.len() + 2) as u16).to_be_bytes());
    out.extend_from_slice(&app1);
    out.extend_from_slice(&jpeg[2..]);
    out
}

fn time_command(program: &str, args: &[&str]) -> Option<Duration> {
    let mut times = Vec::new();
    for _ in 0..RUNS {
        let start = Instant::now();
        let status = Command::new(program).args(args).status().ok()?;
        assert!(status.success(), "{program} failed");
        times.push(start.elapsed());
    }
    Some(median(times))
}

fn median(mut times: Vec<Duration>) -> Duration {
    times.sort();
    times[times.len() / 2]
}
