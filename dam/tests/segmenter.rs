//! Points and boxes through SAM inside the Describer, with the image embedding reused.

use std::sync::Arc;

use dam::{BoxRegion, Describer, Device, Mask, Points, Region, SamSegmenter};
use dam_core::testing::{dam_tiny_checkpoint, fixtures_dir};

#[test]
fn points_become_sams_best_mask_and_the_embedding_is_computed_once_per_image() {
    let device = Device::flex();
    let sam = Arc::new(SamSegmenter::load(&fixtures_dir().join("sam-tiny/checkpoint"), &device).unwrap());
    let describer = Describer::builder()
        .checkpoint(dam_tiny_checkpoint().display().to_string())
        .greedy()
        .max_new_tokens(4)
        .segmenter(Box::new(sam.clone()))
        .build()
        .unwrap();
    let case = fixtures_dir().join("sam-tiny/cases/point1");
    let image = image::open(case.join("image.png")).unwrap().to_rgb8();
    let click = Region::Points(Points::positive(&[(119.0, 62.0)]));
    let regions = vec![
        click.clone(),
        Region::Points(Points::positive(&[(30.0, 30.0), (40.0, 35.0)])),
        Region::Box(BoxRegion::new(20.0, 20.0, 120.0, 100.0)),
    ];
    let many = describer.describe_many(&image, &regions).unwrap();
    assert_eq!(sam.images_embedded(), 1, "one embedding for three prompts on one image");
    // The click's mask is SAM's best mask of the fixture (no pixel there is near logit 0).
    assert_eq!(many[0].masks[0], Mask::open(case.join("best_mask.png")).unwrap());
    // Interactive clicking on the same image reuses the embedding.
    let again = describer.describe(&image, &click).unwrap();
    assert_eq!(again.token_ids, many[0].token_ids);
    assert_eq!(sam.images_embedded(), 1);
    // A new image needs a new embedding.
    let other = image::open(fixtures_dir().join("sam-tiny/cases/box/image.png"))
        .unwrap()
        .to_rgb8();
    describer
        .describe(&other, &Region::Points(Points::positive(&[(50.0, 40.0)])))
        .unwrap();
    assert_eq!(sam.images_embedded(), 2);
}
