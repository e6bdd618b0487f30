//! The on-disk kernel cache of the cubecl backends (CUDA, wgpu): compiled kernels and autotune
//! decisions kept between processes (feature `kernel-cache`).
//!
//! Without it every process compiles (CUDA: LLVM → PTX) and autotunes every kernel shape it
//! meets before its first result — on an H100 about two minutes for a DAM-3B `describe`, on
//! any backend most of a short run. With it the first process on a machine pays that once;
//! later ones load the PTX and the tuning decisions from disk. This is cubecl's own cache
//! (`persistence`: one SQLite-format database per environment, written through `turso`);
//! this module only switches it on and chooses where it lives:
//!
//! * compiled kernels: cubecl keys them by the kernel, the device architecture and the **build
//!   id of the running executable**, so a rebuilt program never loads another build's code;
//! * autotune decisions: keyed by the operation's (bucketed) shape, the device and the cubecl
//!   version. They are choices between kernels that all compute the same result, so a stale one
//!   can cost speed, never correctness. (wgpu has no compiled-kernel cache in cubecl 0.11; there
//!   the autotune decisions are what is kept.)
//!
//! The configuration is cubecl's process-wide one: it can be chosen once, before the first GPU
//! device starts. A `cubecl.toml` (or a `[cubecl]` section of `burn.toml`) in the working
//! directory or above, and cubecl's environment variables (`CUBECL_AUTOTUNE_CACHE`, …), are read
//! first; [`KernelCache`] then decides the two settings above.
//!
//! A warm cache can be shipped: [`KernelCache::export`] writes it to one file (a cubecl
//! *bundle*) on a machine that ran the workload once, and [`KernelCache::import`] copies such a
//! file into another machine's cache — every node of a fleet with the same GPU then starts
//! warm. Entries carry the cubecl version and the device (architecture) they were made for, and
//! autotune entries are validated as local ones are, so a mismatched bundle costs only the time
//! to import it.

use std::path::{Path, PathBuf};

use burn_cubecl::cubecl::bundle as cubecl_bundle;
use burn_cubecl::cubecl::config::{CubeClRuntimeConfig, RuntimeConfig, cache::CacheConfig};

use crate::error::{CoreError, Result};

/// Where the cubecl backends keep compiled kernels and autotune decisions between processes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum KernelCache {
    /// cubecl's default place: `target/environment` of the outermost Cargo workspace above the
    /// working directory, else the user's cache directory (`~/.cache/cubecl` on Linux).
    #[default]
    Default,
    /// The user's cache directory (`~/.cache/cubecl` on Linux), wherever the program runs.
    User,
    /// This directory (created when first written).
    Dir(PathBuf),
    /// No compiled kernels and no autotune decisions kept: every process compiles and tunes
    /// afresh. cubecl still keeps its device-throughput probe (seconds of micro-benchmarks per
    /// device) in its default place: turning that off too made runs several times slower.
    Off,
}

impl std::str::FromStr for KernelCache {
    type Err = std::convert::Infallible;

    /// `default`, `user`, `off` (also `0`, `false`, `no`), or a directory.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "" | "default" => KernelCache::Default,
            "user" | "global" => KernelCache::User,
            "off" | "0" | "false" | "no" | "none" => KernelCache::Off,
            dir => KernelCache::Dir(PathBuf::from(dir)),
        })
    }
}

impl std::fmt::Display for KernelCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KernelCache::Default => f.write_str("default"),
            KernelCache::User => f.write_str("user"),
            KernelCache::Dir(dir) => write!(f, "{}", dir.display()),
            KernelCache::Off => f.write_str("off"),
        }
    }
}

impl KernelCache {
    /// `DAM_KERNEL_CACHE`'s choice if it is set, else [`KernelCache::Default`]: what a process
    /// uses unless the program chooses otherwise.
    pub fn from_env_or_default() -> KernelCache {
        KernelCache::from_env().unwrap_or_default()
    }

    /// The choice of the `DAM_KERNEL_CACHE` environment variable (same spellings as
    /// [`FromStr`](std::str::FromStr)), if it is set.
    pub fn from_env() -> Option<KernelCache> {
        let value = std::env::var_os("DAM_KERNEL_CACHE")?;
        value.to_str().and_then(|s| s.parse().ok()).or_else(|| {
            // A directory whose name is not UTF-8.
            Some(KernelCache::Dir(PathBuf::from(value)))
        })
    }

    /// cubecl's configuration (its files and environment variables) with this choice applied.
    fn apply(&self, mut config: CubeClRuntimeConfig) -> CubeClRuntimeConfig {
        match self {
            KernelCache::Off => {
                config.autotune.disable_cache = true;
                config.compilation.cache = false;
                return config;
            }
            KernelCache::Default => {}
            KernelCache::User => config.environment.path = CacheConfig::Global,
            KernelCache::Dir(dir) => config.environment.path = CacheConfig::Directory(dir.clone()),
        }
        // cubecl keeps autotune decisions by default; a `cubecl.toml` or
        // `CUBECL_AUTOTUNE_CACHE=false` that turns that off is respected. Compiled kernels are
        // off by default in cubecl: this is what turns them on.
        config.compilation.cache = true;
        config
    }

