//! `describe`: describe a region of an image (or a region through a video) with DAM.
//!
//! ```text
//! describe --model DIR_OR_HUB_ID --image IMG (--mask PNG | --box X0,Y0,X1,Y1 | --scribble PNG
//!          | --points 'X,Y;X,Y' [--labels 1,0] --sam DIR_OR_HUB_ID) [--image IMG --mask PNG ...]
//!          [--query 'TEXT WITH <image>'] [--greedy | --temperature T --top-p P --top-k K --seed S]
//!          [--max-new-tokens N] [--json] [--dump FILE.safetensors]
//! ```
//! Repeated `--image/--mask` pairs (or `--frames-dir/--masks-dir`, or `--video FILE --masks-dir`
//! with the `video-file` feature) are video frames in order.
//! Without `--json` the text streams to stdout; with `--json` the last stdout line is one JSON
//! object (`text`, `token_ids`, `stop_reason`, timings).

use std::ffi::OsString;
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use crate::{
    parse_backend, parse_box, parse_dtype, parse_points, read_mask, read_rgb, read_scribble, write_mask,
    write_safetensors,
};
use anyhow::{Context, Result, bail};
use clap::{Parser, ValueEnum};
use dam::checkpoint::{CheckpointKind, resolve_kind};
use dam::{
    Backend, ClipOptions, DescribeOptions, Describer, Description, FloatType, Granularity, Region, SamSegmenter,
    Sampling, ScribbleMode,
};

#[derive(Clone, Copy, Debug, ValueEnum)]
enum GranularityArg {
    Brief,
    Detailed,
    HighlyDetailed,
}

#[derive(Parser, Debug)]
#[command(
    name = "describe",
    version,
    about = "Describe a region of an image or video with DAM (Describe Anything)"
)]
struct Args {
    /// Checkpoint folder, or a Hugging Face id such as nvidia/DAM-3B.
    #[arg(long)]
    model: String,
    /// Image; repeat with --mask for video frames (in order).
    #[arg(long = "image")]
    images: Vec<PathBuf>,
    /// Region mask (any non-zero pixel is the region); one per --image.
    #[arg(long = "mask")]
    masks: Vec<PathBuf>,
    /// Region box X0,Y0,X1,Y1 (through SAM with --sam, else the filled rectangle).
    // A box or a click may lie partly outside the image (negative coordinates): take values
    // that start with "-" instead of reading them as flags.
    #[arg(long = "box", allow_hyphen_values = true)]
    bbox: Option<String>,
    /// Region scribble image: a drawing layer's alpha > 0 (the original demo's black brush on a
    /// transparent layer), or a grey/colour image's non-zero pixels where there is no alpha. The
    /// stroke itself is the region; with --sam, up to 8 stroke pixels go to SAM.
    #[arg(long)]
    scribble: Option<PathBuf>,
    /// Region clicks 'X,Y;X,Y' (needs --sam).
    #[arg(long, allow_hyphen_values = true)]
    points: Option<String>,
    /// Labels of the clicks, 1 = positive, 0 = negative (default: all positive).
    #[arg(long, requires = "points")]
    labels: Option<String>,
    /// Segment Anything checkpoint (folder or hub id, e.g. facebook/sam-vit-huge).
    #[arg(long)]
    sam: Option<String>,
    /// Folder of video frames (sorted by name); use with --masks-dir.
    #[arg(long, requires = "masks_dir")]
    frames_dir: Option<PathBuf>,
    /// Folder of masks, one per frame or one per selected frame.
    #[arg(long)]
    masks_dir: Option<PathBuf>,
    /// Video file (needs the `video-file` feature and FFmpeg); use with --masks-dir.
    #[arg(long, requires = "masks_dir", conflicts_with = "frames_dir")]
    video: Option<PathBuf>,
    /// Frames the model sees from a longer video (default: the checkpoint's, 8).
    #[arg(long)]
    num_frames: Option<usize>,
    /// Drop video frames whose mask is empty instead of failing.
    #[arg(long)]
    skip_empty_frames: bool,
    /// Query with one <image> per image/frame (default: the checkpoint's).
    #[arg(long)]
    query: Option<String>,
    /// Description length (ignored with --query).
    #[arg(long, value_enum)]
    granularity: Option<GranularityArg>,
    /// Greedy decoding.
    #[arg(long, conflicts_with_all = ["temperature", "top_p", "top_k", "seed"])]
    greedy: bool,
    /// Sampling temperature (default 0.2; 0 = greedy).
    #[arg(long)]
    temperature: Option<f32>,
    /// Nucleus sampling threshold (default 0.5).
    #[arg(long)]
    top_p: Option<f32>,
    /// Top-k filter (default 50; 0 = off).
    #[arg(long)]
    top_k: Option<usize>,
    /// Sampling seed (default 0).
    #[arg(long)]
    seed: Option<u64>,
    #[arg(long, default_value_t = 512)]
    max_new_tokens: usize,
    /// Print one JSON object as the last stdout line instead of streaming text.
    #[arg(long)]
    json: bool,
    /// Write pixel_values, projector_output, llm_inputs_embeds, step_logits (f32) here.
    #[arg(long)]
    dump: Option<PathBuf>,
    /// Write the mask the model saw (first frame) as a 0/255 PNG.
    #[arg(long)]
    save_mask: Option<PathBuf>,
    /// cpu, wgpu, cuda or cuda:N (as compiled in).
    #[arg(long, default_value = "cpu", value_parser = parse_backend)]
    backend: Backend,
    /// f32, f16 or bf16 (on the CPU bf16 halves the memory: DAM-3B in 6.8 GiB).
    #[arg(long, default_value = "f32", value_parser = parse_dtype)]
    dtype: FloatType,
}

