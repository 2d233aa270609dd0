//! Photo evidence (现场照片): verify an image under explicit limits, read its EXIF capture
//! time, GPS and orientation, and make a thumbnail, while the original stays byte-exact
//! and is addressed by the SHA-256 of its bytes.
//!
//! Phones convert HEIC to JPEG before handing a photo to the core; JPEG and PNG are
//! accepted, anything else is refused.

use std::io::Cursor;
use std::panic::{AssertUnwindSafe, catch_unwind};

use chrono::{DateTime, FixedOffset, NaiveDateTime, TimeZone, Utc};
use image::codecs::jpeg::JpegEncoder;
use image::metadata::Orientation;
use image::{DynamicImage, ImageFormat, ImageReader, Limits, RgbImage};
use sha2::{Digest, Sha256};

use crate::codes::GeoPoint;
pub use crate::error::PhotoError;

/// The long edge of a thumbnail, in pixels.
pub const THUMBNAIL_EDGE: u32 = 320;
/// JPEG quality of thumbnails.
const THUMBNAIL_QUALITY: u8 = 80;
/// The earliest capture time accepted as real (digital evidence photos start here).
const EARLIEST_CAPTURE_YEAR: i32 = 1990;

/// Limits every photo is checked against before and while it is decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PhotoLimits {
    /// Largest file accepted, in bytes.
    pub max_bytes: u64,
    /// Largest width or height, in pixels.
    pub max_edge: u32,
    /// Largest number of pixels.
    pub max_pixels: u64,
    /// Most memory the decoder may allocate, in bytes.
    pub max_alloc: u64,
}

impl Default for PhotoLimits {
    fn default() -> Self {
        PhotoLimits {
            max_bytes: 40 * 1024 * 1024,
            max_edge: 16_384,
            max_pixels: 100_000_000,
            max_alloc: 512 * 1024 * 1024,
        }
    }
}

/// What ingesting a photo learned about it.
#[derive(Debug, Clone, PartialEq)]
pub struct PhotoInfo {
    /// SHA-256 of the original bytes, hex.
    pub sha256: String,
    /// SHA-256 of the thumbnail, hex.
    pub thumbnail_sha256: String,
    /// `image/jpeg` or `image/png`.
    pub mime: &'static str,
    /// Size of the original in bytes.
    pub size: u64,
    /// Width as displayed (EXIF orientation applied).
    pub width: u32,
    /// Height as displayed.
    pub height: u32,
    /// EXIF orientation (1 to 8; 1 when absent).
    pub orientation: u8,
    /// Capture time from EXIF, with its offset when the camera recorded one (otherwise
    /// read as China Standard Time, +08:00).
    pub captured_at: Option<DateTime<FixedOffset>>,
    /// GPS position from EXIF.
    pub gps: Option<GeoPoint>,
}

/// A verified photo: what was learned, and its thumbnail (JPEG).
#[derive(Debug, Clone)]
pub struct Ingested {
    /// What was learned.
    pub info: PhotoInfo,
    /// The thumbnail's bytes.
    pub thumbnail: Vec<u8>,
}

/// SHA-256 of `bytes`, hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Verifies a photo and makes its thumbnail. Nothing is stored here.
pub fn ingest(bytes: &[u8], limits: &PhotoLimits) -> Result<Ingested, PhotoError> {
    let size = bytes.len() as u64;
    if size == 0 {
        return Err(PhotoError::Empty);
    }
    if size > limits.max_bytes {
        return Err(PhotoError::TooLarge {
            size,
            limit: limits.max_bytes,
        });
    }
    let format = image::guess_format(bytes).map_err(|_| PhotoError::NotAnImage)?;
    let mime = match format {
        ImageFormat::Jpeg => "image/jpeg",
        ImageFormat::Png => "image/png",
        other => return Err(PhotoError::Unsupported(format!("{other:?}"))),
    };
    // A decoder bug on hostile input must not take the app down with it.
    let decoded = catch_unwind(AssertUnwindSafe(|| decode_small(bytes, format, limits)))
        .map_err(|_| PhotoError::Damaged("the decoder failed on this file".into()))??;
    // Read only once the image itself is known to be whole.
    let exif = read_exif(bytes)?;
    let (width, height) = (decoded.width, decoded.height);
    let orientation = Orientation::from_exif(exif.orientation).unwrap_or(Orientation::NoTransforms);
    let mut thumb = decoded.image;
    thumb.apply_orientation(orientation);
    let (width, height) = match orientation {
        Orientation::Rotate90
        | Orientation::Rotate270
        | Orientation::Rotate90FlipH
        | Orientation::Rotate270FlipH => (height, width),
        _ => (width, height),
    };
    let thumbnail = encode_thumbnail(thumb)?;
    Ok(Ingested {
        info: PhotoInfo {
            sha256: sha256_hex(bytes),
            thumbnail_sha256: sha256_hex(&thumbnail),
            mime,
            size,
            width,
            height,
            orientation: exif.orientation,
            captured_at: exif.captured_at,
            gps: exif.gps,
        },
        thumbnail,
    })
}

