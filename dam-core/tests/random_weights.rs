//! Random benchmark weights on the CPU backend: drawn on the host in parallel, N(0, 0.02²) for
//! linear weights, and reproducible from the device's seed. Its own test binary, because the
//! device's generator is process-wide.

use burn::tensor::{Device, Tensor};
use dam_core::{Init, Loader, Weights};

fn draw(device: &Device, seed: u64) -> Vec<f32> {
    device.seed(seed);
    let loader = Loader::new(&Weights::Random, device);
    // More values than one parallel block, an awkward count.
    let t: Tensor<2> = loader.tensor("w", [300, 1001], Init::Normal(0.02)).unwrap();
    assert_eq!(t.dims(), [300, 1001]);
    t.into_data().try_to_vec::<f32>().unwrap()
}

#[test]
fn random_normal_weights_follow_the_seed_and_the_distribution() {
    let device = Device::flex();
    let a = draw(&device, 7);
    assert_eq!(a, draw(&device, 7), "same seed, same weights");
    let b = draw(&device, 8);
    assert!(
        a.iter().zip(&b).filter(|(x, y)| x == y).count() < 10,
        "another seed, other weights"
    );
    // Blocks are not copies of each other.
    assert_ne!(a[..1 << 16], a[1 << 16..2 << 16]);
    let n = a.len() as f64;
    let mean = a.iter().map(|&v| v as f64).sum::<f64>() / n;
    let std = (a.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / n).sqrt();
    assert!(mean.abs() < 2e-4, "mean {mean}"); // ≈ 5.5 standard errors
    assert!((std / 0.02 - 1.0).abs() < 0.01, "std {std}");
    let beyond = a.iter().filter(|v| v.abs() > 3.0 * 0.02).count() as f64 / n;
    assert!((beyond - 0.0027).abs() < 0.0005, "share beyond 3σ {beyond}");
}
