//! What an uploaded file is, what it gives away, and what an officer sees of a photo: the
//! media type from the content (never the file name), image metadata removed without
//! re-encoding, and thumbnails made where the photo is opened (never taken from the author).
//!
//! Metadata removal keeps the image data byte for byte and drops the segments around it:
//!
//! - JPEG: every APPn segment but JFIF (APP0), the ICC colour profile (APP2) and Adobe's colour
//!   transform flag (APP14) — so EXIF (GPS position, camera and lens serial numbers, owner,
//!   times), XMP, IPTC/Photoshop and multi-picture indexes go — every comment, and everything
//!   after the end of the image (the previews and depth maps phones append, which carry EXIF
//!   of their own). The EXIF orientation, if not upright, is kept in a new EXIF block holding
//!   only it, so the photo is not shown sideways.
//! - PNG: the `eXIf`, `tEXt`, `zTXt`, `iTXt` and `tIME` chunks.
//! - WebP: the `EXIF` and `XMP ` chunks.
//! - BMP carries none. Other image formats (TIFF, HEIF, AVIF, GIF, raw camera formats, ...)
//!   are refused unless the uploader keeps the metadata explicitly: this node cannot clean them.
//!
//! Documents (PDF, office files) are passed as they are.

use img_parts::jpeg::{markers, Jpeg, JpegSegment};
use img_parts::{Bytes, ImageEXIF};
use liaison_protocol::attachment::check_media_type;

use crate::error::{Error, Result};

/// An upload ready to be encrypted.
#[derive(Debug)]
pub struct Prepared {
    /// The bytes to store: the upload, with its metadata removed unless kept.
    pub bytes: Vec<u8>,
    /// Its media type, found from the content.
    pub media_type: String,
    /// What was removed, for the uploader (empty if nothing, or if kept).
    pub removed: Vec<String>,
}

/// The media type of `bytes`, from their content: a known signature, else `text/plain` for
/// UTF-8 text, else `application/octet-stream`.
pub fn media_type(bytes: &[u8]) -> String {
    if let Some(t) = infer::get(bytes) {
        let mime = t.mime_type().to_ascii_lowercase();
        if check_media_type(&mime).is_ok() {
            return mime;
        }
    }
    match std::str::from_utf8(bytes) {
        Ok(text)
            if !text
                .chars()
                .any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t')) =>
        {
            "text/plain".into()
        }
        _ => "application/octet-stream".into(),
    }
}

/// Finds the media type of an upload and, unless `keep_metadata`, removes its image metadata.
pub fn prepare(bytes: Vec<u8>, keep_metadata: bool) -> Result<Prepared> {
    let media_type = media_type(&bytes);
    if keep_metadata {
        return Ok(Prepared {
            bytes,
            media_type,
            removed: Vec::new(),
        });
    }
    let (bytes, removed) = match media_type.as_str() {
        "image/jpeg" => strip_jpeg(bytes)?,
        "image/png" => strip_png(bytes)?,
        "image/webp" => strip_webp(bytes)?,
        "image/bmp" => (bytes, Vec::new()),
        other if other.starts_with("image/") => {
            return Err(Error::Invalid(format!(
                "this node cannot remove the metadata (GPS position, serial numbers) of {other} \
                 images: convert the photo to JPEG, PNG or WebP first, or send it as it is with \
                 --keep-metadata (API: keep_metadata=true)"
            )))
        }
        _ => (bytes, Vec::new()),
    };
    Ok(Prepared {
        bytes,
        media_type,
        removed,
    })
}

fn unreadable(kind: &str, e: impl std::fmt::Display) -> Error {
    Error::Invalid(format!(
        "the upload looks like a {kind} image but cannot be read ({e}); its metadata cannot be \
         removed: repair it, or send it as it is with --keep-metadata"
    ))
}

/// The JPEG marker of APPn.
const APP0: u8 = 0xE0;
const APP15: u8 = 0xEF;
const COM: u8 = 0xFE;