enum Work {
    Image(image::RgbImage, Region),
    Video(Vec<image::RgbImage>, Vec<dam::Mask>),
}

/// Frames of a video file at the indices the clip will use, and the masks for them.
#[cfg(feature = "video-file")]
fn video_work(video: &std::path::Path, masks_dir: &std::path::Path, num_frames: usize) -> Result<Work> {
    use dam::video::source::video_file;
    let (_, _, n) = video_file::info(video)?;
    let masks = dam::video::source::read_mask_folder(masks_dir)?;
    let selected = dam::video::select_frames(n, num_frames)?;
    let frames = video_file::read_frames(video, &selected)?;
    // Masks for every frame: keep the selected ones; else they are one per selected frame.
    let masks = if masks.len() == n && n != selected.len() {
        selected.iter().map(|&i| masks[i].clone()).collect()
    } else {
        masks
    };
    Ok(Work::Video(frames, masks))
}

#[cfg(not(feature = "video-file"))]
fn video_work(_: &std::path::Path, _: &std::path::Path, _: usize) -> Result<Work> {
    bail!(
        "--video needs the `video-file` feature: cargo run --release -p dam-examples --features video-file --bin describe ..."
    )
}

fn work(args: &Args) -> Result<Work> {
    if let (Some(video), Some(masks)) = (&args.video, &args.masks_dir) {
        return video_work(video, masks, args.num_frames.unwrap_or(8));
    }
    if args.frames_dir.is_some() != args.masks_dir.is_some() {
        bail!("--frames-dir and --masks-dir go together (or --video with --masks-dir)");
    }
    if let (Some(frames), Some(masks)) = (&args.frames_dir, &args.masks_dir) {
        if !args.images.is_empty() || !args.masks.is_empty() {
            bail!("use either --frames-dir/--masks-dir or --image/--mask, not both");
        }
        let frames = dam::video::source::read_frame_folder(frames)?;
        let masks = dam::video::source::read_mask_folder(masks)?;
        return Ok(Work::Video(frames, masks));
    }
    match args.images.len() {
        0 => bail!("no --image given"),
        1 => {}
        n => {
            if args.bbox.is_some() || args.scribble.is_some() || args.points.is_some() {
                bail!("video frames take one --mask each; --box/--scribble/--points are for a single image");
            }
            if args.masks.len() != n {
                bail!("{n} --image but {} --mask: give one mask per frame", args.masks.len());
            }
            let frames = args.images.iter().map(|p| read_rgb(p)).collect::<Result<_>>()?;
            let masks = args.masks.iter().map(|p| read_mask(p)).collect::<Result<_>>()?;
            return Ok(Work::Video(frames, masks));
        }
    }
    let image = read_rgb(&args.images[0])?;
    let given = [
        args.masks.len() == 1,
        args.bbox.is_some(),
        args.scribble.is_some(),
        args.points.is_some(),
    ];
    if args.masks.len() > 1 {
        bail!("one --image with {} --mask: give one mask per image", args.masks.len());
    }
    if given.iter().filter(|g| **g).count() != 1 {
        bail!("give exactly one region: --mask, --box, --scribble or --points");
    }
    let region = if let Some(m) = args.masks.first() {
        Region::Mask(read_mask(m)?)
    } else if let Some(b) = &args.bbox {
        Region::Box(parse_box(b)?)
    } else if let Some(s) = &args.scribble {
        Region::Scribble(read_scribble(s)?)
    } else {
        Region::Points(parse_points(
            args.points.as_deref().unwrap_or_default(),
            args.labels.as_deref(),
        )?)
    };
    Ok(Work::Image(image, region))
}

