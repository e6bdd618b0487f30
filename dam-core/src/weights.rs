//! Reading checkpoint weights: safetensors files (single or sharded through
//! `model.safetensors.index.json`), stored as f32, f16 or bf16; or random weights of the
//! right shapes for benchmarks. Kept apart from the model code: modules ask a [`Loader`] for
//! tensors by their checkpoint names and shapes.

use std::collections::{BTreeSet, HashMap};
use std::fs::File;
use std::path::{Path, PathBuf};

use burn::module::Param;
use burn::nn::Linear;
use burn::tensor::Device;
use burn::tensor::{Distribution, Tensor, TensorData};
use memmap2::Mmap;
use safetensors::{Dtype, SafeTensors, tensor::Metadata};

use crate::nn::TorchLinear;

/// Errors from weight files, each naming the file or tensor concerned.
#[derive(Debug, thiserror::Error)]
pub enum WeightError {
    #[error("cannot read weight file {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("weight file {path} is not a valid safetensors file (truncated or corrupt?): {reason}")]
    Corrupt { path: PathBuf, reason: String },
    #[error("shard index {path}: {reason}")]
    Index { path: PathBuf, reason: String },
    #[error("no weights in {dir}: expected model.safetensors or model.safetensors.index.json")]
    NoWeights { dir: PathBuf },
    #[error("tensor `{name}` is missing from {location}")]
    Missing { name: String, location: String },
    #[error("tensor `{name}` has shape {found:?} in the checkpoint, but the model expects {expected:?}")]
    Shape {
        name: String,
        expected: Vec<usize>,
        found: Vec<usize>,
    },
    #[error("tensor `{name}` is stored as {dtype}; supported are F32, F16 and BF16")]
    Dtype { name: String, dtype: String },
}

type WResult<T> = Result<T, WeightError>;

struct SafetensorsFile {
    path: PathBuf,
    mmap: Mmap,
    data_start: usize,
    metadata: Metadata,
}

impl SafetensorsFile {
    fn open(path: &Path) -> WResult<Self> {
        let io = |source| WeightError::Io {
            path: path.to_path_buf(),
            source,
        };
        let file = File::open(path).map_err(io)?;
        // SAFETY: the file is opened read-only and only read through this map; like every
        // safetensors reader we assume it is not truncated by another process meanwhile.
        let mmap = unsafe { Mmap::map(&file) }.map_err(io)?;
        let (header, metadata) = SafeTensors::read_metadata(&mmap).map_err(|e| WeightError::Corrupt {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
        Ok(Self {
            path: path.to_path_buf(),
            mmap,
            data_start: 8 + header,
            metadata,
        })
    }
}

/// Safetensors weights of one model folder (or one file).
pub struct SafetensorsWeights {
    files: Vec<SafetensorsFile>,
    index: HashMap<String, usize>,
    location: String,
}

impl std::fmt::Debug for SafetensorsWeights {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SafetensorsWeights")
            .field("location", &self.location)
            .field("tensors", &self.index.len())
            .finish()
    }
}

#[derive(serde::Deserialize)]
struct ShardIndex {
    weight_map: HashMap<String, String>,
}

impl SafetensorsWeights {
    /// Opens a folder: `model.safetensors.index.json` (sharded) if present, else
    /// `model.safetensors`.
    pub fn open_dir(dir: &Path) -> WResult<Self> {
        let index_path = dir.join("model.safetensors.index.json");
        if index_path.is_file() {
            let text = std::fs::read_to_string(&index_path).map_err(|source| WeightError::Io {
                path: index_path.clone(),
                source,
            })?;
            let index: ShardIndex = serde_json::from_str(&text).map_err(|e| WeightError::Index {
                path: index_path.clone(),
                reason: e.to_string(),
            })?;
            let shards: BTreeSet<&String> = index.weight_map.values().collect();
            let paths: Vec<PathBuf> = shards.into_iter().map(|s| dir.join(s)).collect();
            let weights = Self::open_files(&paths, dir.display().to_string())?;
            // Every tensor the index names must be in the shard it names.
            for (name, shard) in &index.weight_map {
                let file = weights.index.get(name).map(|&i| &weights.files[i].path);
                if file != Some(&dir.join(shard)) {
                    return Err(WeightError::Index {
                        path: index_path,
                        reason: format!("tensor `{name}` is listed in {shard} but is not in that file"),
                    });
                }
            }
            return Ok(weights);
        }
        let single = dir.join("model.safetensors");
        if single.is_file() {
            return Self::open_files(&[single], dir.display().to_string());
        }
        Err(WeightError::NoWeights { dir: dir.to_path_buf() })
    }

