//! Describe one masked region of an image.
//!
//! ```text
//! cargo run --release -p dam-examples --example describe_image -- [CHECKPOINT] [IMAGE] [MASK]
//! ```
//! Defaults to the bundled tiny checkpoint (random weights: the text is noise) and a bundled
//! image; pass `nvidia/DAM-3B` (with the `hub` feature) or a DAM-3B folder for real output.

use dam::{Describer, Mask, Region};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/fixtures/dam-tiny");
    let mut args = std::env::args().skip(1);
    let checkpoint = args.next().unwrap_or(format!("{root}/checkpoint"));
    let image_path = args.next().unwrap_or(format!("{root}/cases/center/image.png"));
    let mask_path = args.next().unwrap_or(format!("{root}/cases/center/mask.png"));

    let describer = Describer::builder().checkpoint(checkpoint).max_new_tokens(64).build()?;
    let image = dam::open_rgb(&image_path)?;
    let mask = Mask::open(&mask_path)?;
    let description = describer.describe(&image, &Region::Mask(mask))?;
    println!("{}", description.text);
    eprintln!(
        "{} tokens, {:.1} tok/s, stop: {:?}",
        description.token_ids.len(),
        description.timings.decode_tokens_per_second(),
        description.stop_reason
    );
    Ok(())
}
