//! The bf16 path on the CPU backend (flex computes bf16 via f32): weights and activations in
//! bf16 give the f32 reference within bf16 precision. Its own test binary, because a device's
//! float type is set once per process.

use dam::{DescribeOptions, Describer, FloatType, Mask, Region};
use dam_core::testing::{Reference, dam_case_dir, dam_expected_ids, dam_tiny_checkpoint, max_abs_diff};

#[test]
fn bf16_describes_within_bf16_precision_of_the_reference() {
    let d = Describer::builder()
        .checkpoint(dam_tiny_checkpoint().display().to_string())
        .dtype(FloatType::BF16)
        .greedy()
        .max_new_tokens(24)
        .build()
        .unwrap();
    let dir = dam_case_dir("center");
    let image = image::open(dir.join("image.png")).unwrap().to_rgb8();
    let mask = Mask::open(dir.join("mask.png")).unwrap();
    let options = DescribeOptions {
        trace: true,
        ..Default::default()
    };
    let out = d.describe_with(&image, &Region::Mask(mask), &options).unwrap();
    assert_eq!(out.token_ids.len(), 24);
    let trace = out.trace.unwrap();
    let reference = Reference::open("center");
    for (name, ours) in [
        ("projector_output", &trace.projector_output),
        ("llm_inputs_embeds", &trace.llm_inputs_embeds),
    ] {
        let (expected, shape) = reference.f32(name);
        assert_eq!(ours.shape, shape);
        let scale = expected.iter().fold(0f32, |m, v| m.max(v.abs()));
        let d = max_abs_diff(&ours.data, &expected);
        // bf16 keeps 8 bits of mantissa: a few percent of the largest value after a dozen layers.
        assert!(d <= 0.05 * scale, "{name}: max |Δ| {d} vs scale {scale}");
        assert!(d > 0.0, "{name}: bf16 should differ from f32 somewhat");
    }
    let expected = dam_expected_ids("center");
    let same = out.token_ids.iter().zip(&expected).filter(|(a, b)| a == b).count();
    eprintln!("bf16 on flex: {same}/24 greedy ids equal the f32 reference");
    assert_eq!(out.token_ids[0], expected[0], "the first (prompt) argmax");
}
