//! The Describer API on the bundled tiny checkpoint (CPU, f32, greedy).

use dam::{
    BoxRegion, ClipOptions, DamError, DescribeOptions, Describer, Mask, Points, Region, ScribbleMode, StopReason,
};
use dam_core::testing::{Reference, assert_close, dam_case_dir, dam_case_json, dam_expected_ids, dam_tiny_checkpoint};
use image::RgbImage;

fn describer_with(max_new_tokens: usize) -> Describer {
    Describer::builder()
        .checkpoint(dam_tiny_checkpoint().display().to_string())
        .greedy()
        .max_new_tokens(max_new_tokens)
        .build()
        .unwrap()
}

fn describer() -> Describer {
    describer_with(12)
}

fn center() -> (RgbImage, Mask) {
    let dir = dam_case_dir("center");
    (
        image::open(dir.join("image.png")).unwrap().to_rgb8(),
        Mask::open(dir.join("mask.png")).unwrap(),
    )
}

#[test]
fn describe_matches_the_original_greedy_output() {
    let d = describer_with(24);
    let (image, mask) = center();
    let out = d.describe(&image, &Region::Mask(mask.clone())).unwrap();
    let case = dam_case_json("center");
    let expected = dam_expected_ids("center");
    assert_eq!(out.token_ids, expected);
    assert_eq!(out.text, case["text"].as_str().unwrap());
    assert_eq!(out.stop_reason, StopReason::MaxTokens);
    assert_eq!(out.masks, vec![mask]);
    assert_eq!(out.timings.decode_tokens, 24);
}

#[test]
fn describe_many_equals_single_calls() {
    let d = describer();
    let (image, mask) = center();
    let (w, h) = image.dimensions();
    let regions = vec![
        Region::Mask(mask),
        Region::Box(BoxRegion::new(10.0, 20.0, 60.0, 90.0)),
        Region::Scribble(Mask::from_rect(w, h, 120, 30, 190, 40).unwrap()),
    ];
    let many = d.describe_many(&image, &regions).unwrap();
    assert_eq!(many.len(), 3);
    for (i, region) in regions.iter().enumerate() {
        let single = d.describe(&image, region).unwrap();
        assert_eq!(many[i].token_ids, single.token_ids, "region {i}");
        assert_eq!(many[i].text, single.text, "region {i}");
        assert_eq!(many[i].masks, single.masks, "region {i}");
    }
    // Different regions, different descriptions.
    assert_ne!(many[0].token_ids, many[1].token_ids);
    assert!(matches!(d.describe_many(&image, &[]), Err(DamError::Empty(_))));
}

#[test]
fn stream_concatenates_to_the_description() {
    let d = describer();
    let (image, mask) = center();
    let region = Region::Mask(mask);
    let whole = d.describe(&image, &region).unwrap();
    let mut stream = d.describe_stream(&image, &region).unwrap();
    let deltas: Vec<String> = stream.by_ref().collect::<Result<_, _>>().unwrap();
    let finished = stream.finish().unwrap();
    assert!(deltas.len() > 1);
    assert_eq!(deltas.concat(), whole.text);
    assert_eq!(finished.text, whole.text);
    assert_eq!(finished.token_ids, whole.token_ids);
}

#[test]
fn region_kinds_without_a_segmenter() {
    let d = describer();
    let (image, _) = center();
    let (w, h) = image.dimensions();
    // A box falls back to the filled rectangle.
    let b = BoxRegion::new(10.0, 20.0, 60.0, 90.0);
    let out = d.describe(&image, &Region::Box(b)).unwrap();
    assert_eq!(out.masks[0], b.to_mask(w, h).unwrap());
    // A scribble is its own mask.
    let stroke = Mask::from_rect(w, h, 100, 100, 150, 104).unwrap();
    assert_eq!(
        d.region_mask(&image, &Region::Scribble(stroke.clone())).unwrap(),
        stroke
    );
    // Points need a segmenter.
    let err = d
        .describe(&image, &Region::Points(Points::positive(&[(50.0, 50.0)])))
        .unwrap_err();
    assert!(matches!(err, DamError::SegmenterRequired(_)), "{err}");
    assert!(err.to_string().contains("segmenter"));
    // Sampled scribbles too.
    let d2 = Describer::builder()
        .checkpoint(dam_tiny_checkpoint().display().to_string())
        .scribble_mode(ScribbleMode::SamplePoints)
        .build()
        .unwrap();
    assert!(matches!(
        d2.describe(&image, &Region::Scribble(stroke)),
        Err(DamError::SegmenterRequired(_))
    ));
}

