//! The focal prompt against Pillow 11.3 (the original's image library) over random geometry
//! the four dam-tiny cases do not reach: images smaller than the 48 px minimum box, 1-pixel
//! images and masks, masks on every edge and corner, whole-image masks, scattered pixels,
//! strong up- and downscaling, at S = 98 and S = 384. `scripts/make-focal-cases.py` wrote
//! the inputs and Pillow's resized 8-bit views; the test normalises those as the processor
//! does and asks for equality — every value, the crop rectangle, and upstream's "crop
//! differs" flag.

use std::path::PathBuf;

use dam_core::{ImageProcessor, Mask, focal_prompt};

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/focal-random")
}

/// `[3·S²]` RGB planes and `[S²]` mask plane of Pillow's views, normalised like the processor.
fn expected_view(processor: &ImageProcessor, case: &str, rgb: &str, mask: &str) -> Vec<f32> {
    let rgb = image::open(dir().join(case).join(rgb)).unwrap().to_rgb8();
    let mask = image::open(dir().join(case).join(mask)).unwrap().to_luma8();
    let s = processor.size;
    assert_eq!(
        (rgb.dimensions(), mask.dimensions()),
        ((s, s), (s, s)),
        "{case}: view sizes"
    );
    // transformers: rescale in f64, cast to f32, then (x − 0.5) / 0.5 in f32.
    let norm = |v: u8| ((v as f64 / 255.0) as f32 - 0.5) / 0.5;
    let mut out: Vec<f32> = (0..3)
        .flat_map(|c| rgb.pixels().map(move |p| p.0[c]))
        .map(norm)
        .collect();
    out.extend(mask.pixels().map(|p| norm(p.0[0])));
    out
}

#[test]
fn focal_prompts_equal_pillows_for_random_geometry() {
    let cases: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir().join("cases.json")).unwrap()).unwrap();
    let cases = cases["cases"].as_array().unwrap();
    assert!(cases.len() >= 20, "the fixture cases are there");
    let (mut differing, mut large) = (0, 0);
    for case in cases {
        let name = case["name"].as_str().unwrap();
        let size = case["size"].as_u64().unwrap() as u32;
        let processor = ImageProcessor {
            size,
            ..ImageProcessor::dam_3b()
        };
        let image = image::open(dir().join(name).join("image.png")).unwrap().to_rgb8();
        let mask = Mask::open(dir().join(name).join("mask.png")).unwrap();
        let prompt = focal_prompt(&image, &mask, &processor).unwrap();

        let b = &prompt.mask_box;
        let crop = &prompt.crop;
        let xyxy = |v: &serde_json::Value| -> Vec<u32> {
            v.as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_u64().unwrap() as u32)
                .collect()
        };
        assert_eq!(
            vec![b.x0, b.y0, b.x0 + b.w, b.y0 + b.h],
            xyxy(&case["mask_box_xyxy"]),
            "{name}: mask box"
        );
        assert_eq!(
            vec![crop.x0, crop.y0, crop.x1, crop.y1],
            xyxy(&case["crop_xyxy"]),
            "{name}: crop"
        );

        let mut expected = expected_view(&processor, name, "full.png", "full_mask.png");
        expected.extend(expected_view(&processor, name, "crop.png", "crop_mask.png"));
        assert_eq!(prompt.pixel_values.len(), expected.len(), "{name}: length");
        let wrong = prompt
            .pixel_values
            .iter()
            .zip(&expected)
            .filter(|(a, b)| a != b)
            .count();
        assert_eq!(
            wrong,
            0,
            "{name}: {wrong} of {} values differ from Pillow's",
            expected.len()
        );
        let differs = case["crop_differs"].as_bool().unwrap();
        assert_eq!(prompt.crop_differs, differs, "{name}: crop differs");
        differing += differs as usize;
        large += (size == 384) as usize;
    }
    // Both branches of upstream's test, and DAM-3B's size, are among the cases.
    assert!(differing > 0 && differing < cases.len() && large > 0);
}
