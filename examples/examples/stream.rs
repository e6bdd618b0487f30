//! Stream a description as it is generated.
//!
//! ```text
//! cargo run --release -p dam-examples --example stream -- [CHECKPOINT]
//! ```

use std::io::Write;

use dam::{Describer, Mask, Region};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/fixtures/dam-tiny");
    let checkpoint = std::env::args().nth(1).unwrap_or(format!("{root}/checkpoint"));
    let describer = Describer::builder().checkpoint(checkpoint).max_new_tokens(64).build()?;
    let image = dam::open_rgb(format!("{root}/cases/border/image.png"))?;
    let mask = Mask::open(format!("{root}/cases/border/mask.png"))?;

    let mut stream = describer.describe_stream(&image, &Region::Mask(mask))?;
    let mut out = std::io::stdout().lock();
    for delta in stream.by_ref() {
        // An `Err` here is the device failing mid-generation (e.g. out of memory on a GPU).
        write!(out, "{}", delta?)?;
        out.flush()?;
    }
    let description = stream.finish()?;
    writeln!(out)?;
    eprintln!(
        "stopped: {:?} after {} tokens",
        description.stop_reason,
        description.token_ids.len()
    );
    Ok(())
}