    /// Opens one safetensors file.
    pub fn open_file(path: &Path) -> WResult<Self> {
        Self::open_files(&[path.to_path_buf()], path.display().to_string())
    }

    fn open_files(paths: &[PathBuf], location: String) -> WResult<Self> {
        let mut files = Vec::with_capacity(paths.len());
        let mut index = HashMap::new();
        for (i, path) in paths.iter().enumerate() {
            let file = SafetensorsFile::open(path)?;
            for name in file.metadata.tensors().keys() {
                index.insert(name.clone(), i);
            }
            files.push(file);
        }
        Ok(Self { files, index, location })
    }

    /// Names of all stored tensors.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.index.keys().map(String::as_str)
    }

    pub fn contains(&self, name: &str) -> bool {
        self.index.contains_key(name)
    }

    /// Stored shape of a tensor.
    pub fn shape(&self, name: &str) -> Option<Vec<usize>> {
        let &i = self.index.get(name)?;
        self.files[i].metadata.info(name).map(|t| t.shape.clone())
    }

    /// Reads a tensor as f32 values after checking its shape.
    pub fn read_f32(&self, name: &str, expected: &[usize]) -> WResult<Vec<f32>> {
        let missing = || WeightError::Missing {
            name: name.to_string(),
            location: self.location.clone(),
        };
        let &i = self.index.get(name).ok_or_else(missing)?;
        let file = &self.files[i];
        let info = file.metadata.info(name).ok_or_else(missing)?;
        if info.shape != expected {
            return Err(WeightError::Shape {
                name: name.to_string(),
                expected: expected.to_vec(),
                found: info.shape.clone(),
            });
        }
        let (a, b) = info.data_offsets;
        let bytes = &file.mmap[file.data_start + a..file.data_start + b];
        let values = match info.dtype {
            Dtype::F32 => bytes
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect(),
            Dtype::F16 => bytes
                .chunks_exact(2)
                .map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32())
                .collect(),
            Dtype::BF16 => bytes
                .chunks_exact(2)
                .map(|c| half::bf16::from_le_bytes([c[0], c[1]]).to_f32())
                .collect(),
            other => {
                return Err(WeightError::Dtype {
                    name: name.to_string(),
                    dtype: format!("{other:?}"),
                });
            }
        };
        Ok(values)
    }
}

/// How a random-weight source fills a tensor (ignored when reading a checkpoint).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Init {
    Ones,
    Zeros,
    /// Normal with mean 0.
    Normal(f64),
    Const(f64),
}

/// Where weights come from.
#[derive(Debug)]
pub enum Weights {
    /// A checkpoint's safetensors files.
    Safetensors(SafetensorsWeights),
    /// Random weights of the right shapes (benchmarks): linear weights N(0, 0.02), norms 1,
    /// biases 0. Seed the device for reproducible values.
    Random,
}

impl Weights {
    /// Opens a checkpoint sub-folder.
    pub fn open_dir(dir: &Path) -> WResult<Self> {
        SafetensorsWeights::open_dir(dir).map(Weights::Safetensors)
    }
}

/// Hands out tensors under a name prefix, on one device.
#[derive(Clone)]
pub struct Loader<'a> {
    weights: &'a Weights,
    device: &'a Device,
    prefix: String,
}

impl<'a> Loader<'a> {
    pub fn new(weights: &'a Weights, device: &'a Device) -> Self {
        Self {
            weights,
            device,
            prefix: String::new(),
        }
    }

    /// A loader for the names under `sub` (joined with `.`).
    pub fn at(&self, sub: impl std::fmt::Display) -> Self {
        Self {
            weights: self.weights,
            device: self.device,
            prefix: self.name(&sub.to_string()),
        }
    }

