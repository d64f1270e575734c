//! Image transformations on download, as Supabase's `/render/image` routes take them:
//! `width`, `height` (1 to 2500), `resize` (`cover`, the default: fill the box keeping
//! the aspect ratio and crop what projects; `contain`: fit inside the box; `fill`:
//! stretch to the box), `format` (`origin` keeps the stored format; otherwise WebP when
//! the client accepts it), and `quality` (20 to 100, default 80, for JPEG).
//!
//! Work is bounded: sources over [`MAX_SOURCE_BYTES`] or [`MAX_SOURCE_PIXELS`] are
//! refused before they are decoded, the decoder's allocations are capped by the declared
//! size, a resize whose intermediate buffer would pass the cap is refused, images are
//! never enlarged, and a transformation takes one of as many slots as there are cores
//! before its source is read, holding it until its work ends on the blocking pool; the
//! answer gives up after [`TIME_LIMIT`]. Photos are turned upright by their EXIF
//! orientation first.
//!
//! WebP is written lossless (what the `image` crate encodes), and `format=avif` is
//! answered with WebP: Galley has no AVIF encoder.

use std::io::Cursor;
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use image::{DynamicImage, ImageDecoder, ImageFormat, ImageReader, Limits};
use serde::{Deserialize, Serialize};

use crate::StorageError;

/// Largest stored image transformed (Supabase's limit).
pub const MAX_SOURCE_BYTES: u64 = 25 * 1024 * 1024;
/// Most pixels in an image transformed (Supabase's limit: 50 megapixels).
pub const MAX_SOURCE_PIXELS: u64 = 50_000_000;
/// Largest width or height asked for.
pub const MAX_DIMENSION: u32 = 2500;
/// Longest a transformation may take.
pub const TIME_LIMIT: Duration = Duration::from_secs(15);
/// Most memory the decoder may take for one image.
const MAX_DECODE_ALLOC: u64 = 512 * 1024 * 1024;

/// How an image is fitted to the box asked for.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Resize {
    #[default]
    Cover,
    Contain,
    Fill,
}

/// The transformations of one request (or of a signed URL's token).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
pub struct Transform {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub width: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub height: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resize: Option<Resize>,
    /// `origin`, or `avif`/`webp` (both written as WebP); absent: WebP if accepted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quality: Option<u8>,
}

/// One field of a query string or token as a number, judged as Supabase's schema does.
fn number(
    value: Option<&serde_json::Value>,
    name: &str,
    min: i64,
    max: i64,
) -> Result<Option<i64>, StorageError> {
    let parsed = match value {
        None | Some(serde_json::Value::Null) => return Ok(None),
        Some(serde_json::Value::Number(n)) => n.as_i64(),
        Some(serde_json::Value::String(s)) if s.is_empty() => return Ok(None),
        Some(serde_json::Value::String(s)) => s.trim().parse::<i64>().ok(),
        Some(_) => None,
    };
    let n = parsed
        .ok_or_else(|| StorageError::validation(format!("querystring/{name} must be integer")))?;
    if n < min {
        return Err(StorageError::validation(format!(
            "querystring/{name} must be >= {min}"
        )));
    }
    if n > max {
        return Err(StorageError::validation(format!(
            "querystring/{name} must be <= {max}"
        )));
    }
    Ok(Some(n))
}

impl Transform {
    /// The transformations named in `fields` (a query string's or a token's), checked.
    pub fn from_fields(
        fields: &serde_json::Map<String, serde_json::Value>,
    ) -> Result<Self, StorageError> {
        let dimension = |name| {
            number(fields.get(name), name, 0, MAX_DIMENSION.into())
                .map(|n| n.filter(|n| *n > 0).map(|n| n as u32))
        };
        let text = |name: &str| {
            fields
                .get(name)
                .and_then(serde_json::Value::as_str)
                .filter(|s| !s.is_empty())
        };
        let resize = match text("resize") {
            None => None,
            Some("cover") => Some(Resize::Cover),
            Some("contain") => Some(Resize::Contain),
            Some("fill") => Some(Resize::Fill),
            Some(_) => {
                return Err(StorageError::validation(
                    "querystring/resize must be equal to one of the allowed values",
                ));
            }
        };
        let format = match text("format") {
            None => None,
            Some(f @ ("origin" | "avif" | "webp")) => Some(f.to_owned()),
            Some(_) => {
                return Err(StorageError::validation(
                    "querystring/format must be equal to one of the allowed values",
                ));
            }
        };
        Ok(Self {
            width: dimension("width")?,
            height: dimension("height")?,
            resize,
            format,
            quality: number(fields.get("quality"), "quality", 20, 100)?.map(|q| q as u8),
        })
    }