    /// The directory the cache would live in (cubecl keeps one database per environment under
    /// it); `None` when [`Off`](KernelCache::Off).
    pub fn root(&self) -> Option<PathBuf> {
        if *self == KernelCache::Off {
            return None;
        }
        Some(
            self.apply(CubeClRuntimeConfig::from_current_dir())
                .environment
                .path
                .root(),
        )
    }

    /// Makes this choice cubecl's process-wide configuration. Call it before the first GPU device
    /// starts; returns `false` (and changes nothing) when cubecl's configuration was read or set
    /// already — by an earlier call, or by a device that started first.
    pub fn install(&self) -> bool {
        let config = self.apply(CubeClRuntimeConfig::from_current_dir().override_from_env());
        CubeClRuntimeConfig::try_set(config)
    }

    /// What the cache in effect holds now: its database file and, per namespace (autotune
    /// decisions per device and operation, compiled kernels per architecture, …), the number of
    /// entries. Reads cubecl's configuration (fixing it, if nothing had).
    pub fn contents() -> CacheContents {
        use burn_cubecl::cubecl::environment;
        CacheContents {
            database: environment::path(),
            namespaces: environment::namespaces()
                .into_iter()
                .map(|n| NamespaceEntries {
                    namespace: n.namespace,
                    entries: n.entries,
                    bytes: n.bytes,
                })
                .collect(),
        }
    }
}

impl KernelCache {
    /// Writes everything the cache in effect holds (not cubecl's account of how it was built)
    /// to `out`, one SQLite-format file named `name` (e.g. "H100 Linux"), for
    /// [`import`](KernelCache::import) on other machines. Returns the entries written. The file
    /// is built beside `out` and renamed onto it, so a failed export leaves no partial file.
    pub fn export(out: &Path, name: &str) -> Result<u64> {
        let failed = |reason: String| CoreError::KernelCacheBundle {
            path: out.to_path_buf(),
            reason,
        };
        let contents = KernelCache::contents();
        if !contents.database.exists() {
            return Err(failed(format!(
                "the kernel cache {} is empty: run a GPU workload first",
                contents.database.display()
            )));
        }
        let options = cubecl_bundle::ExportOptions {
            name: name.to_string(),
            excluded_namespaces: vec!["records".to_string()],
            format: cubecl_bundle::BundleFormat::Sqlite,
            ..Default::default()
        };
        cubecl_bundle::export(&[&contents.database], out, &options).map_err(|e| failed(e.to_string()))?;
        let bundle = cubecl_bundle::open(out).map_err(|e| failed(e.to_string()))?;
        let mut entries = 0u64;
        for namespace in bundle.namespaces() {
            bundle.scan(&namespace, &mut |_, _| entries += 1);
        }
        Ok(entries)
    }

    /// Copies the entries of a bundle written by [`export`](KernelCache::export) into the cache
    /// in effect. Entries already present are kept (a local value is never overwritten); the
    /// bundle file is not needed afterwards.
    pub fn import(bundle: &Path) -> Result<ImportReport> {
        let opened = cubecl_bundle::open(bundle).map_err(|e| CoreError::KernelCacheBundle {
            path: bundle.to_path_buf(),
            reason: e.to_string(),
        })?;
        let report = cubecl_bundle::import(opened.as_ref());
        Ok(ImportReport {
            imported: report.imported as u64,
            already_present: report.skipped as u64,
            failed: report.failed as u64,
        })
    }
}

/// What [`KernelCache::import`] copied.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ImportReport {
    /// Entries written into the cache.
    pub imported: u64,
    /// Entries skipped because the cache had the key already.
    pub already_present: u64,
    /// Entries the cache refused (a full disk, an unwritable folder): recomputed when needed.
    pub failed: u64,
}

/// What a kernel cache holds ([`KernelCache::contents`]).
#[derive(Clone, Debug)]
pub struct CacheContents {
    /// The database file (`<root>/<environment>.db`).
    pub database: PathBuf,
    /// One row per namespace.
    pub namespaces: Vec<NamespaceEntries>,
}

/// One namespace of a kernel cache: cubecl names them `<kind>/<cubecl version>/<path>`, e.g.
/// `autotune/0.11.3/<device>/<operation>` or `cuda/0.11.3/ptx_sm90-llvm`.
#[derive(Clone, Debug)]
pub struct NamespaceEntries {
    /// The namespace's name.
    pub namespace: String,
    /// Number of entries it holds.
    pub entries: u64,
    /// Keys and values together.
    pub bytes: u64,
}

impl CacheContents {
    /// Entries in all namespaces.
    pub fn total(&self) -> u64 {
        self.namespaces.iter().map(|n| n.entries).sum()
    }

    /// Entries in the namespaces whose name starts with `prefix` (`"autotune"`, `"cuda"`, …).
    pub fn entries(&self, prefix: &str) -> u64 {
        self.namespaces
            .iter()
            .filter(|n| n.namespace.starts_with(prefix))
            .map(|n| n.entries)
            .sum()
    }
}

impl std::fmt::Display for CacheContents {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}: {} entries in {} namespaces",
            self.database.display(),
            self.total(),
            self.namespaces.len()
        )?;
        for n in &self.namespaces {
            write!(f, "\n  {}: {} ({} bytes)", n.namespace, n.entries, n.bytes)?;
        }
        Ok(())
    }
}
