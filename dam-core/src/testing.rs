//! Helpers for tests against the bundled fixtures (`tests/fixtures/` at the repository root).
//! Compiled only with the `testing` feature; not part of the public API.

use std::path::PathBuf;

use crate::weights::SafetensorsWeights;

/// The repository's `tests/fixtures` folder.
pub fn fixtures_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures")
}

/// The bundled tiny DAM checkpoint.
pub fn dam_tiny_checkpoint() -> PathBuf {
    fixtures_dir().join("dam-tiny/checkpoint")
}

/// A dam-tiny case folder.
pub fn dam_case_dir(case: &str) -> PathBuf {
    fixtures_dir().join("dam-tiny/cases").join(case)
}

/// The public dam-tiny cases, read from its manifest.
pub fn dam_cases() -> Vec<String> {
    let text = std::fs::read_to_string(fixtures_dir().join("dam-tiny/manifest.json")).expect("manifest");
    let v: serde_json::Value = serde_json::from_str(&text).expect("manifest json");
    v["config"]["cases"]
        .as_array()
        .expect("cases")
        .iter()
        .map(|c| c.as_str().expect("case name").to_string())
        .collect()
}

/// A case's `case.json`.
pub fn dam_case_json(case: &str) -> serde_json::Value {
    let text = std::fs::read_to_string(dam_case_dir(case).join("case.json")).expect("case.json");
    serde_json::from_str(&text).expect("case json")
}

/// A case's reference tensors.
pub struct Reference {
    weights: SafetensorsWeights,
}

impl Reference {
    pub fn open(case: &str) -> Self {
        Self {
            weights: SafetensorsWeights::open_file(&dam_case_dir(case).join("tensors.safetensors")).expect("tensors"),
        }
    }

    pub fn open_path(path: &std::path::Path) -> Self {
        Self {
            weights: SafetensorsWeights::open_file(path).expect("tensors"),
        }
    }

    pub fn shape(&self, name: &str) -> Vec<usize> {
        self.weights
            .shape(name)
            .unwrap_or_else(|| panic!("no reference tensor {name}"))
    }

    /// An f32 tensor's values and shape.
    pub fn f32(&self, name: &str) -> (Vec<f32>, Vec<usize>) {
        let shape = self.shape(name);
        (self.weights.read_f32(name, &shape).expect(name), shape)
    }

    pub fn contains(&self, name: &str) -> bool {
        self.weights.contains(name)
    }
}

/// Largest absolute difference; panics with a message when lengths differ.
pub fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len(), "length mismatch");
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

/// Asserts `max |a - b| <= tol`, naming `what`.
pub fn assert_close(what: &str, actual: &[f32], expected: &[f32], tol: f32) {
    let d = max_abs_diff(actual, expected);
    assert!(d <= tol, "{what}: max |Δ| = {d:e} > {tol:e}");
    assert!(actual.iter().all(|v| v.is_finite()), "{what}: non-finite values");
}

/// A stored tensor: dtype, shape, little-endian bytes.
#[derive(Clone, Debug)]
pub struct RawTensor {
    pub dtype: safetensors::Dtype,
    pub shape: Vec<usize>,
    pub data: Vec<u8>,
}

impl RawTensor {
    /// The same values stored as `dtype` (F32, F16 or BF16; rounding to nearest even).
    pub fn to_dtype(&self, dtype: safetensors::Dtype) -> RawTensor {
        use safetensors::Dtype;
        let values: Vec<f32> = match self.dtype {
            Dtype::F32 => self
                .data
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect(),
            Dtype::F16 => self
                .data
                .chunks_exact(2)
                .map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32())
                .collect(),
            Dtype::BF16 => self
                .data
                .chunks_exact(2)
                .map(|c| half::bf16::from_le_bytes([c[0], c[1]]).to_f32())
                .collect(),
            other => panic!("unsupported dtype {other:?}"),
        };
        let data = match dtype {
            Dtype::F32 => values.iter().flat_map(|v| v.to_le_bytes()).collect(),
            Dtype::F16 => values
                .iter()
                .flat_map(|&v| half::f16::from_f32(v).to_le_bytes())
                .collect(),
            Dtype::BF16 => values
                .iter()
                .flat_map(|&v| half::bf16::from_f32(v).to_le_bytes())
                .collect(),
            other => panic!("unsupported dtype {other:?}"),
        };
        RawTensor {
            dtype,
            shape: self.shape.clone(),
            data,
        }
    }
}

impl safetensors::View for &RawTensor {
    fn dtype(&self) -> safetensors::Dtype {
        self.dtype
    }
    fn shape(&self) -> &[usize] {
        &self.shape
    }
    fn data(&self) -> std::borrow::Cow<'_, [u8]> {
        std::borrow::Cow::Borrowed(&self.data)
    }
    fn data_len(&self) -> usize {
        self.data.len()
    }
}

/// Every tensor of a safetensors file, by name (sorted).
pub fn read_raw(path: &std::path::Path) -> std::collections::BTreeMap<String, RawTensor> {
    let bytes = std::fs::read(path).expect("weights file");
    let st = safetensors::SafeTensors::deserialize(&bytes).expect("safetensors");
    st.tensors()
        .into_iter()
        .map(|(name, v)| {
            let raw = RawTensor {
                dtype: v.dtype(),
                shape: v.shape().to_vec(),
                data: v.data().to_vec(),
            };
            (name, raw)
        })
        .collect()
}

/// Writes tensors to a safetensors file (metadata `format: pt`, as transformers writes).
pub fn write_raw<'a>(path: &std::path::Path, tensors: impl IntoIterator<Item = (&'a String, &'a RawTensor)>) {
    let meta = std::collections::HashMap::from([("format".to_string(), "pt".to_string())]);
    safetensors::serialize_to_file(tensors, Some(meta), path).expect("write safetensors");
}

/// Copies a folder tree (a scratch copy of a checkpoint).
pub fn copy_dir(src: &std::path::Path, dst: &std::path::Path) {
    std::fs::create_dir_all(dst).expect("create dir");
    for entry in std::fs::read_dir(src).expect("read dir") {
        let entry = entry.expect("dir entry");
        let to = dst.join(entry.file_name());
        if entry.file_type().expect("file type").is_dir() {
            copy_dir(&entry.path(), &to);
        } else {
            std::fs::copy(entry.path(), &to).expect("copy file");
        }
    }
}

/// A fresh scratch folder under the temp dir, unique to this process and `tag`.
pub fn scratch_dir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("dam-test-{}-{tag}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

/// The reference projector output of a case as one `[T', H]` block per frame, on `device`.
pub fn reference_image_tokens(case: &str, device: &burn::tensor::Device) -> Vec<burn::tensor::Tensor<2>> {
    let (proj, shape) = Reference::open(case).f32("projector_output");
    let per = shape[1] * shape[2];
    (0..shape[0])
        .map(|k| {
            let data = burn::tensor::TensorData::new(proj[k * per..(k + 1) * per].to_vec(), [shape[1], shape[2]]);
            burn::tensor::Tensor::from_data(data, device)
        })
        .collect()
}

/// A case's `generated_ids`.
pub fn dam_expected_ids(case: &str) -> Vec<u32> {
    dam_case_json(case)["generated_ids"]
        .as_array()
        .expect("generated_ids")
        .iter()
        .map(|v| v.as_u64().expect("id") as u32)
        .collect()
}