    /// The transformations of a query string.
    pub fn from_query(query: &str) -> Result<Self, StorageError> {
        let pairs: Vec<(String, String)> = serde_urlencoded::from_str(query)
            .map_err(|err| StorageError::validation(err.to_string()))?;
        let fields = pairs
            .into_iter()
            .filter(|(name, _)| {
                matches!(
                    name.as_str(),
                    "width" | "height" | "resize" | "format" | "quality"
                )
            })
            .map(|(name, value)| (name, serde_json::Value::String(value)))
            .collect();
        Self::from_fields(&fields)
    }
}

/// The size an image of `source` pixels becomes, and the box it is then cropped to
/// (centred), under `transform`; never larger than the source.
pub fn plan(source: (u32, u32), transform: &Transform) -> ((u32, u32), (u32, u32)) {
    let (sw, sh) = (f64::from(source.0.max(1)), f64::from(source.1.max(1)));
    let round = |v: f64| (v.round() as u32).max(1);
    let scaled = |scale: f64| {
        let scale = scale.min(1.0);
        (round(sw * scale), round(sh * scale))
    };
    match (transform.width, transform.height) {
        (None, None) => (source, source),
        (Some(w), None) => {
            let size = scaled(f64::from(w) / sw);
            (size, size)
        }
        (None, Some(h)) => {
            let size = scaled(f64::from(h) / sh);
            (size, size)
        }
        (Some(w), Some(h)) => match transform.resize.unwrap_or_default() {
            Resize::Cover => {
                let size = scaled((f64::from(w) / sw).max(f64::from(h) / sh));
                (size, (w.min(size.0), h.min(size.1)))
            }
            Resize::Contain => {
                let size = scaled((f64::from(w) / sw).min(f64::from(h) / sh));
                (size, size)
            }
            Resize::Fill => {
                let size = (w.min(source.0), h.min(source.1));
                (size, size)
            }
        },
    }
}

/// A transformed image: its bytes and content type.
#[derive(Debug)]
pub struct Rendered {
    pub bytes: Vec<u8>,
    pub content_type: &'static str,
}

fn unsupported(message: impl Into<String>) -> StorageError {
    StorageError::invalid_request(message)
}