fn strip_jpeg(bytes: Vec<u8>) -> Result<(Vec<u8>, Vec<String>)> {
    let mut jpeg = Jpeg::from_bytes(Bytes::from(bytes)).map_err(|e| unreadable("JPEG", e))?;
    let mut removed = Vec::new();
    let mut orientation = None;
    let mut kept = Vec::new();
    for segment in jpeg.segments().iter() {
        let marker = segment.marker();
        let contents = segment.contents();
        // Specific segments first, then every other APPn: the overlap is the point.
        #[allow(clippy::match_overlapping_arm)]
        let keep = match marker {
            APP0 => true,
            markers::APP1 if contents.starts_with(b"Exif\0\0") => {
                let (what, o) = describe_exif(&contents[6..]);
                orientation = orientation.or(o);
                removed.push(what);
                false
            }
            markers::APP1 if contents.starts_with(b"http://ns.adobe.com/") => {
                removed.push("XMP metadata".to_owned());
                false
            }
            markers::APP2 if contents.starts_with(b"ICC_PROFILE\0") => true,
            markers::APP2 if contents.starts_with(b"MPF\0") => {
                removed.push("multi-picture index".to_owned());
                false
            }
            0xED => {
                removed.push("IPTC/Photoshop metadata".to_owned());
                false
            }
            0xEE if contents.starts_with(b"Adobe") => true,
            APP0..=APP15 => {
                removed.push(format!("APP{} segment", marker - APP0));
                false
            }
            COM => {
                removed.push("comment".to_owned());
                false
            }
            _ => true,
        };
        if !keep {
            continue;
        }
        if segment.has_entropy() {
            let (entropy, inner, trailing) = cut_entropy(&entropy_of(segment))?;
            if inner {
                removed.push("metadata between scans".to_owned());
            }
            if trailing {
                removed.push("data after the image (embedded previews)".to_owned());
            }
            kept.push(JpegSegment::new_with_entropy(
                marker,
                contents.clone(),
                Bytes::from(entropy),
            ));
        } else {
            kept.push(segment.clone());
        }
    }
    *jpeg.segments_mut() = kept;
    if let Some(o) = orientation.filter(|o| (2..=8).contains(o)) {
        jpeg.set_exif(Some(Bytes::from(orientation_exif(o))));
        removed.push(format!("(kept: the orientation, {o})"));
    }
    removed.dedup();
    Ok((jpeg.encoder().bytes().to_vec(), removed))
}

/// The entropy-coded data that follows a scan header: what the segment encodes to after its
/// marker, length and contents (img-parts keeps it, and everything after it, with the
/// segment).
fn entropy_of(segment: &JpegSegment) -> Bytes {
    let header = segment.len();
    let encoded = segment.clone().encoder().bytes();
    encoded.slice(header.min(encoded.len())..)
}

/// What an EXIF block (a TIFF structure) gives away, and its orientation.
fn describe_exif(tiff: &[u8]) -> (String, Option<u16>) {
    use exif::{Context, In, Tag};
    let Ok(exif) = exif::Reader::new().read_raw(tiff.to_vec()) else {
        return ("EXIF metadata".to_owned(), None);
    };
    let mut what = Vec::new();
    if exif.fields().any(|f| f.tag.context() == Context::Gps) {
        what.push("GPS position");
    }
    if exif.fields().any(|f| {
        matches!(
            f.tag,
            Tag::BodySerialNumber | Tag::LensSerialNumber | Tag::ImageUniqueID
        )
    }) {
        what.push("serial numbers");
    }
    if exif
        .fields()
        .any(|f| matches!(f.tag, Tag::CameraOwnerName | Tag::Artist))
    {
        what.push("owner");
    }
    if exif
        .fields()
        .any(|f| matches!(f.tag, Tag::Make | Tag::Model))
    {
        what.push("camera model");
    }
    if exif
        .fields()
        .any(|f| matches!(f.tag, Tag::DateTimeOriginal | Tag::DateTime))
    {
        what.push("time taken");
    }
    let orientation = exif
        .get_field(Tag::Orientation, In::PRIMARY)
        .and_then(|f| f.value.get_uint(0))
        .and_then(|v| u16::try_from(v).ok());
    let label = if what.is_empty() {
        "EXIF metadata".to_owned()
    } else {
        format!("EXIF metadata ({})", what.join(", "))
    };
    (label, orientation)
}