fn sampling(args: &Args) -> Result<Sampling> {
    if args.greedy {
        return Ok(Sampling::Greedy);
    }
    let s = Sampling::from_temperature(
        args.temperature.unwrap_or(0.2),
        args.top_k.unwrap_or(50),
        args.top_p.unwrap_or(0.5),
        args.seed.unwrap_or(0),
    );
    s.validate().map_err(anyhow::Error::msg)?;
    Ok(s)
}

fn build(args: &Args) -> Result<Describer> {
    let mut builder = Describer::builder()
        .checkpoint(&args.model)
        .backend(args.backend)
        .dtype(args.dtype)
        .sampling(sampling(args)?)
        .max_new_tokens(args.max_new_tokens);
    if let Some(q) = &args.query {
        builder = builder.query(q);
    }
    if let Some(g) = args.granularity {
        builder = builder.granularity(match g {
            GranularityArg::Brief => Granularity::Brief,
            GranularityArg::Detailed => Granularity::Detailed,
            GranularityArg::HighlyDetailed => Granularity::HighlyDetailed,
        });
    }
    if let Some(sam) = &args.sam {
        let dir = resolve_kind(sam, CheckpointKind::Sam)?;
        let device = args.backend.configured_device(args.dtype)?;
        let segmenter = SamSegmenter::load(&dir, &device).with_context(|| format!("loading SAM from {sam}"))?;
        builder = builder
            .segmenter(Box::new(segmenter))
            .scribble_mode(ScribbleMode::SamplePoints);
    } else if args.points.is_some() {
        bail!("--points needs a segmenter: add --sam DIR_OR_HUB_ID (e.g. facebook/sam-vit-huge)");
    }
    if args.num_frames.is_some() || args.skip_empty_frames {
        builder = builder.clip_options(ClipOptions {
            num_frames: args.num_frames.unwrap_or(8),
            skip_empty: args.skip_empty_frames,
        });
    }
    Ok(builder.build()?)
}

fn json_line(d: &Description) -> serde_json::Value {
    let t = &d.timings;
    let ms = |x: std::time::Duration| x.as_secs_f64() * 1e3;
    serde_json::json!({
        "text": d.text,
        "token_ids": d.token_ids,
        "stop_reason": format!("{:?}", d.stop_reason),
        "frames": d.masks.len(),
        "mask_areas": d.masks.iter().map(|m| m.area()).collect::<Vec<_>>(),
        "timings_ms": {
            "preprocess": ms(t.preprocess),
            "vision": ms(t.vision),
            "prefill": ms(t.prefill),
            "decode": ms(t.decode),
            "total": ms(t.total()),
        },
        "decode_tokens_per_s": t.decode_tokens_per_second(),
    })
}

