//! Describe several regions of one image in one batched forward.
//!
//! ```text
//! cargo run --release -p dam-examples --example describe_many -- [CHECKPOINT]
//! ```

use dam::{BoxRegion, Describer, Mask, Region};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/fixtures/dam-tiny");
    let checkpoint = std::env::args().nth(1).unwrap_or(format!("{root}/checkpoint"));
    let describer = Describer::builder()
        .checkpoint(checkpoint)
        .greedy()
        .max_new_tokens(32)
        .build()?;

    let image = dam::open_rgb(format!("{root}/cases/center/image.png"))?;
    let (w, h) = image.dimensions();
    let regions = [
        Region::Mask(Mask::open(format!("{root}/cases/center/mask.png"))?),
        // Without a segmenter a box is described as the filled rectangle.
        Region::Box(BoxRegion::new(5.0, 5.0, 70.0, 60.0)),
        Region::Mask(Mask::from_rect(w, h, w / 2, h / 2, w, h)?),
    ];
    for (i, d) in describer.describe_many(&image, &regions)?.iter().enumerate() {
        println!("region {i} ({} px): {}", d.masks[0].area(), d.text);
    }
    Ok(())
}
