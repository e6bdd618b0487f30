//! The loader on a bf16 device: f32, f16 and bf16 files reach the device as bf16 values equal
//! to rounding the f32 decode (round to nearest even), through every loading path — plain,
//! transposed, and several linears joined. Its own test binary, because a device's float type
//! is set once per process.

use burn::tensor::{DType, Device, FloatDType, Tensor};
use dam_core::{Init, Loader, Weights};
use safetensors::Dtype;
use safetensors::tensor::TensorView;

/// Values with more mantissa than bf16 keeps, ties included, and both signs.
fn values(n: usize, seed: u32) -> Vec<f32> {
    (0..n as u32)
        .map(|i| {
            let x = ((i * 2_654_435_761u32).wrapping_add(seed) >> 9) as f32 / (1u32 << 23) as f32 - 0.5;
            if i % 7 == 0 { 1.0 + 1.0 / 256.0 } else { x * 3.1 }
        })
        .collect()
}

fn encode(dtype: Dtype, v: &[f32]) -> Vec<u8> {
    match dtype {
        Dtype::F32 => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
        Dtype::F16 => v.iter().flat_map(|x| half::f16::from_f32(*x).to_le_bytes()).collect(),
        Dtype::BF16 => v.iter().flat_map(|x| half::bf16::from_f32(*x).to_le_bytes()).collect(),
        _ => unreachable!(),
    }
}

fn bits(t: Tensor<2>) -> Vec<u16> {
    let data = t.into_data();
    assert_eq!(data.dtype(), DType::BF16);
    data.as_slice::<half::bf16>()
        .unwrap()
        .iter()
        .map(|v| v.to_bits())
        .collect()
}

fn rounded(v: &[f32]) -> Vec<u16> {
    v.iter().map(|x| half::bf16::from_f32(*x).to_bits()).collect()
}

fn transpose(v: &[f32], [rows, cols]: [usize; 2]) -> Vec<f32> {
    (0..cols)
        .flat_map(|c| (0..rows).map(move |r| v[r * cols + c]))
        .collect()
}

#[test]
fn a_bf16_device_gets_each_stored_type_rounded_once() {
    let mut device = Device::flex();
    device.configure(FloatDType::BF16).unwrap();
    let dir = std::env::temp_dir().join(format!("dam-loader-bf16-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    // Per stored type: `w` [6, 40] (a linear's weight), `b` [6], `p.weight` [10, 40].
    let mut bytes = Vec::new();
    for (k, dtype) in [Dtype::F32, Dtype::F16, Dtype::BF16].into_iter().enumerate() {
        for (leaf, shape) in [
            ("w.weight", vec![6, 40]),
            ("w.bias", vec![6]),
            ("p.weight", vec![10, 40]),
        ] {
            let n = shape.iter().product();
            bytes.push((
                format!("{dtype:?}.{leaf}"),
                dtype,
                shape,
                encode(dtype, &values(n, k as u32 * 97 + n as u32)),
            ));
        }
    }
    let views: Vec<_> = bytes
        .iter()
        .map(|(name, dtype, shape, b)| (name.clone(), TensorView::new(*dtype, shape.clone(), b).unwrap()))
        .collect();
    let file = dir.join("model.safetensors");
    safetensors::tensor::serialize_to_file(views, None, &file).unwrap();

    let weights = Weights::open_dir(&dir).unwrap();
    let Weights::Safetensors(ref files) = weights else {
        unreachable!()
    };
    for dtype in ["F32", "F16", "BF16"] {
        let loader = Loader::new(&weights, &device).at(dtype);
        let f32s = |name: &str, shape: &[usize]| files.read_f32(&format!("{dtype}.{name}"), shape).unwrap();
        let (w, b, p) = (
            f32s("w.weight", &[6, 40]),
            f32s("w.bias", &[6]),
            f32s("p.weight", &[10, 40]),
        );

        let plain: Tensor<2> = loader.tensor("w.weight", [6, 40], Init::Zeros).unwrap();
        assert_eq!(bits(plain), rounded(&w), "{dtype}: plain");
        let linear = loader.linear("w", 40, 6, true).unwrap();
        assert_eq!(
            bits(linear.weight.val()),
            rounded(&transpose(&w, [6, 40])),
            "{dtype}: transposed"
        );
        let bias = linear.bias.unwrap().val().reshape([1, 6]);
        assert_eq!(bits(bias), rounded(&b), "{dtype}: bias");
        // `w` and `p` joined along the outputs, `[40, 16]` for burn's Linear and `[16, 40]` as stored.
        let joined = [w.clone(), p.clone()].concat();
        let fused = loader.fused_linear(&["w", "p"], 40, &[6, 10], false).unwrap();
        assert_eq!(
            bits(fused.weight.val()),
            rounded(&transpose(&joined, [16, 40])),
            "{dtype}: joined"
        );
        // Kept as stored, `[16, 40]`, and read through its transposed view (`[40, 16]`).
        let torch = loader.fused_torch_linear(&["w", "p"], 40, &[6, 10], false).unwrap();
        assert_eq!(
            bits(torch.weight.val()),
            rounded(&transpose(&joined, [16, 40])),
            "{dtype}: joined, stored layout"
        );
    }
    std::fs::remove_dir_all(&dir).ok();
}