    pub fn device(&self) -> &'a Device {
        self.device
    }

    /// The full checkpoint name of `leaf` under this loader's prefix.
    pub fn name(&self, leaf: &str) -> String {
        if self.prefix.is_empty() {
            leaf.to_string()
        } else {
            format!("{}.{leaf}", self.prefix)
        }
    }

    /// Whether the checkpoint stores `leaf` (always true for random weights).
    pub fn contains(&self, leaf: &str) -> bool {
        match self.weights {
            Weights::Safetensors(s) => s.contains(&self.name(leaf)),
            Weights::Random => true,
        }
    }

    /// The values of `leaf` (checked to have `shape`), transposed when `transpose` (2-D only).
    fn read(&self, leaf: &str, shape: &[usize], transpose: bool, init: Init) -> WResult<Vec<f32>> {
        let Weights::Safetensors(s) = self.weights else {
            unreachable!("read() is only called for safetensors weights: {init:?}")
        };
        let values = s.read_f32(&self.name(leaf), shape)?;
        Ok(if transpose {
            transposed(&values, shape[0], shape[1])
        } else {
            values
        })
    }

    /// Puts `values` on the device as a tensor of `shape`, uploaded **flat** and reshaped there.
    ///
    /// Quirk: cubecl's CUDA runtime gives every buffer of rank ≥ 2 a "pitched" layout — each
    /// row padded to the next power of two of its byte width, up to 512 B
    /// (cubecl-server's `PitchedMemoryLayoutPolicy`). SigLIP's 1152-wide rows are 2304 B in
    /// bf16 and take 2560: DAM-3B's vision tower and adapters would hold 94 MB of padding (the
    /// 6.63 GiB of weights measured on an H100 = 6.55 GiB of values + exactly that padding). A
    /// rank-1 buffer has no rows to pad, and reshaping a contiguous tensor is free, so the
    /// weights stay dense; their rows remain 16-byte aligned (every width here is a multiple
    /// of 8), which is all the vectorised loads need.
    fn upload<const D: usize>(&self, values: Vec<f32>, shape: [usize; D]) -> Tensor<D> {
        let n = values.len();
        Tensor::<1>::from_data(TensorData::new(values, [n]), self.device).reshape(shape)
    }

    /// A tensor of `shape` initialised by `init` (random weights), flat like [`Self::upload`].
    fn random<const D: usize>(&self, shape: [usize; D], init: Init) -> Tensor<D> {
        let n = [shape.iter().product::<usize>()];
        let flat = match init {
            Init::Ones => Tensor::<1>::ones(n, self.device),
            Init::Zeros => Tensor::zeros(n, self.device),
            Init::Const(v) => Tensor::full(n, v, self.device),
            Init::Normal(std) => Tensor::random(n, Distribution::Normal(0.0, std), self.device),
        };
        flat.reshape(shape)
    }

    /// The tensor `leaf` with exactly `shape`, in the device's float type.
    pub fn tensor<const D: usize>(&self, leaf: &str, shape: [usize; D], init: Init) -> WResult<Tensor<D>> {
        match self.weights {
            Weights::Random => Ok(self.random(shape, init)),
            Weights::Safetensors(_) => Ok(self.upload(self.read(leaf, &shape, false, init)?, shape)),
        }
    }

    /// A PyTorch `[out, in]` matrix returned as `[in, out]` (burn's `Linear` layout).
    pub fn matrix_transposed(&self, leaf: &str, d_out: usize, d_in: usize) -> WResult<Tensor<2>> {
        let init = Init::Normal(0.02);
        match self.weights {
            Weights::Random => Ok(self.random([d_in, d_out], init)),
            Weights::Safetensors(_) => Ok(self.upload(self.read(leaf, &[d_out, d_in], true, init)?, [d_in, d_out])),
        }
    }

    /// `nn.Linear(d_in, d_out)` stored as `{leaf}.weight` `[d_out, d_in]` (+ `{leaf}.bias`).
    pub fn linear(&self, leaf: &str, d_in: usize, d_out: usize, bias: bool) -> WResult<Linear> {
        let at = self.at(leaf);
        let weight = at.matrix_transposed("weight", d_out, d_in)?;
        let bias = if bias {
            Some(Param::from_tensor(at.tensor("bias", [d_out], Init::Zeros)?))
        } else {
            None
        };
        Ok(Linear {
            weight: Param::from_tensor(weight),
            bias,
        })
    }

    /// `nn.Linear(d_in, d_out)` in PyTorch's `[d_out, d_in]` layout (no transpose on load).
    pub fn torch_linear(&self, leaf: &str, d_in: usize, d_out: usize, bias: bool) -> WResult<TorchLinear> {
        self.fused_torch_linear(&[leaf], d_in, &[d_out], bias)
    }

    /// Several `nn.Linear(d_in, d_out_i)` stacked into one `[Σ d_out_i, d_in]` layer (q|k|v,
    /// gate|up): one bigger matmul instead of several. The rows are joined on the host and
    /// uploaded once, so loading never holds the parts and the whole on the device together.
    pub fn fused_torch_linear(
        &self,
        leaves: &[&str],
        d_in: usize,
        d_outs: &[usize],
        bias: bool,
    ) -> WResult<TorchLinear> {
        let (weight, bias) = self.fused(leaves, d_in, d_outs, bias, false)?;
        Ok(TorchLinear::new(weight, bias))
    }

    /// Several `nn.Linear(d_in, d_out_i)` concatenated along the output into one burn `Linear`
    /// (`[d_in, Σ d_out_i]`; e.g. q, k, v into one projection): one bigger matmul instead of
    /// several small ones. Joined on the host, transposed once and uploaded once.
    pub fn fused_linear(&self, leaves: &[&str], d_in: usize, d_outs: &[usize], bias: bool) -> WResult<Linear> {
        let (weight, bias) = self.fused(leaves, d_in, d_outs, bias, true)?;
        Ok(Linear {
            weight: Param::from_tensor(weight),
            bias: bias.map(Param::from_tensor),
        })
    }

    /// The joined weight — `[Σ d_out_i, d_in]`, or `[d_in, Σ d_out_i]` when `transpose` — and
    /// the joined bias of `leaves`.
    fn fused(
        &self,
        leaves: &[&str],
        d_in: usize,
        d_outs: &[usize],
        bias: bool,
        transpose: bool,
    ) -> WResult<(Tensor<2>, Option<Tensor<1>>)> {
        let total: usize = d_outs.iter().sum();
        let shape = if transpose { [d_in, total] } else { [total, d_in] };
        Ok(match self.weights {
            Weights::Random => (
                self.random(shape, Init::Normal(0.02)),
                bias.then(|| self.random([total], Init::Zeros)),
            ),
            Weights::Safetensors(_) => {
                let (w, b) = self.joined(leaves, d_in, d_outs, bias)?;
                let w = if transpose { transposed(&w, total, d_in) } else { w };
                (self.upload(w, shape), b.map(|b| self.upload(b, [total])))
            }
        })
    }

    /// The `weight` rows (PyTorch layout, `[Σ d_out_i, d_in]`) and, when `bias`, the biases of
    /// `leaves`, joined in order on the host.
    fn joined(
        &self,
        leaves: &[&str],
        d_in: usize,
        d_outs: &[usize],
        bias: bool,
    ) -> WResult<(Vec<f32>, Option<Vec<f32>>)> {
        let Weights::Safetensors(s) = self.weights else {
            unreachable!("joined() is only called for safetensors weights")
        };
        let join = |param: &str, shape_of: &dyn Fn(usize) -> Vec<usize>| -> WResult<Vec<f32>> {
            let mut all = Vec::new();
            for (leaf, &d_out) in leaves.iter().zip(d_outs) {
                all.extend(s.read_f32(&self.at(leaf).name(param), &shape_of(d_out))?);
            }
            Ok(all)
        };
        let w = join("weight", &|d_out| vec![d_out, d_in])?;
        let b = if bias {
            Some(join("bias", &|d_out| vec![d_out])?)
        } else {
            None
        };
        Ok((w, b))
    }
}

/// `values` (`rows × cols`, row-major) transposed to `cols × rows`.
fn transposed(values: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    let mut t = vec![0.0f32; values.len()];
    for r in 0..rows {
        for c in 0..cols {
            t[c * rows + r] = values[r * cols + c];
        }
    }
    t
}
