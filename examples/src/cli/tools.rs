//! `dam-tools`: the three tools in one binary, plus a batch mode.
//!
//! ```text
//! dam-tools describe ARGS…     same as the `describe` binary
//! dam-tools segment ARGS…      same as `segment`
//! dam-tools bench ARGS…        same as `bench`
//! dam-tools batch FILE         runs every line of FILE in this one process
//! dam-tools kernel-cache show|export FILE [NAME]|import FILE
//!                              the GPU kernel cache: what it holds; ship it as one file
//! ```
//! Called through a link named `describe`, `segment` or `bench`, it behaves as that tool.
//!
//! Why: a CUDA build of these tools is ~155 MB stripped, most of it burn/cubecl and a static
//! LLVM, shared by all three — one binary is a third of the size of three. And GPU runtimes
//! compile and autotune their kernels on first use, per process (tens of seconds on CUDA), so a
//! batch of runs in one process pays that once.
//!
//! Batch file: one JSON array of strings per line, the tool name first, e.g.
//! `["describe", "--model", "ckpt", "--image", "a.png", "--mask", "m.png", "--json"]`;
//! blank lines and lines starting with `#` are skipped. Before each run, stdout gets a line
//! `==> [i] TOOL` and after it `<== [i] exit OK|FAILED`, so the output can be split per run (the
//! last line of a `describe --json` run is still its JSON object). The batch fails if any run
//! failed.

use std::ffi::OsString;
use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};

const USAGE: &str = "usage: dam-tools (describe|segment|bench) ARGS… | dam-tools batch FILE | \
                     dam-tools kernel-cache [show | export FILE [NAME] | import FILE]";

/// Runs `dam-tools` with these arguments (the first is the program name).
pub fn main_from(args: impl IntoIterator<Item = OsString>) -> ExitCode {
    let args: Vec<OsString> = args.into_iter().collect();
    // Multi-call: a link named after a tool runs that tool.
    let program = args
        .first()
        .map(Path::new)
        .and_then(Path::file_stem)
        .and_then(|s| s.to_str());
    if let Some(tool) = program.filter(|p| is_tool(p)) {
        return run_tool(tool, args.clone());
    }
    let Some(command) = args.get(1).and_then(|s| s.to_str()) else {
        eprintln!("{USAGE}");
        return ExitCode::from(2);
    };
    match command {
        "batch" => {
            let Some(file) = args.get(2) else {
                eprintln!("{USAGE}");
                return ExitCode::from(2);
            };
            crate::run_main(|| batch(Path::new(file)))
        }
        "kernel-cache" => {
            let rest: Vec<String> = args[2..].iter().map(|a| a.to_string_lossy().into_owned()).collect();
            crate::run_main(|| kernel_cache(&rest))
        }
        "-h" | "--help" | "help" => {
            println!("{USAGE}");
            ExitCode::SUCCESS
        }
        tool if is_tool(tool) => run_tool(tool, args[1..].to_vec()),
        other => {
            eprintln!("error: unknown tool `{other}`\n{USAGE}");
            ExitCode::from(2)
        }
    }
}

/// `kernel-cache show | export FILE [NAME] | import FILE`: what the GPU kernel cache in effect
/// (`DAM_KERNEL_CACHE`, else the default) holds, or ship it to other machines as one file: run
/// a workload once, `export`, copy the file, `import` on each machine with the same GPU.
fn kernel_cache(args: &[String]) -> Result<()> {
    #[cfg(feature = "kernel-cache")]
    {
        use dam::KernelCache;
        let cache = KernelCache::from_env_or_default();
        if cache == KernelCache::Off {
            bail!("DAM_KERNEL_CACHE=off: there is no kernel cache to use");
        }
        cache.install();
        // `writeln!`, not `println!`: a closed pipe (`| head`) is an error, not a panic.
        let mut out = std::io::stdout().lock();
        match args.iter().map(String::as_str).collect::<Vec<_>>().as_slice() {
            [] | ["show"] => writeln!(out, "{}", KernelCache::contents())?,
            ["export", file, name @ ..] => {
                let name = name.first().copied().unwrap_or("dam-rs kernel cache");
                let n = KernelCache::export(Path::new(file), name)?;
                writeln!(out, "wrote {n} entries to {file}")?;
            }
            ["import", file] => {
                let r = KernelCache::import(Path::new(file))?;
                writeln!(
                    out,
                    "imported {} entries into {} ({} already present, {} failed)",
                    r.imported,
                    KernelCache::contents().database.display(),
                    r.already_present,
                    r.failed
                )?;
            }
            _ => bail!("{USAGE}"),
        }
        Ok(())
    }
    #[cfg(not(feature = "kernel-cache"))]
    {
        let _ = args;
        bail!("this build has no kernel cache: build with --features cuda or wgpu")
    }
}

fn is_tool(name: &str) -> bool {
    matches!(name, "describe" | "segment" | "bench")
}

/// `args[0]` is the tool's program name.
fn run_tool(tool: &str, args: Vec<OsString>) -> ExitCode {
    match tool {
        "describe" => super::describe::main_from(args),
        "segment" => super::segment::main_from(args),
        _ => super::bench::main_from(args),
    }
}

/// The runs of a batch file: (line number, arguments with the tool name first).
pub fn parse_batch(text: &str) -> Result<Vec<(usize, Vec<String>)>> {
    let mut runs = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let args: Vec<String> =
            serde_json::from_str(line).with_context(|| format!("line {}: not a JSON array of strings", i + 1))?;
        match args.first() {
            Some(tool) if is_tool(tool) => runs.push((i + 1, args)),
            Some(tool) => bail!("line {}: unknown tool `{tool}` (describe, segment or bench)", i + 1),
            None => bail!("line {}: empty run", i + 1),
        }
    }
    Ok(runs)
}

fn batch(file: &Path) -> Result<()> {
    let text = std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
    let runs = parse_batch(&text)?;
    let mut failed = 0;
    for (n, (line, args)) in runs.iter().enumerate() {
        let tool = args[0].clone();
        println!("==> [{n}] {tool} (line {line})");
        eprintln!("==> [{n}] {tool} (line {line})");
        let code = run_tool(&tool, args.iter().map(OsString::from).collect());
        let ok = code == ExitCode::SUCCESS;
        failed += usize::from(!ok);
        println!("<== [{n}] exit {}", if ok { "OK" } else { "FAILED" });
        std::io::stdout().flush()?;
    }
    if failed > 0 {
        bail!("{failed} of {} runs failed", runs.len());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batch_lines() {
        let runs =
            parse_batch("# comment\n\n[\"bench\", \"--config\", \"tiny\"]\n  [\"describe\", \"a b\"]\n").unwrap();
        assert_eq!(runs.len(), 2);
        assert_eq!(
            runs[0],
            (3, vec!["bench".to_string(), "--config".into(), "tiny".into()])
        );
        assert_eq!(runs[1].1[1], "a b");
        assert!(parse_batch("[\"rm\", \"-rf\"]").is_err());
        assert!(parse_batch("describe --model x").is_err());
        assert!(parse_batch("[]").is_err());
    }
}