/// Transforms `source` (an image's bytes) as `transform` says; `webp_accepted` is whether
/// the client takes WebP (its `Accept` header). Blocking: run on the blocking pool.
pub fn render(
    source: &[u8],
    transform: &Transform,
    webp_accepted: bool,
) -> Result<Rendered, StorageError> {
    let reader = ImageReader::new(Cursor::new(source))
        .with_guessed_format()
        .map_err(|_| unsupported("The object is not an image"))?;
    let format = reader.format().filter(|f| {
        matches!(
            f,
            ImageFormat::Png | ImageFormat::Jpeg | ImageFormat::WebP | ImageFormat::Gif
        )
    });
    let Some(format) = format else {
        return Err(unsupported(
            "Image transformation supports PNG, JPEG, WebP and GIF sources",
        ));
    };
    let (width, height) = ImageReader::with_format(Cursor::new(source), format)
        .into_dimensions()
        .map_err(|_| unsupported("The image cannot be read"))?;
    if u64::from(width) * u64::from(height) > MAX_SOURCE_PIXELS {
        return Err(unsupported(format!(
            "The image is larger than {} megapixels",
            MAX_SOURCE_PIXELS / 1_000_000
        )));
    }
    // Decoding may allocate what the declared size needs (up to 16-bit RGBA) and no
    // more: a GIF frame larger than its canvas, or any lie about the size, fails here.
    let mut limits = Limits::default();
    limits.max_image_width = Some(width);
    limits.max_image_height = Some(height);
    limits.max_alloc =
        Some((u64::from(width) * u64::from(height) * 8).clamp(1 << 20, MAX_DECODE_ALLOC));
    let mut reader = ImageReader::with_format(Cursor::new(source), format);
    reader.limits(limits);
    let unreadable = |_| unsupported("The image cannot be read");
    let mut decoder = reader.into_decoder().map_err(unreadable)?;
    // Photos are turned upright as their EXIF orientation says, as Supabase's renderer
    // does (the re-encoded image carries no EXIF to say it).
    let orientation = decoder
        .orientation()
        .unwrap_or(image::metadata::Orientation::NoTransforms);
    let mut image = DynamicImage::from_decoder(decoder).map_err(unreadable)?;
    image.apply_orientation(orientation);
    let (width, height) = (image.width(), image.height());

    let ((rw, rh), (cw, ch)) = plan((width, height), transform);
    // Resizing samples vertically first, into a buffer of the source's width by the new
    // height in 32-bit floating-point RGBA.
    if (rw, rh) != (width, height) && u64::from(width) * u64::from(rh) * 16 > MAX_DECODE_ALLOC {
        return Err(unsupported(
            "The image is too wide to resize to that height",
        ));
    }
    let image = if (rw, rh) == (width, height) {
        image
    } else {
        image.resize_exact(rw, rh, image::imageops::FilterType::Lanczos3)
    };
    let image = if (cw, ch) == (rw, rh) {
        image
    } else {
        image.crop_imm((rw - cw) / 2, (rh - ch) / 2, cw, ch)
    };

    let output = match transform.format.as_deref() {
        Some("origin") => format,
        Some(_) => ImageFormat::WebP,
        None if webp_accepted => ImageFormat::WebP,
        None => format,
    };
    // WebP holds at most 16383 pixels a side: larger stays in its own format.
    let output = if output == ImageFormat::WebP && image.width().max(image.height()) > 16383 {
        format
    } else {
        output
    };
    encode(&image, output, transform.quality.unwrap_or(80))
}

fn encode(
    image: &DynamicImage,
    format: ImageFormat,
    quality: u8,
) -> Result<Rendered, StorageError> {
    let mut bytes = Vec::new();
    let failed = |err: image::ImageError| {
        tracing::error!(error = %err, "an image transformation could not be written");
        StorageError::internal()
    };
    let content_type = match format {
        ImageFormat::Jpeg => {
            let encoder = image::codecs::jpeg::JpegEncoder::new_with_quality(&mut bytes, quality);
            // JPEG has no alpha channel.
            DynamicImage::ImageRgb8(image.to_rgb8())
                .write_with_encoder(encoder)
                .map_err(failed)?;
            "image/jpeg"
        }
        ImageFormat::WebP => {
            // The WebP encoder takes 8-bit RGB(A).
            let image = if image.color().has_alpha() {
                DynamicImage::ImageRgba8(image.to_rgba8())
            } else {
                DynamicImage::ImageRgb8(image.to_rgb8())
            };
            image
                .write_to(&mut Cursor::new(&mut bytes), ImageFormat::WebP)
                .map_err(failed)?;
            "image/webp"
        }
        ImageFormat::Gif => {
            // The fastest quantisation: the default (quality first) takes seconds.
            let rgba = image.to_rgba8();
            image::codecs::gif::GifEncoder::new_with_speed(&mut bytes, 10)
                .encode(
                    rgba.as_raw(),
                    rgba.width(),
                    rgba.height(),
                    image::ExtendedColorType::Rgba8,
                )
                .map_err(failed)?;
            "image/gif"
        }
        _ => {
            image
                .write_to(&mut Cursor::new(&mut bytes), ImageFormat::Png)
                .map_err(failed)?;
            "image/png"
        }
    };
    Ok(Rendered {
        bytes,
        content_type,
    })
}

/// At most one transformation per core at a time.
static SLOTS: LazyLock<Arc<tokio::sync::Semaphore>> = LazyLock::new(|| {
    let cores = std::thread::available_parallelism().map_or(2, std::num::NonZeroUsize::get);
    Arc::new(tokio::sync::Semaphore::new(cores))
});

