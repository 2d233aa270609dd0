//! Small real JPEGs for the demo's photo evidence: a coloured gradient with a marker shape,
//! different for every seed, so that every photo has its own hash and thumbnail.

use image::codecs::jpeg::JpegEncoder;
use image::{Rgb, RgbImage};

use crate::error::{AppError, AppResult};

/// Width of a demo photo, in pixels: larger than a thumbnail (320 px), so the store makes a
/// real one, and small enough to make quickly in a debug build.
const WIDTH: u32 = 400;
/// Height of a demo photo.
const HEIGHT: u32 = 300;

/// A JPEG photo made from `seed`: a diagonal gradient between two colours, a warning-sign
/// triangle and a circle placed by the seed.
pub(super) fn jpeg(seed: u32) -> AppResult<Vec<u8>> {
    let hue = |shift: u32| ((seed.wrapping_mul(67).wrapping_add(shift)) % 200 + 40) as u8;
    let (from, to) = ([hue(0), hue(90), hue(170)], [hue(45), hue(130), hue(20)]);
    let apex_x = 80 + (seed * 53) % 240;
    let circle = (
        (60 + (seed * 97) % 280) as i64,
        (160 + (seed * 31) % 100) as i64,
    );
    let image = RgbImage::from_fn(WIDTH, HEIGHT, |x, y| {
        if in_triangle(x, y, apex_x) {
            return Rgb([250, 200, 20]);
        }
        let (dx, dy) = (i64::from(x) - circle.0, i64::from(y) - circle.1);
        if dx * dx + dy * dy < 36 * 36 {
            return Rgb([200, 30, 30]);
        }
        let t = (x + y) as f32 / (WIDTH + HEIGHT) as f32;
        Rgb(std::array::from_fn(|i| {
            (f32::from(from[i]) * (1.0 - t) + f32::from(to[i]) * t) as u8
        }))
    });
    let mut bytes = Vec::new();
    JpegEncoder::new_with_quality(&mut bytes, 80)
        .encode_image(&image)
        .map_err(|e| AppError::Internal(format!("demo photo {seed}: {e}")))?;
    Ok(bytes)
}

/// Whether `(x, y)` lies in an upright triangle 120 px wide whose apex is at `(apex_x, 30)`.
fn in_triangle(x: u32, y: u32, apex_x: u32) -> bool {
    let (top, height) = (30, 105);
    if y < top || y >= top + height {
        return false;
    }
    let half = (y - top) * 60 / height;
    x + half >= apex_x && x <= apex_x + half
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn photos_are_jpegs_that_differ_by_seed() {
        let (a, b) = (jpeg(1).expect("photo"), jpeg(2).expect("photo"));
        assert_eq!(&a[..2], &[0xFF, 0xD8], "JPEG start of image");
        assert_ne!(a, b);
        let decoded = image::load_from_memory(&a).expect("decodes");
        assert_eq!((decoded.width(), decoded.height()), (WIDTH, HEIGHT));
    }
}