#[test]
fn bad_inputs_are_typed_errors() {
    let d = describer();
    let (image, _) = center();
    let (w, h) = image.dimensions();
    let empty = Mask::from_vec(w, h, vec![false; (w * h) as usize]).unwrap();
    assert!(matches!(
        d.describe(&image, &Region::Mask(empty)),
        Err(DamError::Core(dam::core::CoreError::EmptyMask))
    ));
    let small = Mask::from_rect(10, 10, 1, 1, 5, 5).unwrap();
    assert!(matches!(
        d.describe(&image, &Region::Mask(small)),
        Err(DamError::Core(dam::core::CoreError::MaskSizeMismatch { .. }))
    ));
    let outside = BoxRegion::new(500.0, 500.0, 600.0, 600.0);
    assert!(matches!(
        d.describe(&image, &Region::Box(outside)),
        Err(DamError::Core(dam::core::CoreError::BadCoordinates(_)))
    ));
    let options = DescribeOptions {
        query: Some("no placeholder here".into()),
        ..Default::default()
    };
    let (_, mask) = center();
    assert!(matches!(
        d.describe_with(&image, &Region::Mask(mask), &options),
        Err(DamError::Core(dam::core::CoreError::BadPrompt(_)))
    ));
    // transformers' `generate` refuses max_new_tokens=0; so do we, per call and at build time.
    let options = DescribeOptions {
        generation: Some(dam::llm::GenerationOptions::greedy(0)),
        ..Default::default()
    };
    let (_, mask) = center();
    let zero = d.describe_with(&image, &Region::Mask(mask), &options);
    assert!(
        matches!(&zero, Err(DamError::Llm(dam::llm::LlmError::BadOptions(m))) if m.contains("max_new_tokens")),
        "{zero:?}"
    );
    let built = Describer::builder()
        .checkpoint(dam_tiny_checkpoint().display().to_string())
        .max_new_tokens(0)
        .build();
    assert!(
        matches!(&built, Err(DamError::Llm(dam::llm::LlmError::BadOptions(_)))),
        "{:?}",
        built.err()
    );
    assert!(matches!(Describer::builder().build(), Err(DamError::NoCheckpoint)));
    assert!(matches!(
        Describer::builder().checkpoint("/nonexistent/dam").build(),
        Err(DamError::CheckpointNotFound { .. })
    ));
}

fn video_frames() -> (Vec<RgbImage>, Vec<Mask>) {
    let dir = dam_case_dir("video");
    let case = dam_case_json("video");
    let n = case["num_frames"].as_u64().unwrap() as usize;
    let frames = (0..n)
        .map(|k| image::open(dir.join(format!("image_{k}.png"))).unwrap().to_rgb8())
        .collect();
    let masks = (0..n)
        .map(|k| Mask::open(dir.join(format!("mask_{k}.png"))).unwrap())
        .collect();
    (frames, masks)
}

#[test]
fn describe_video_matches_the_original() {
    let d = describer_with(24);
    let case = dam_case_json("video");
    let (frames, masks) = video_frames();
    let options = DescribeOptions {
        trace: true,
        ..Default::default()
    };
    // The default video query for 3 frames is the case's query.
    assert_eq!(dam::video::encode::video_query(3), case["query"].as_str().unwrap());
    let out = d.describe_video_with(&frames, &masks, &options).unwrap();
    let expected = dam_expected_ids("video");
    assert_eq!(out.token_ids, expected);
    assert_eq!(out.text, case["text"].as_str().unwrap());
    let trace = out.trace.unwrap();
    let reference = Reference::open("video");
    for (name, ours, tol) in [
        ("pixel_values", &trace.pixel_values, 1e-5),
        ("projector_output", &trace.projector_output, 1e-4),
        ("llm_inputs_embeds", &trace.llm_inputs_embeds, 1e-4),
        ("step_logits", &trace.step_logits, 1e-3),
    ] {
        let (v, shape) = reference.f32(name);
        assert_eq!(ours.shape, shape, "{name} shape");
        assert_close(name, &ours.data, &v, tol);
    }
}

#[test]
fn video_errors_and_empty_frames() {
    let d = describer();
    let (frames, masks) = video_frames();
    let err = d.describe_video(&frames, &masks[..2]).unwrap_err();
    assert!(
        matches!(
            err,
            DamError::Video(dam::video::VideoError::CountMismatch { frames: 3, masks: 2 })
        ),
        "{err}"
    );
    let mut odd = frames.clone();
    odd[1] = RgbImage::new(64, 48);
    assert!(matches!(
        d.describe_video(&odd, &masks),
        Err(DamError::Video(dam::video::VideoError::FrameSizeMismatch {
            index: 1,
            ..
        }))
    ));
    let mut with_empty = masks.clone();
    let (w, h) = (masks[1].width(), masks[1].height());
    with_empty[1] = Mask::from_vec(w, h, vec![false; (w * h) as usize]).unwrap();
    assert!(matches!(
        d.describe_video(&frames, &with_empty),
        Err(DamError::Video(dam::video::VideoError::EmptyFrameMask { index: 1 }))
    ));
    // Opting in to skipping: the two visible frames are described.
    let skipping = Describer::builder()
        .checkpoint(dam_tiny_checkpoint().display().to_string())
        .greedy()
        .max_new_tokens(4)
        .clip_options(ClipOptions {
            num_frames: 8,
            skip_empty: true,
        })
        .build()
        .unwrap();
    let out = skipping.describe_video(&frames, &with_empty).unwrap();
    assert_eq!(out.masks.len(), 2);
    assert_eq!(out.masks, vec![masks[0].clone(), masks[2].clone()]);
}