/// [`render`] on the blocking pool, holding `slot` until the work itself ends (not when
/// the answer gives up), so the work running at once never exceeds the slots; the
/// answer is an error after [`TIME_LIMIT`].
async fn render_bounded(
    slot: tokio::sync::OwnedSemaphorePermit,
    source: bytes::Bytes,
    transform: Transform,
    webp_accepted: bool,
) -> Result<Rendered, StorageError> {
    let work = tokio::task::spawn_blocking(move || {
        let rendered = render(&source, &transform, webp_accepted);
        drop(slot);
        rendered
    });
    match tokio::time::timeout(TIME_LIMIT, work).await {
        Ok(result) => result.map_err(|_| StorageError::internal())?,
        Err(_) => {
            tracing::warn!("an image transformation took longer than its limit");
            Err(StorageError::transformation_timeout())
        }
    }
}

impl crate::Storage {
    /// `object` transformed: its bytes read whole (it is at most [`MAX_SOURCE_BYTES`])
    /// and rendered; `None` when the row's bytes are gone (overwritten since it was read).
    pub async fn render(
        &self,
        object: &crate::ObjectRead,
        transform: &Transform,
        webp_accepted: bool,
    ) -> Result<Option<Rendered>, StorageError> {
        use futures_util::StreamExt;
        if object.size() > MAX_SOURCE_BYTES {
            return Err(unsupported(format!(
                "The image is larger than {} MB",
                MAX_SOURCE_BYTES / 1024 / 1024
            )));
        }
        // A slot first: waiting requests hold no image in memory. Waiting counts against
        // the time limit too.
        let slot = tokio::time::timeout(TIME_LIMIT, SLOTS.clone().acquire_owned())
            .await
            .map_err(|_| StorageError::transformation_timeout())?
            .map_err(|_| StorageError::internal())?;
        let Some(mut download) = self.bytes(object, None).await? else {
            return Ok(None);
        };
        let mut source =
            bytes::BytesMut::with_capacity(download.size.min(MAX_SOURCE_BYTES) as usize);
        while let Some(chunk) = download.body.next().await {
            let chunk = chunk.map_err(|err| {
                tracing::error!(error = %err, "reading stored bytes failed");
                StorageError::internal()
            })?;
            if (source.len() + chunk.len()) as u64 > MAX_SOURCE_BYTES {
                return Err(unsupported("The image is larger than its recorded size"));
            }
            source.extend_from_slice(&chunk);
        }
        render_bounded(slot, source.freeze(), transform.clone(), webp_accepted)
            .await
            .map(Some)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sized(width: Option<u32>, height: Option<u32>, resize: Option<Resize>) -> Transform {
        Transform {
            width,
            height,
            resize,
            ..Transform::default()
        }
    }

    #[test]
    fn boxes_follow_supabase_resize_modes_and_never_enlarge() {
        let source = (400, 200);
        assert_eq!(
            plan(source, &sized(Some(100), None, None)),
            ((100, 50), (100, 50))
        );
        assert_eq!(
            plan(source, &sized(None, Some(50), None)),
            ((100, 50), (100, 50))
        );
        // Cover: fill 100×100 (scale by the larger ratio), then crop the middle.
        assert_eq!(
            plan(source, &sized(Some(100), Some(100), None)),
            ((200, 100), (100, 100))
        );
        assert_eq!(
            plan(source, &sized(Some(100), Some(100), Some(Resize::Contain))),
            ((100, 50), (100, 50))
        );
        assert_eq!(
            plan(source, &sized(Some(100), Some(100), Some(Resize::Fill))),
            ((100, 100), (100, 100))
        );
        // Asked for more than there is: the source's size, cropped to the box's shape.
        assert_eq!(
            plan(source, &sized(Some(800), None, None)),
            ((400, 200), (400, 200))
        );
        assert_eq!(
            plan(source, &sized(Some(1000), Some(100), None)),
            ((400, 200), (400, 100))
        );
        assert_eq!(plan(source, &sized(None, None, None)), (source, source));
    }

    #[test]
    fn options_are_checked_as_supabase_checks_them() {
        let t =
            Transform::from_query("width=120&height=80&resize=contain&quality=55&format=origin")
                .unwrap();
        assert_eq!(
            t,
            Transform {
                width: Some(120),
                height: Some(80),
                resize: Some(Resize::Contain),
                format: Some("origin".to_owned()),
                quality: Some(55),
            }
        );
        let refused = |q: &str| Transform::from_query(q).unwrap_err().message;
        assert_eq!(refused("width=abc"), "querystring/width must be integer");
        assert_eq!(refused("height=-3"), "querystring/height must be >= 0");
        assert_eq!(refused("width=2501"), "querystring/width must be <= 2500");
        assert_eq!(refused("quality=5"), "querystring/quality must be >= 20");
        assert_eq!(
            refused("resize=stretch"),
            "querystring/resize must be equal to one of the allowed values"
        );
        assert_eq!(
            refused("format=bmp"),
            "querystring/format must be equal to one of the allowed values"
        );
        // Other parameters (a signed URL's token, `download`) are not transformations.
        assert_eq!(
            Transform::from_query("token=x&download=").unwrap(),
            Transform::default()
        );
    }

    fn png(width: u32, height: u32) -> Vec<u8> {
        let image = image::RgbaImage::from_fn(width, height, |x, y| {
            image::Rgba([(x % 256) as u8, (y % 256) as u8, 128, 255])
        });
        let mut bytes = Vec::new();
        DynamicImage::ImageRgba8(image)
            .write_to(&mut Cursor::new(&mut bytes), ImageFormat::Png)
            .unwrap();
        bytes
    }

    /// PNG's chunk checksum (CRC-32, ISO 3309).
    fn crc32(bytes: &[u8]) -> u32 {
        let mut crc = 0xffff_ffffu32;
        for &byte in bytes {
            crc ^= u32::from(byte);
            for _ in 0..8 {
                crc = if crc & 1 == 1 {
                    (crc >> 1) ^ 0xedb8_8320
                } else {
                    crc >> 1
                };
            }
        }
        !crc
    }

    fn dimensions(bytes: &[u8]) -> (ImageFormat, (u32, u32)) {
        let reader = ImageReader::new(Cursor::new(bytes))
            .with_guessed_format()
            .unwrap();
        let format = reader.format().unwrap();
        (format, reader.into_dimensions().unwrap())
    }

    #[test]
    fn images_are_resized_cropped_and_converted() {
        let source = png(300, 150);
        let cover = render(&source, &sized(Some(60), Some(60), None), false).unwrap();
        assert_eq!(cover.content_type, "image/png");
        assert_eq!(dimensions(&cover.bytes), (ImageFormat::Png, (60, 60)));

        let webp = render(&source, &sized(Some(100), None, None), true).unwrap();
        assert_eq!(webp.content_type, "image/webp");
        assert_eq!(dimensions(&webp.bytes), (ImageFormat::WebP, (100, 50)));

        let origin = Transform {
            format: Some("origin".to_owned()),
            ..sized(Some(100), None, None)
        };
        assert_eq!(
            render(&source, &origin, true).unwrap().content_type,
            "image/png"
        );

        let mut jpeg = Vec::new();
        image::RgbImage::from_pixel(80, 40, image::Rgb([10, 20, 30]))
            .write_to(&mut Cursor::new(&mut jpeg), ImageFormat::Jpeg)
            .unwrap();
        let low = Transform {
            quality: Some(20),
            ..sized(Some(40), None, None)
        };
        let out = render(&jpeg, &low, false).unwrap();
        assert_eq!(out.content_type, "image/jpeg");
        assert_eq!(dimensions(&out.bytes), (ImageFormat::Jpeg, (40, 20)));
    }

    #[test]
    fn what_is_not_a_bounded_image_is_refused_before_decoding() {
        let refused = |bytes: &[u8]| render(bytes, &Transform::default(), true).unwrap_err();
        assert_eq!(refused(b"plain text, not an image").code, "InvalidRequest");
        // A PNG header claiming 60000×60000 pixels: refused by its declared size, no
        // pixel buffer is ever made for it.
        let mut huge = png(1, 1);
        huge[16..20].copy_from_slice(&60_000u32.to_be_bytes());
        huge[20..24].copy_from_slice(&60_000u32.to_be_bytes());
        let crc = crc32(&huge[12..29]);
        huge[29..33].copy_from_slice(&crc.to_be_bytes());
        assert_eq!(
            refused(&huge).message,
            "The image is larger than 50 megapixels"
        );
    }
}
