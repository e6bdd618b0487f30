//! The on-disk kernel cache (feature `kernel-cache`, on with `wgpu`) on a real cubecl runtime:
//! burn's wgpu backend on Mesa's software Vulkan driver (lavapipe), as `fused_wgpu.rs`.
//!
//! cubecl's configuration is process-wide and fixed once, so this file is its own test binary
//! with a single test that fixes it. Without a Vulkan adapter it fails (it never passes
//! vacuously).
#![cfg(feature = "wgpu")]

use burn::tensor::{Distribution, Tensor};
use std::path::PathBuf;

use dam::{Backend, FloatType, KernelCache};

#[test]
fn choices_parse_and_name_their_directory() {
    assert_eq!("default".parse::<KernelCache>().unwrap(), KernelCache::Default);
    assert_eq!("user".parse::<KernelCache>().unwrap(), KernelCache::User);
    for off in ["off", "0", "false", "no", "none"] {
        assert_eq!(off.parse::<KernelCache>().unwrap(), KernelCache::Off);
    }
    let dir = PathBuf::from("/var/cache/dam");
    assert_eq!(
        "/var/cache/dam".parse::<KernelCache>().unwrap(),
        KernelCache::Dir(dir.clone())
    );
    assert_eq!(KernelCache::Dir(dir.clone()).root(), Some(dir));
    assert_eq!(KernelCache::Off.root(), None);
    // Run from inside this workspace, cubecl's default is its `target/environment`.
    let default = KernelCache::Default.root().unwrap();
    assert!(default.ends_with("target/environment"), "{}", default.display());
    assert!(KernelCache::User.root().unwrap().ends_with("cubecl"));
}

#[test]
fn autotune_decisions_land_in_the_chosen_directory() {
    let dir = std::env::temp_dir().join(format!("dam-kernel-cache-test-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(KernelCache::Dir(dir.clone()).root(), Some(dir.clone()));

    assert!(KernelCache::Dir(dir.clone()).install(), "the first choice takes effect");
    assert!(
        !KernelCache::Off.install(),
        "and stays: cubecl's configuration is fixed once"
    );

    // `configured_device` would install `DAM_KERNEL_CACHE` or the default; it must keep ours.
    let device = Backend::Wgpu
        .configured_device(FloatType::F32)
        .expect("a Vulkan adapter (lavapipe, Debian's mesa-vulkan-drivers)");
    let before = KernelCache::contents();
    assert!(
        before.database.starts_with(&dir),
        "database {} is not under {}",
        before.database.display(),
        dir.display()
    );
    assert_eq!(
        before.entries("autotune"),
        0,
        "a fresh directory holds nothing: {before}"
    );

    // A matmul is autotuned on its first shape (burn's `autotune` feature, on with `wgpu`).
    let a = Tensor::<2>::random([96, 80], Distribution::Default, &device);
    let b = Tensor::<2>::random([80, 72], Distribution::Default, &device);
    let c = a.clone().matmul(b.clone()).into_data().try_to_vec::<f32>().unwrap();
    // And it still computes the product (whichever kernel won).
    let (a, b) = (
        a.into_data().try_to_vec::<f32>().unwrap(),
        b.into_data().try_to_vec::<f32>().unwrap(),
    );
    let expect: f32 = (0..80).map(|k| a[5 * 80 + k] * b[k * 72 + 7]).sum();
    assert!((c[5 * 72 + 7] - expect).abs() < 1e-4, "{} vs {expect}", c[5 * 72 + 7]);

    let after = KernelCache::contents();
    assert!(after.entries("autotune") >= 1, "no autotune decision was kept: {after}");
    assert!(after.database.exists(), "{} was not written", after.database.display());

    // The warm cache shipped as one file, and read back: importing it into the cache it came
    // from adds nothing and finds every entry present.
    let bundle = dir.join("warm.bundle");
    let written = KernelCache::export(&bundle, "lavapipe test").expect("export");
    assert!(
        written >= after.entries("autotune"),
        "{written} entries exported, {} autotune decisions in the cache",
        after.entries("autotune")
    );
    let report = KernelCache::import(&bundle).expect("import");
    assert_eq!(report.imported, 0, "{report:?}");
    assert_eq!(report.already_present, written, "{report:?}");
    let missing = KernelCache::import(&dir.join("missing.bundle"));
    assert!(missing.is_err(), "a missing bundle is an error: {missing:?}");
    let _ = std::fs::remove_dir_all(&dir);
}