fn dump(d: &Description, path: &std::path::Path) -> Result<()> {
    let t = d.trace.as_ref().context("no trace recorded")?;
    write_safetensors(
        path,
        &[
            ("pixel_values", &t.pixel_values.shape, &t.pixel_values.data),
            ("projector_output", &t.projector_output.shape, &t.projector_output.data),
            (
                "llm_inputs_embeds",
                &t.llm_inputs_embeds.shape,
                &t.llm_inputs_embeds.data,
            ),
            ("step_logits", &t.step_logits.shape, &t.step_logits.data),
        ],
    )
}

fn run(args: Args) -> Result<()> {
    let work = work(&args)?;
    let describer = build(&args)?;
    let options = DescribeOptions {
        trace: args.dump.is_some(),
        ..Default::default()
    };
    let stream = !args.json && args.dump.is_none();
    let mut out = std::io::stdout().lock();
    let mut waiting = FirstRunNotice::start(args.backend);
    let description = match &work {
        Work::Image(image, region) if stream => {
            let mut s = describer.describe_stream_with(image, region, &options)?;
            for delta in s.by_ref() {
                waiting.end();
                write!(out, "{}", delta?)?;
                out.flush()?;
            }
            writeln!(out)?;
            s.finish()?
        }
        Work::Image(image, region) => describer.describe_with(image, region, &options)?,
        Work::Video(frames, masks) => describer.describe_video_with(frames, masks, &options)?,
    };
    waiting.end();
    if let Some(path) = &args.dump {
        dump(&description, path)?;
    }
    if let Some(path) = &args.save_mask
        && let Some(mask) = description.masks.first()
    {
        write_mask(mask, path)?;
    }
    if args.json {
        writeln!(out, "{}", json_line(&description))?;
    } else if !stream {
        writeln!(out, "{}", description.text)?;
    }
    Ok(())
}

/// Says on stderr, for a GPU backend, why the first result takes long: each process compiles
/// and autotunes its GPU kernels on first use (≈ 2 minutes at DAM-3B size on an H100,
/// docs/performance.md). A spinner on a terminal, one line otherwise; nothing on the CPU.
struct FirstRunNotice(Option<indicatif::ProgressBar>);

impl FirstRunNotice {
    const TEXT: &str = "the first run in a process compiles and autotunes the GPU kernels \
                        (about 2 minutes for DAM-3B on an H100; later regions are fast)";

    fn start(backend: Backend) -> Self {
        if backend == Backend::Cpu {
            return Self(None);
        }
        let text = Self::text();
        if !std::io::stderr().is_terminal() {
            eprintln!("note: {text}");
            return Self(None);
        }
        let bar = indicatif::ProgressBar::new_spinner().with_message(text);
        bar.enable_steady_tick(std::time::Duration::from_millis(120));
        Self(Some(bar))
    }

    /// The notice, naming the kernel cache where there is one.
    fn text() -> String {
        #[cfg(feature = "kernel-cache")]
        if let Some(root) = dam::KernelCache::from_env_or_default().root() {
            return format!(
                "{} — what it compiles and tunes is kept in {} for later processes",
                Self::TEXT,
                root.display()
            );
        }
        Self::TEXT.to_string()
    }

    fn end(&mut self) {
        if let Some(bar) = self.0.take() {
            bar.finish_and_clear();
        }
    }
}

/// Runs `describe` with these arguments (the first is the program name, as in `std::env::args_os`).
pub fn main_from(args: impl IntoIterator<Item = OsString>) -> ExitCode {
    crate::parse_and_run(args, run)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A box or click partly outside the image has negative coordinates; they are values, not
    /// flags (`--box -5,-5,3,3` used to fail with "unexpected argument '-5'").
    #[test]
    fn negative_coordinates_are_values() {
        let a = Args::try_parse_from(["describe", "--model", "m", "--image", "i.png", "--box", "-5,-5,3,3"]).unwrap();
        assert_eq!(a.bbox.as_deref(), Some("-5,-5,3,3"));
        let a = Args::try_parse_from([
            "describe", "--model", "m", "--image", "i.png", "--points", "-1,2;3,4", "--sam", "s",
        ])
        .unwrap();
        assert_eq!(a.points.as_deref(), Some("-1,2;3,4"));
        assert_eq!(a.sam.as_deref(), Some("s"));
    }
}