/// A decoded image no larger than needed for the thumbnail, and the original's size.
struct Decoded {
    image: DynamicImage,
    width: u32,
    height: u32,
}

fn decode_small(
    bytes: &[u8],
    format: ImageFormat,
    limits: &PhotoLimits,
) -> Result<Decoded, PhotoError> {
    let mut reader_limits = Limits::default();
    reader_limits.max_image_width = Some(limits.max_edge);
    reader_limits.max_image_height = Some(limits.max_edge);
    reader_limits.max_alloc = Some(limits.max_alloc);
    let mut reader = ImageReader::with_format(Cursor::new(bytes), format);
    reader.limits(reader_limits.clone());
    let (width, height) = reader
        .into_dimensions()
        .map_err(|e| size_error(e, limits))?;
    if u64::from(width) * u64::from(height) > limits.max_pixels {
        return Err(PhotoError::TooManyPixels {
            width,
            height,
            limit: limits.max_pixels,
            edge: limits.max_edge,
        });
    }
    let image = match format {
        ImageFormat::Jpeg => decode_jpeg_scaled(bytes, limits)?,
        _ => {
            let mut reader = ImageReader::with_format(Cursor::new(bytes), format);
            reader.limits(reader_limits);
            let full = reader.decode().map_err(|e| size_error(e, limits))?;
            full.thumbnail(THUMBNAIL_EDGE, THUMBNAIL_EDGE)
        }
    };
    let image = if image.width().max(image.height()) > THUMBNAIL_EDGE {
        image.thumbnail(THUMBNAIL_EDGE, THUMBNAIL_EDGE)
    } else {
        image
    };
    Ok(Decoded {
        image,
        width,
        height,
    })
}

/// Decodes a JPEG at the smallest DCT scale (1/8, 1/4, 1/2 or 1) that still covers the
/// thumbnail: every scan is read and checked, but most of the inverse transform is saved.
fn decode_jpeg_scaled(bytes: &[u8], limits: &PhotoLimits) -> Result<DynamicImage, PhotoError> {
    let mut decoder = jpeg_decoder::Decoder::new(Cursor::new(bytes));
    decoder.set_max_decoding_buffer_size(usize::try_from(limits.max_alloc).unwrap_or(usize::MAX));
    decoder.read_info().map_err(jpeg_error)?;
    let info = decoder
        .info()
        .ok_or_else(|| PhotoError::Damaged("no JPEG header".into()))?;
    let long = info.width.max(info.height).max(1);
    let want = |edge: u16| -> u16 {
        // Requested size keeps the aspect ratio with the long edge at THUMBNAIL_EDGE.
        ((u32::from(edge) * THUMBNAIL_EDGE).div_ceil(u32::from(long))).max(1) as u16
    };
    decoder
        .scale(want(info.width), want(info.height))
        .map_err(jpeg_error)?;
    let pixels = decoder.decode().map_err(jpeg_error)?;
    let info = decoder
        .info()
        .ok_or_else(|| PhotoError::Damaged("no JPEG header".into()))?;
    let (w, h) = (u32::from(info.width), u32::from(info.height));
    let rgb: Vec<u8> = match info.pixel_format {
        jpeg_decoder::PixelFormat::RGB24 => pixels,
        jpeg_decoder::PixelFormat::L8 => pixels.iter().flat_map(|&l| [l, l, l]).collect(),
        jpeg_decoder::PixelFormat::L16 => pixels
            .chunks_exact(2)
            .flat_map(|p| [p[0], p[0], p[0]])
            .collect(),
        jpeg_decoder::PixelFormat::CMYK32 => pixels
            .chunks_exact(4)
            .flat_map(|p| {
                let k = u16::from(p[3]);
                [p[0], p[1], p[2]].map(|c| ((u16::from(c) * k) / 255) as u8)
            })
            .collect(),
    };
    RgbImage::from_raw(w, h, rgb)
        .map(DynamicImage::ImageRgb8)
        .ok_or_else(|| PhotoError::Damaged("decoded pixels do not fill the image".into()))
}

fn jpeg_error(e: jpeg_decoder::Error) -> PhotoError {
    PhotoError::Damaged(e.to_string())
}

fn size_error(e: image::ImageError, limits: &PhotoLimits) -> PhotoError {
    match e {
        image::ImageError::Limits(_) => PhotoError::TooManyPixels {
            width: 0,
            height: 0,
            limit: limits.max_pixels,
            edge: limits.max_edge,
        },
        other => PhotoError::Damaged(other.to_string()),
    }
}

fn encode_thumbnail(image: DynamicImage) -> Result<Vec<u8>, PhotoError> {
    let mut out = Vec::new();
    let rgb = image.to_rgb8();
    JpegEncoder::new_with_quality(&mut out, THUMBNAIL_QUALITY)
        .encode_image(&rgb)
        .map_err(|e| PhotoError::Damaged(format!("thumbnail: {e}")))?;
    Ok(out)
}

/// What the EXIF block says, validated.
struct ExifFacts {
    orientation: u8,
    captured_at: Option<DateTime<FixedOffset>>,
    gps: Option<GeoPoint>,
}

