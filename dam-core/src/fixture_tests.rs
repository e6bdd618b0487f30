//! dam-core against the original implementation's fixtures (`tests/fixtures/dam-tiny`).

use image::RgbImage;

use crate::testing::{Reference, assert_close, dam_case_dir, dam_case_json, dam_cases, dam_tiny_checkpoint};
use crate::{CheckpointConfig, ImageProcessor, Mask, crop_views, focal_prompt, prompt};

/// The image and mask file names of frame `k` of a case.
fn frame_files(case: &serde_json::Value, k: usize) -> (String, String, String, String) {
    if case["kind"] == "video" {
        (
            format!("image_{k}.png"),
            format!("mask_{k}.png"),
            format!("focal_crop_{k}.png"),
            format!("focal_crop_mask_{k}.png"),
        )
    } else {
        (
            "image.png".into(),
            "mask.png".into(),
            "focal_crop.png".into(),
            "focal_crop_mask.png".into(),
        )
    }
}

/// A JSON array of small unsigned integers.
fn u32s(v: &serde_json::Value) -> Vec<u32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap() as u32)
        .collect()
}

fn processor() -> ImageProcessor {
    let config = CheckpointConfig::load(&dam_tiny_checkpoint()).unwrap();
    ImageProcessor::from_config(&config.preprocessor).unwrap()
}

#[test]
fn focal_prompt_matches_pixel_values_for_every_case_and_frame() {
    let processor = processor();
    for name in dam_cases() {
        let case = dam_case_json(&name);
        let dir = dam_case_dir(&name);
        let reference = Reference::open(&name);
        let (pixels, shape) = reference.f32("pixel_values");
        let frames = case["num_frames"].as_u64().unwrap() as usize;
        assert_eq!(shape[0], frames);
        let per_frame = pixels.len() / frames;
        for k in 0..frames {
            let (img, msk, crop_png, crop_mask_png) = frame_files(&case, k);
            let image = image::open(dir.join(img)).unwrap().to_rgb8();
            let mask = Mask::open(dir.join(msk)).unwrap();
            let fp = focal_prompt(&image, &mask, &processor).unwrap();
            let what = format!("{name} frame {k} pixel_values");
            assert_close(
                &what,
                &fp.pixel_values,
                &pixels[k * per_frame..(k + 1) * per_frame],
                1e-6,
            );

            // The crop-equals-full flag is upstream's cimage_mask.
            assert_eq!(
                fp.crop_differs,
                case["cimage_mask"][k].as_bool().unwrap(),
                "{name} frame {k} cimage_mask"
            );

            // Box and crop size as the original computed them.
            let frame = &case["frames"][k];
            let b = fp.mask_box;
            assert_eq!(
                vec![b.x0, b.y0, b.w, b.h],
                u32s(&frame["mask_box_xywh"]),
                "{name} frame {k} box"
            );
            let wh = u32s(&frame["focal_crop_size_wh"]);
            assert_eq!(
                vec![fp.crop.width(), fp.crop.height()],
                wh,
                "{name} frame {k} crop size"
            );

            // The crop rectangle reproduces the original's focal crop pixel for pixel.
            let (_, crop_image, crop_mask) = crop_views(&image, &mask).unwrap();
            let expected: RgbImage = image::open(dir.join(crop_png)).unwrap().to_rgb8();
            assert_eq!(
                crop_image.dimensions(),
                expected.dimensions(),
                "{name} frame {k} crop dims"
            );
            assert!(
                crop_image.as_raw() == expected.as_raw(),
                "{name} frame {k}: focal crop pixels differ"
            );
            let expected_mask = Mask::open(dir.join(crop_mask_png)).unwrap();
            assert_eq!(crop_mask, expected_mask, "{name} frame {k}: focal crop mask differs");
        }
    }
}

#[test]
fn rendered_prompt_matches_case_json() {
    for name in dam_cases() {
        let case = dam_case_json(&name);
        let frames = case["num_frames"].as_u64().unwrap() as usize;
        let rendered = prompt::build_prompt(case["query"].as_str().unwrap(), frames).unwrap();
        assert_eq!(rendered, case["prompt"].as_str().unwrap(), "{name}");
    }
}

#[test]
fn checkpoint_config_reads_the_fixture() {
    let c = CheckpointConfig::load(&dam_tiny_checkpoint()).unwrap();
    assert_eq!(c.vision.hidden_size, 64);
    assert_eq!(c.vision_layers_to_run().unwrap(), 2);
    assert_eq!(c.llm.head_dim(), 16);
    assert_eq!(c.preprocessor.size.height, 98);
    assert!(!c.context_provider.masked_cross_attn);
    CheckpointConfig::dam_3b().validate().unwrap();
}
