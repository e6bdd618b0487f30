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