/// A TIFF structure holding only an orientation tag (big-endian, one IFD, one entry).
fn orientation_exif(orientation: u16) -> Vec<u8> {
    let mut out = Vec::with_capacity(26);
    out.extend_from_slice(b"MM\0\x2a");
    out.extend_from_slice(&8u32.to_be_bytes()); // IFD0 right after the header
    out.extend_from_slice(&1u16.to_be_bytes()); // one entry
    out.extend_from_slice(&0x0112u16.to_be_bytes()); // Orientation
    out.extend_from_slice(&3u16.to_be_bytes()); // SHORT
    out.extend_from_slice(&1u32.to_be_bytes()); // one value
    out.extend_from_slice(&orientation.to_be_bytes());
    out.extend_from_slice(&[0, 0]); // padding of the value field
    out.extend_from_slice(&0u32.to_be_bytes()); // no next IFD
    out
}

/// The entropy-coded data after a JPEG's first scan header, cut just after the end-of-image
/// marker, with any APPn or comment segment between scans left out. Returns the bytes,
/// whether a segment was left out, and whether anything followed the end of the image.
fn cut_entropy(e: &[u8]) -> Result<(Vec<u8>, bool, bool)> {
    let mut out = Vec::with_capacity(e.len());
    let mut copy_from = 0;
    let mut inner = false;
    let mut i = 0;
    while i + 1 < e.len() {
        if e[i] != 0xFF {
            i += 1;
            continue;
        }
        match e[i + 1] {
            // Stuffing, restart markers, TEM: no length.
            0x00 | 0x01 | 0xD0..=0xD7 => i += 2,
            // Fill byte before a marker.
            0xFF => i += 1,
            0xD9 => {
                let end = i + 2;
                out.extend_from_slice(&e[copy_from..end]);
                return Ok((out, inner, end < e.len()));
            }
            marker => {
                let len = e
                    .get(i + 2..i + 4)
                    .map(|b| usize::from(u16::from_be_bytes([b[0], b[1]])))
                    .ok_or_else(|| unreadable("JPEG", "a marker segment is cut off"))?;
                let end = i + 2 + len;
                if end > e.len() || len < 2 {
                    return Err(unreadable("JPEG", "a marker segment is cut off"));
                }
                if (APP0..=APP15).contains(&marker) || marker == COM {
                    out.extend_from_slice(&e[copy_from..i]);
                    copy_from = end;
                    inner = true;
                }
                i = end;
            }
        }
    }
    Err(unreadable("JPEG", "no end-of-image marker"))
}

fn strip_png(bytes: Vec<u8>) -> Result<(Vec<u8>, Vec<String>)> {
    let mut png =
        img_parts::png::Png::from_bytes(Bytes::from(bytes)).map_err(|e| unreadable("PNG", e))?;
    let mut removed = Vec::new();
    for (kind, what) in [
        (*b"eXIf", "EXIF metadata"),
        (*b"tEXt", "text chunks"),
        (*b"zTXt", "text chunks"),
        (*b"iTXt", "text chunks (XMP)"),
        (*b"tIME", "modification time"),
    ] {
        if png.chunk_by_type(kind).is_some() {
            png.remove_chunks_by_type(kind);
            removed.push(what.to_owned());
        }
    }
    removed.dedup();
    Ok((png.encoder().bytes().to_vec(), removed))
}

