//! Test photos: real JPEGs carrying the metadata a phone writes (a GPS position, a camera serial
//! number), for the tests that check it never leaves the author's node.

use std::io::Cursor;

/// A TIFF EXIF block (little-endian) with a GPS latitude of 52° 22' 12.34" N and a body
/// serial number.
pub fn exif_with_gps() -> Vec<u8> {
    let mut t = Vec::new();
    t.extend_from_slice(b"II*\0");
    t.extend_from_slice(&8u32.to_le_bytes());
    let entry = |t: &mut Vec<u8>, tag: u16, kind: u16, count: u32, value: u32| {
        t.extend_from_slice(&tag.to_le_bytes());
        t.extend_from_slice(&kind.to_le_bytes());
        t.extend_from_slice(&count.to_le_bytes());
        t.extend_from_slice(&value.to_le_bytes());
    };
    // IFD0 at 8: the Exif IFD pointer and the GPS IFD pointer.
    let exif_ifd = 8 + 2 + 2 * 12 + 4;
    let gps_ifd = exif_ifd + 2 + 12 + 4;
    let serial_at = gps_ifd + 2 + 2 * 12 + 4;
    let lat_at = serial_at + 8;
    t.extend_from_slice(&2u16.to_le_bytes());
    entry(&mut t, 0x8769, 4, 1, exif_ifd);
    entry(&mut t, 0x8825, 4, 1, gps_ifd);
    t.extend_from_slice(&0u32.to_le_bytes());
    t.extend_from_slice(&1u16.to_le_bytes());
    entry(&mut t, 0xa431, 2, 7, serial_at);
    t.extend_from_slice(&0u32.to_le_bytes());
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

/// A real JPEG of noise (`w` × `h`) carrying an EXIF block with a GPS position, and the same
/// JPEG as the encoder wrote it, without.
pub fn photo_with_gps(w: u32, h: u32) -> (Vec<u8>, Vec<u8>) {
    let mut seed = 0x9e37_79b9u32;
    let img = image::RgbImage::from_fn(w, h, |_, _| {
        seed ^= seed << 13;
        seed ^= seed >> 17;
        seed ^= seed << 5;
        image::Rgb([seed as u8, (seed >> 8) as u8, (seed >> 16) as u8])
    });
    let mut clean = Cursor::new(Vec::new());
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut clean, 90)
        .encode_image(&img)
        .expect("encode the test photo");
    let clean = clean.into_inner();
    let mut app1 = b"Exif\0\0".to_vec();
    app1.extend(exif_with_gps());
    let mut with = clean[..2].to_vec();
    with.extend_from_slice(&[0xFF, 0xE1]);
    with.extend_from_slice(&u16::try_from(app1.len() + 2).expect("short").to_be_bytes());
    with.extend_from_slice(&app1);
    with.extend_from_slice(&clean[2..]);
    // What a phone's EXIF reader sees: a GPS latitude.
    let exif = exif::Reader::new()
        .read_from_container(&mut Cursor::new(&with))
        .expect("the test photo carries EXIF");
    assert!(exif
        .get_field(exif::Tag::GPSLatitude, exif::In::PRIMARY)
        .is_some());
    (with, clean)
}
