//! Shared pieces of the dam-rs command-line tools (`describe`, `segment`, `bench`): argument
//! parsing for regions, image loading, backend selection, JSON and safetensors output. The tools
//! themselves live in [`cli`], so that each has its own binary and `dam-tools` can hold all three
//! in one (one file to copy to a GPU machine, one process for a batch of runs).

pub mod cli;

use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, Result, anyhow, bail};
use dam::{Backend, BoxRegion, FloatType, Mask, Point, Points};
use image::RgbImage;

/// Parses `X0,Y0,X1,Y1`.
pub fn parse_box(s: &str) -> Result<BoxRegion> {
    let v = parse_floats(s, 4).with_context(|| format!("--box {s:?}: expected X0,Y0,X1,Y1"))?;
    Ok(BoxRegion::new(v[0], v[1], v[2], v[3]))
}

/// Parses `X,Y;X,Y;...` with optional labels `1,0,...` (1 = positive, 0 = negative; all
/// positive when absent).
pub fn parse_points(s: &str, labels: Option<&str>) -> Result<Points> {
    let xy: Vec<Vec<f64>> = s
        .split(';')
        .filter(|p| !p.trim().is_empty())
        .map(|p| parse_floats(p, 2).with_context(|| format!("--points {s:?}: expected 'X,Y;X,Y'")))
        .collect::<Result<_>>()?;
    if xy.is_empty() {
        bail!("--points {s:?}: no point given");
    }
    let labels: Vec<bool> = match labels {
        None => vec![true; xy.len()],
        Some(l) => l
            .split(',')
            .map(|v| match v.trim() {
                "1" => Ok(true),
                "0" => Ok(false),
                other => Err(anyhow!("--labels: {other:?} is not 1 (positive) or 0 (negative)")),
            })
            .collect::<Result<_>>()?,
    };
    if labels.len() != xy.len() {
        bail!("{} label(s) for {} point(s)", labels.len(), xy.len());
    }
    Ok(Points(
        xy.into_iter()
            .zip(labels)
            .map(|(p, positive)| Point {
                x: p[0],
                y: p[1],
                positive,
            })
            .collect(),
    ))
}

fn parse_floats(s: &str, n: usize) -> Result<Vec<f64>> {
    let v: Vec<f64> = s
        .split(',')
        .map(|x| x.trim().parse::<f64>().map_err(|e| anyhow!("{x:?}: {e}")))
        .collect::<Result<_>>()?;
    if v.len() != n {
        bail!("expected {n} numbers, got {}", v.len());
    }
    Ok(v)
}

/// Reads an image as 8-bit RGB, exactly as the original's Pillow does (`dam::open_rgb`).
pub fn read_rgb(path: &Path) -> Result<RgbImage> {
    dam::open_rgb(path).with_context(|| format!("cannot read image {}", path.display()))
}

/// Reads a mask image as the original does: Pillow's grey (L) conversion, non-zero is
/// foreground.
pub fn read_mask(path: &Path) -> Result<Mask> {
    Mask::open(path).with_context(|| format!("cannot read mask {}", path.display()))
}

/// Reads a scribble image as the original demo reads its drawing layer (alpha > 0 where the
/// file has alpha, else as a mask; `Mask::open_scribble`).
pub fn read_scribble(path: &Path) -> Result<Mask> {
    Mask::open_scribble(path).with_context(|| format!("cannot read scribble {}", path.display()))
}

/// Writes a mask as a 0/255 PNG.
pub fn write_mask(mask: &Mask, path: &Path) -> Result<()> {
    mask.to_gray()
        .save(path)
        .with_context(|| format!("cannot write {}", path.display()))
}

/// `--backend` and `--dtype` values.
pub fn parse_backend(s: &str) -> Result<Backend, String> {
    s.parse()
}

pub fn parse_dtype(s: &str) -> Result<FloatType, String> {
    s.parse()
}

/// Writes named f32 tensors to a safetensors file.
pub fn write_safetensors(path: &Path, tensors: &[(&str, &[usize], &[f32])]) -> Result<()> {
    struct F32<'a>(&'a [usize], &'a [f32]);
    impl safetensors::View for F32<'_> {
        fn dtype(&self) -> safetensors::Dtype {
            safetensors::Dtype::F32
        }
        fn shape(&self) -> &[usize] {
            self.0
        }
        fn data(&self) -> std::borrow::Cow<'_, [u8]> {
            std::borrow::Cow::Owned(self.1.iter().flat_map(|v| v.to_le_bytes()).collect())
        }
        fn data_len(&self) -> usize {
            self.1.len() * 4
        }
    }
    let views: Vec<(&str, F32)> = tensors.iter().map(|(n, s, d)| (*n, F32(s, d))).collect();
    safetensors::serialize_to_file(views, None, path).with_context(|| format!("cannot write {}", path.display()))
}

/// Runs a CLI body: errors go to stderr as one message with their causes, exit code 1, never
/// a panic backtrace.
pub fn run_main(body: impl FnOnce() -> Result<()>) -> ExitCode {
    match body() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            for cause in e.chain().skip(1) {
                eprintln!("  caused by: {cause}");
            }
            ExitCode::FAILURE
        }
    }
}

/// Parses a tool's arguments (the first is the program name) and runs `body` through
/// [`run_main`]. A parsing error (or `--help` / `--version`) is printed as clap would, with its
/// exit code, without ending the process (a `dam-tools batch` goes on with its next run).
pub fn parse_and_run<A, I, T>(args: I, body: impl FnOnce(A) -> Result<()>) -> ExitCode
where
    A: clap::Parser,
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    match A::try_parse_from(args) {
        Ok(args) => run_main(|| body(args)),
        Err(e) => {
            let _ = e.print();
            ExitCode::from(u8::try_from(e.exit_code()).unwrap_or(2))
        }
    }
}

/// Logging to stderr, controlled by `RUST_LOG` (default: warnings; the kernel cache's database
/// engine, `turso_core`, only errors: it warns about opening a bundle read-only).
pub fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn,turso_core=error"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_regions() {
        assert_eq!(parse_box("1,2,30,40.5").unwrap(), BoxRegion::new(1.0, 2.0, 30.0, 40.5));
        assert!(parse_box("1,2,3").is_err());
        let p = parse_points("10,20;30,40", Some("1,0")).unwrap();
        assert_eq!(p.0.len(), 2);
        assert!(p.0[0].positive && !p.0[1].positive);
        assert!(parse_points("10,20", Some("1,0")).is_err());
        assert!(parse_points("10,x", None).is_err());
        assert!(parse_points("10,20", Some("2")).is_err());
    }
}
