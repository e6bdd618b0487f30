//! `dam_core::image_io` against Pillow 11.3 (the original's image library) on the modes users
//! hand us: JPEGs (4:4:4, 4:2:0, 4:2:2, progressive, grey; odd sizes), a mask drawn in
//! colours, RGBA, grey+alpha, palettes with and without transparency, 2-bit grey and the
//! 16-bit PNG kinds; lossy WebP, BMP and TIFF. The expected pixels are Pillow's `convert("RGB")` and `convert("L") > 0`
//! (`scripts/make-pillow-modes.py`).

use std::path::PathBuf;

use dam_core::{Mask, image_io};

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/pillow-modes")
}

/// The input files: every file that has a `<stem>.rgb.png` beside it.
fn inputs() -> Vec<(String, PathBuf)> {
    let mut files: Vec<_> = std::fs::read_dir(dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let name = p.file_name().unwrap().to_str().unwrap();
            ![".rgb.png", ".mask.png", ".scribble.png"]
                .iter()
                .any(|s| name.ends_with(s))
        })
        .map(|p| (p.file_stem().unwrap().to_str().unwrap().to_string(), p))
        .collect();
    files.sort();
    assert!(files.len() >= 19, "the fixture files are there: {files:?}");
    files
}

#[test]
fn images_decode_to_pillows_rgb_pixels() {
    for (stem, path) in inputs() {
        let expected = image::open(dir().join(format!("{stem}.rgb.png"))).unwrap().to_rgb8();
        let got = image_io::open_rgb(&path).unwrap();
        assert_eq!(got.dimensions(), expected.dimensions(), "{stem}: size");
        let differing = got.pixels().zip(expected.pixels()).filter(|(a, b)| a != b).count();
        assert_eq!(differing, 0, "{stem}: {differing} pixels differ from Pillow's");
    }
}

#[test]
fn masks_read_as_pillows_l_above_zero() {
    check_masks("mask", |p| Mask::open(p));
}

#[test]
fn scribbles_read_as_the_demos_drawing_layer() {
    check_masks("scribble", |p| Mask::open_scribble(p));
}

/// Every input read by `open` against Pillow's `<stem>.<kind>.png`.
fn check_masks(kind: &str, open: impl Fn(&std::path::Path) -> dam_core::Result<Mask>) {
    for (stem, path) in inputs() {
        let expected = image::open(dir().join(format!("{stem}.{kind}.png")))
            .unwrap()
            .to_luma8();
        let want: Vec<bool> = expected.as_raw().iter().map(|&v| v != 0).collect();
        match open(&path) {
            Ok(mask) => {
                assert_eq!((mask.width(), mask.height()), expected.dimensions(), "{stem}: size");
                let differing = mask.as_slice().iter().zip(&want).filter(|(a, b)| a != b).count();
                assert_eq!(differing, 0, "{stem}: {differing} {kind} pixels differ from Pillow's");
            }
            // An all-background file is an empty mask, which is an error for a region.
            Err(e) => assert!(want.iter().all(|&v| !v), "{stem}: {e}"),
        }
    }
}

#[test]
fn bad_image_bytes_are_errors() {
    // A JPEG header cut short: libjpeg's fatal error comes back as an error, not a panic.
    let jpeg = std::fs::read(dir().join("jpeg-420.jpg")).unwrap();
    for bytes in [&jpeg[..3], &jpeg[..40], b"not an image".as_slice()] {
        assert!(image_io::decode_rgb(bytes).is_err(), "{} bytes", bytes.len());
    }
    let missing = image_io::open_rgb(dir().join("missing.png")).unwrap_err();
    assert!(missing.to_string().contains("missing.png"), "{missing}");
}