fn read_exif(bytes: &[u8]) -> Result<ExifFacts, PhotoError> {
    let none = ExifFacts {
        orientation: 1,
        captured_at: None,
        gps: None,
    };
    let exif = match exif::Reader::new().read_from_container(&mut Cursor::new(bytes)) {
        Ok(exif) => exif,
        Err(exif::Error::NotFound(_)) => return Ok(none),
        Err(e) => {
            return Err(PhotoError::InvalidExif {
                field: "exif",
                message: e.to_string(),
            });
        }
    };
    let field = |tag| exif.get_field(tag, exif::In::PRIMARY);
    let orientation = match field(exif::Tag::Orientation).map(|f| f.value.get_uint(0)) {
        None => 1,
        Some(Some(v @ 1..=8)) => v as u8,
        Some(other) => {
            return Err(PhotoError::InvalidExif {
                field: "Orientation",
                message: format!("{other:?} is not 1 to 8"),
            });
        }
    };
    let captured_at =
        match field(exif::Tag::DateTimeOriginal).or_else(|| field(exif::Tag::DateTime)) {
            None => None,
            Some(f) => Some(capture_time(
                &f.value,
                field(exif::Tag::OffsetTimeOriginal).map(|o| &o.value),
            )?),
        };
    let gps = match (
        field(exif::Tag::GPSLatitude),
        field(exif::Tag::GPSLatitudeRef),
        field(exif::Tag::GPSLongitude),
        field(exif::Tag::GPSLongitudeRef),
    ) {
        (Some(lat), lat_ref, Some(lon), lon_ref) => {
            let lat = degrees(&lat.value, lat_ref.map(|r| &r.value), b'S', "GPSLatitude")?;
            let lon = degrees(&lon.value, lon_ref.map(|r| &r.value), b'W', "GPSLongitude")?;
            Some(
                GeoPoint::new(lat, lon).map_err(|e| PhotoError::InvalidExif {
                    field: "GPS",
                    message: e.to_string(),
                })?,
            )
        }
        _ => None,
    };
    Ok(ExifFacts {
        orientation,
        captured_at,
        gps,
    })
}

fn ascii(value: &exif::Value) -> Option<String> {
    match value {
        exif::Value::Ascii(parts) => parts
            .first()
            .map(|p| String::from_utf8_lossy(p).trim().to_owned()),
        _ => None,
    }
}

fn capture_time(
    value: &exif::Value,
    offset: Option<&exif::Value>,
) -> Result<DateTime<FixedOffset>, PhotoError> {
    let bad = |message: String| PhotoError::InvalidExif {
        field: "DateTimeOriginal",
        message,
    };
    let text = ascii(value).ok_or_else(|| bad("not text".into()))?;
    let naive = NaiveDateTime::parse_from_str(&text, "%Y:%m:%d %H:%M:%S")
        .map_err(|e| bad(format!("{text:?} is not a time: {e}")))?;
    let offset = match offset.and_then(ascii) {
        Some(o) => {
            DateTime::parse_from_str(&format!("2000-01-01T00:00:00{o}"), "%Y-%m-%dT%H:%M:%S%:z")
                .map(|d| *d.offset())
                .map_err(|_| PhotoError::InvalidExif {
                    field: "OffsetTimeOriginal",
                    message: format!("{o:?} is not an offset like +08:00"),
                })?
        }
        None => crate::codes::china(),
    };
    let time = offset
        .from_local_datetime(&naive)
        .single()
        .ok_or_else(|| bad(format!("{text:?} does not exist")))?;
    let earliest = Utc
        .with_ymd_and_hms(EARLIEST_CAPTURE_YEAR, 1, 1, 0, 0, 0)
        .single()
        .expect("a valid date");
    if time < earliest || time > Utc::now() + chrono::Duration::days(2) {
        return Err(bad(format!("{text} is not a plausible capture time")));
    }
    Ok(time)
}

fn degrees(
    value: &exif::Value,
    reference: Option<&exif::Value>,
    negative: u8,
    field: &'static str,
) -> Result<f64, PhotoError> {
    let bad = |message: String| PhotoError::InvalidExif { field, message };
    let exif::Value::Rational(parts) = value else {
        return Err(bad("not degrees, minutes and seconds".into()));
    };
    if parts.len() != 3 || parts.iter().any(|r| r.denom == 0) {
        return Err(bad(format!(
            "{parts:?} is not degrees, minutes and seconds"
        )));
    }
    let [d, m, s] = [parts[0].to_f64(), parts[1].to_f64(), parts[2].to_f64()];
    if m >= 60.0 || s >= 60.0 {
        return Err(bad(format!(
            "{d}° {m}' {s}\" has minutes or seconds of 60 or more"
        )));
    }
    let mut value = d + m / 60.0 + s / 3600.0;
    if let Some(r) = reference {
        match r {
            exif::Value::Ascii(p) if p.first().and_then(|p| p.first()) == Some(&negative) => {
                value = -value
            }
            exif::Value::Ascii(_) => {}
            _ => return Err(bad("the hemisphere reference is not text".into())),
        }
    }
    Ok(value)
}