fn strip_webp(bytes: Vec<u8>) -> Result<(Vec<u8>, Vec<String>)> {
    let mut webp =
        img_parts::webp::WebP::from_bytes(Bytes::from(bytes)).map_err(|e| unreadable("WebP", e))?;
    let mut removed = Vec::new();
    if webp.has_chunk(*b"XMP ") {
        webp.remove_chunks_by_id(*b"XMP ");
        removed.push("XMP metadata".to_owned());
    }
    if webp.has_chunk(*b"EXIF") {
        removed.push("EXIF metadata".to_owned());
    }
    // Also brings the extended header's flags in line with the chunks left.
    webp.set_exif(None);
    Ok((webp.encoder().bytes().to_vec(), removed))
}

/// Largest thumbnail edge, in pixels.
pub const MAX_THUMBNAIL: u32 = 1024;
/// Smallest thumbnail edge, in pixels.
pub const MIN_THUMBNAIL: u32 = 16;
/// Largest image dimension decoded for a thumbnail, in pixels.
const MAX_DIMENSION: u32 = 20_000;
/// Most memory one decoding may allocate, in bytes.
const MAX_DECODE_ALLOC: u64 = 512 * 1024 * 1024;

/// A thumbnail of the image `bytes` of type `media_type`, at most `max` pixels (clamped to
/// 16..=1024) on its longer edge, turned upright by its orientation: a JPEG for a JPEG, a PNG
/// otherwise. Decoding is bounded in dimensions and memory, so a hostile image fails instead of
/// exhausting the node.
pub fn thumbnail(bytes: &[u8], media_type: &str, max: u32) -> Result<(Vec<u8>, &'static str)> {
    use image::{ImageDecoder, ImageReader};
    use std::io::Cursor;
    let format = match media_type {
        "image/jpeg" => image::ImageFormat::Jpeg,
        "image/png" => image::ImageFormat::Png,
        "image/webp" => image::ImageFormat::WebP,
        "image/bmp" => image::ImageFormat::Bmp,
        other => {
            return Err(Error::Invalid(format!(
                "no thumbnail for {other}: only JPEG, PNG, WebP and BMP images have one"
            )))
        }
    };
    let max = max.clamp(MIN_THUMBNAIL, MAX_THUMBNAIL);
    let bad = |e: image::ImageError| Error::Invalid(format!("the image cannot be decoded: {e}"));
    let mut limits = image::Limits::default();
    limits.max_image_width = Some(MAX_DIMENSION);
    limits.max_image_height = Some(MAX_DIMENSION);
    limits.max_alloc = Some(MAX_DECODE_ALLOC);
    let mut reader = ImageReader::with_format(Cursor::new(bytes), format);
    reader.limits(limits);
    let mut decoder = reader.into_decoder().map_err(bad)?;
    let orientation = decoder
        .orientation()
        .unwrap_or(image::metadata::Orientation::NoTransforms);
    let mut img = image::DynamicImage::from_decoder(decoder).map_err(bad)?;
    img.apply_orientation(orientation);
    let thumb = img.thumbnail(max, max);
    let mut out = Cursor::new(Vec::new());
    let mime = if format == image::ImageFormat::Jpeg {
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 80)
            .encode_image(&thumb.to_rgb8())
            .map_err(bad)?;
        "image/jpeg"
    } else {
        thumb
            .write_to(&mut out, image::ImageFormat::Png)
            .map_err(bad)?;
        "image/png"
    };
    Ok((out.into_inner(), mime))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::io::Cursor;

    /// An EXIF block (TIFF, little-endian) with a GPS position, a body serial number and an
    /// orientation.
    pub(crate) fn exif_with_gps(orientation: u16) -> Vec<u8> {
        let mut t = Vec::new();
        t.extend_from_slice(b"II*\0");
        t.extend_from_slice(&8u32.to_le_bytes());
        // IFD0 at 8: Orientation, ExifIFD pointer, GPS pointer.
        t.extend_from_slice(&3u16.to_le_bytes());
        let entry = |t: &mut Vec<u8>, tag: u16, kind: u16, count: u32, value: u32| {
            t.extend_from_slice(&tag.to_le_bytes());
            t.extend_from_slice(&kind.to_le_bytes());
            t.extend_from_slice(&count.to_le_bytes());
            t.extend_from_slice(&value.to_le_bytes());
        };
        let exif_ifd = 8 + 2 + 3 * 12 + 4;
        let gps_ifd = exif_ifd + 2 + 12 + 4;
        entry(&mut t, 0x0112, 3, 1, u32::from(orientation));
        entry(&mut t, 0x8769, 4, 1, exif_ifd);
        entry(&mut t, 0x8825, 4, 1, gps_ifd);
        t.extend_from_slice(&0u32.to_le_bytes());
        // Exif IFD: BodySerialNumber "SN1234" (7 bytes with NUL, stored after the GPS IFD).
        let serial_at = gps_ifd + 2 + 2 * 12 + 4;
        t.extend_from_slice(&1u16.to_le_bytes());
        entry(&mut t, 0xa431, 2, 7, serial_at);
        t.extend_from_slice(&0u32.to_le_bytes());
        // GPS IFD: latitude ref "N", latitude (3 rationals after the serial).
        let lat_at = serial_at + 8;
        t.extend_from_slice(&2u16.to_le_bytes());
        entry(&mut t, 0x0001, 2, 2, u32::from_le_bytes(*b"N\0\0\0"));
        entry(&mut t, 0x0002, 5, 3, lat_at);
        t.extend_from_slice(&0u32.to_le_bytes());
        t.extend_from_slice(b"SN1234\0\0");
        for (n, d) in [(52u32, 1u32), (22, 1), (1234, 100)] {
            t.extend_from_slice(&n.to_le_bytes());
            t.extend_from_slice(&d.to_le_bytes());
        }
        t
    }

    /// A real JPEG of `w` × `h` noise pixels with an EXIF block, a comment, and a fake preview
    /// after the end of the image.
    pub(crate) fn photo(w: u32, h: u32, orientation: u16) -> (Vec<u8>, Vec<u8>) {
        let mut seed = 0x1234_5678u32;
        let img = image::RgbImage::from_fn(w, h, |_, _| {
            seed ^= seed << 13;
            seed ^= seed >> 17;
            seed ^= seed << 5;
            image::Rgb([seed as u8, (seed >> 8) as u8, (seed >> 16) as u8])
        });
        let mut plain = Cursor::new(Vec::new());
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut plain, 90)
            .encode_image(&img)
            .expect("encodes");
        let plain = plain.into_inner();
        let mut exif = b"Exif\0\0".to_vec();
        exif.extend(exif_with_gps(orientation));
        let mut with = plain[..2].to_vec();
        with.extend_from_slice(&[0xFF, 0xE1]);
        with.extend_from_slice(&((exif.len() + 2) as u16).to_be_bytes());
        with.extend_from_slice(&exif);
        with.extend_from_slice(&[0xFF, 0xFE, 0, 7]);
        with.extend_from_slice(b"hello");
        with.extend_from_slice(&plain[2..]);
        with.extend_from_slice(b"\xFF\xD8preview with EXIF\xFF\xD9");
        (with, plain)
    }

    #[test]
    fn media_types_come_from_the_content() {
        let (jpeg, _) = photo(8, 8, 1);
        assert_eq!(media_type(&jpeg), "image/jpeg");
        assert_eq!(media_type(b"%PDF-1.7\n..."), "application/pdf");
        assert_eq!(media_type(b"plain words\n"), "text/plain");
        assert_eq!(media_type(&[0, 1, 2, 3, 0xff]), "application/octet-stream");
    }

    #[test]
    fn jpeg_metadata_goes_and_the_image_stays() {
        let (with, plain) = photo(64, 48, 1);
        let prepared = prepare(with.clone(), false).expect("prepares");
        assert_eq!(prepared.media_type, "image/jpeg");
        // Exactly the encoder's output: the EXIF, the comment and the trailing preview gone.
        assert_eq!(prepared.bytes, plain);
        assert!(
            prepared.removed.iter().any(|r| r.contains("GPS position")),
            "{:?}",
            prepared.removed
        );
        assert!(prepared
            .removed
            .iter()
            .any(|r| r.contains("serial numbers")));
        assert!(prepared
            .removed
            .iter()
            .any(|r| r.contains("after the image")));
        let kept = prepare(with.clone(), true).expect("prepares");
        assert_eq!(kept.bytes, with);
        assert!(kept.removed.is_empty());
    }

    #[test]
    fn a_sideways_photo_keeps_only_its_orientation() {
        let (with, _) = photo(32, 16, 6);
        let prepared = prepare(with, false).expect("prepares");
        let jpeg = Jpeg::from_bytes(Bytes::from(prepared.bytes.clone())).expect("parses");
        let exif = jpeg.exif().expect("an EXIF block");
        let read = exif::Reader::new().read_raw(exif.to_vec()).expect("reads");
        assert_eq!(read.fields().count(), 1);
        let o = read
            .get_field(exif::Tag::Orientation, exif::In::PRIMARY)
            .and_then(|f| f.value.get_uint(0));
        assert_eq!(o, Some(6));
        let (thumb, mime) = thumbnail(&prepared.bytes, "image/jpeg", 8).expect("thumbnail");
        assert_eq!(mime, "image/jpeg");
        let t = image::load_from_memory(&thumb).expect("decodes");
        // 32 × 16 turned upright is 16 × 32; the edge asked for is raised to the least, 16.
        assert_eq!((t.width(), t.height()), (8, 16));
    }

    #[test]
    fn png_text_goes() {
        let img = image::RgbImage::from_pixel(4, 4, image::Rgb([1, 2, 3]));
        let mut out = Cursor::new(Vec::new());
        img.write_to(&mut out, image::ImageFormat::Png)
            .expect("encodes");
        let mut png = img_parts::png::Png::from_bytes(Bytes::from(out.into_inner())).expect("png");
        let chunk = img_parts::png::PngChunk::new(*b"tEXt", Bytes::from_static(b"GPS\x0052N"));
        let at = png.chunks().len() - 1;
        png.chunks_mut().insert(at, chunk);
        let bytes = png.encoder().bytes().to_vec();
        let prepared = prepare(bytes, false).expect("prepares");
        assert_eq!(prepared.removed, vec!["text chunks".to_owned()]);
        assert!(!prepared.bytes.windows(3).any(|w| w == b"52N"));
        let (thumb, mime) = thumbnail(&prepared.bytes, "image/png", 64).expect("thumbnail");
        assert_eq!(mime, "image/png");
        assert!(image::load_from_memory(&thumb).is_ok());
    }

    #[test]
    fn a_hostile_image_gets_no_thumbnail_and_no_panic() {
        // A PNG header announcing 100,000 × 100,000 pixels: refused by the limits.
        let mut png = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR".to_vec();
        png.extend_from_slice(&100_000u32.to_be_bytes());
        png.extend_from_slice(&100_000u32.to_be_bytes());
        png.extend_from_slice(&[8, 2, 0, 0, 0, 0, 0, 0, 0]);
        assert!(thumbnail(&png, "image/png", 64).is_err());
        let (jpeg, _) = photo(16, 16, 1);
        assert!(thumbnail(&jpeg[..jpeg.len() / 2], "image/jpeg", 64).is_err());
        assert!(thumbnail(b"%PDF-1.7", "application/pdf", 64).is_err());
    }

    #[test]
    fn images_that_cannot_be_cleaned_are_refused() {
        let tiff = exif_with_gps(1);
        assert_eq!(media_type(&tiff), "image/tiff");
        let err = prepare(tiff.clone(), false).expect_err("refused");
        assert!(err.to_string().contains("--keep-metadata"), "{err}");
        assert!(prepare(tiff, true).is_ok());
        let broken = b"\xFF\xD8\xFF\xE0\x00\x10JFIF".to_vec();
        assert!(prepare(broken, false).is_err());
    }
}
