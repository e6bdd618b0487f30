//! `segment`: turn clicks, a box or a scribble into a mask with Segment Anything v1.
//!
//! ```text
//! segment --sam DIR_OR_HUB_ID --image IMG [--points 'X,Y;X,Y' [--labels 1,0]]
//!         [--box X0,Y0,X1,Y1] [--scribble PNG] --out MASK.png [--json] [--overlay PNG]
//! ```
//! The mask PNG is 0/255 at the image's size. With `--json` the last stdout line is a JSON
//! object with `best_index`, `iou_scores`, `mask_area` and the prompt as given to the model.

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;

use crate::{parse_backend, parse_box, parse_dtype, parse_points, read_mask, read_rgb, write_mask};
use anyhow::{Result, bail};
use clap::Parser;
use dam::checkpoint::{CheckpointKind, resolve_kind};
use dam::vision::sam::{Sam, SamPrompt};
use dam::{Backend, FloatType, Mask};
use image::RgbImage;

#[derive(Parser, Debug)]
#[command(name = "segment", version, about = "Segment a region with Segment Anything (SAM v1)")]
struct Args {
    /// SAM checkpoint folder (transformers layout) or hub id, e.g. facebook/sam-vit-huge.
    #[arg(long)]
    sam: String,
    #[arg(long)]
    image: PathBuf,
    /// Clicks 'X,Y;X,Y'.
    #[arg(long, allow_hyphen_values = true)]
    points: Option<String>,
    /// Labels of the clicks: 1 positive, 0 negative (default: all positive).
    #[arg(long, requires = "points")]
    labels: Option<String>,
    /// Box X0,Y0,X1,Y1 (may be combined with points).
    // A box or a click may lie partly outside the image (negative coordinates): take values
    // that start with "-" instead of reading them as flags.
    #[arg(long = "box", allow_hyphen_values = true)]
    bbox: Option<String>,
    /// Scribble PNG: up to 8 stroke pixels are sampled as positive points (numpy seed 0, as
    /// the original demo).
    #[arg(long, conflicts_with_all = ["points", "bbox"])]
    scribble: Option<PathBuf>,
    /// Output mask (0/255 PNG).
    #[arg(long)]
    out: PathBuf,
    #[arg(long)]
    json: bool,
    /// Also write the image with the mask tinted.
    #[arg(long)]
    overlay: Option<PathBuf>,
    #[arg(long, default_value = "cpu", value_parser = parse_backend)]
    backend: Backend,
    #[arg(long, default_value = "f32", value_parser = parse_dtype)]
    dtype: FloatType,
}

fn overlay(image: &RgbImage, mask: &Mask) -> RgbImage {
    let mut out = image.clone();
    for (x, y, px) in out.enumerate_pixels_mut() {
        if mask.get(x, y) {
            for (c, tint) in px.0.iter_mut().zip([30u16, 144, 255]) {
                *c = ((*c as u16 + tint) / 2) as u8;
            }
        }
    }
    out
}

fn run(args: Args) -> Result<()> {
    let image = read_rgb(&args.image)?;
    let device = args.backend.configured_device(args.dtype)?;
    let sam = Sam::load(&resolve_kind(&args.sam, CheckpointKind::Sam)?, &device)?;
    let embedding = sam.embed_image(&image)?;
    let output = if let Some(s) = &args.scribble {
        sam.segment_scribble(&embedding, &read_mask(s)?, 0)?
    } else {
        let mut prompt = match &args.points {
            Some(p) => SamPrompt::from_points(&parse_points(p, args.labels.as_deref())?),
            None => SamPrompt::default(),
        };
        if let Some(b) = &args.bbox {
            let b = parse_box(b)?;
            prompt.bbox = Some([b.x0, b.y0, b.x1, b.y1]);
        }
        if prompt.points.is_empty() && prompt.bbox.is_none() {
            bail!("give --points, --box or --scribble");
        }
        sam.segment(&embedding, &prompt)?
    };
    write_mask(&output.mask, &args.out)?;
    if let Some(path) = &args.overlay {
        overlay(&image, &output.mask).save(path)?;
    }
    let mp = &output.model_prompt;
    let summary = serde_json::json!({
        "best_index": output.best_index,
        "iou_scores": output.iou_scores,
        "mask_area": output.mask.area(),
        "width": image.width(),
        "height": image.height(),
        "input_points": mp.points,
        "input_labels": mp.labels,
        "input_box": mp.bbox,
    });
    if args.json {
        println!("{summary}");
    } else {
        println!(
            "mask {} px ({:.1} %), candidate {} of {:?} -> {}",
            output.mask.area(),
            100.0 * output.mask.area() as f64 / (image.width() as f64 * image.height() as f64),
            output.best_index,
            output.iou_scores,
            args.out.display()
        );
    }
    Ok(())
}

/// Runs `segment` with these arguments (the first is the program name, as in `std::env::args_os`).
pub fn main_from(args: impl IntoIterator<Item = OsString>) -> ExitCode {
    crate::parse_and_run(args, run)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negative_coordinates_are_values() {
        let a = Args::try_parse_from([
            "segment",
            "--sam",
            "s",
            "--image",
            "i.png",
            "--out",
            "o.png",
            "--box",
            "-5,-5,3,3",
            "--points",
            "-1,-2",
        ])
        .unwrap();
        assert_eq!(a.bbox.as_deref(), Some("-5,-5,3,3"));
        assert_eq!(a.points.as_deref(), Some("-1,-2"));
    }
}
