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
use burn::tensor::{Distribution, FloatDType, Int, Tensor, TensorData};
use memmap2::Mmap;
use rayon::prelude::*;
use safetensors::{Dtype, SafeTensors, tensor::Metadata};

use crate::nn::TorchLinear;

/// Errors from weight files, each naming the file or tensor concerned.
#[derive(Debug, thiserror::Error)]
pub enum WeightError {
    /// A weight file or shard index that could not be opened, mapped or read.
    #[error("cannot read weight file {path}: {source}")]
    Io {
        /// Path of the file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A safetensors file whose header could not be parsed.
    #[error("weight file {path} is not a valid safetensors file (truncated or corrupt?): {reason}")]
    Corrupt {
        /// Path of the file.
        path: PathBuf,
        /// The parser's error.
        reason: String,
    },
    /// A `model.safetensors.index.json` that is not valid JSON, or that lists a tensor in a
    /// shard that does not hold it.
    #[error("shard index {path}: {reason}")]
    Index {
        /// Path of the index file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// A folder with neither `model.safetensors` nor `model.safetensors.index.json`.
    #[error("no weights in {dir}: expected model.safetensors or model.safetensors.index.json")]
    NoWeights {
        /// The folder.
        dir: PathBuf,
    },
    /// A tensor the model needs that the checkpoint does not store.
    #[error("tensor `{name}` is missing from {location}")]
    Missing {
        /// Full checkpoint name of the tensor.
        name: String,
        /// The folder or file searched.
        location: String,
    },
    /// A stored tensor whose shape differs from the one the model expects.
    #[error("tensor `{name}` has shape {found:?} in the checkpoint, but the model expects {expected:?}")]
    Shape {
        /// Full checkpoint name of the tensor.
        name: String,
        /// The shape the model expects.
        expected: Vec<usize>,
        /// The shape stored in the checkpoint.
        found: Vec<usize>,
    },
    /// A stored tensor in a dtype other than F32, F16 or BF16.
    #[error("tensor `{name}` is stored as {dtype}; supported are F32, F16 and BF16")]
    Dtype {
        /// Full checkpoint name of the tensor.
        name: String,
        /// The stored safetensors dtype, e.g. `I64`.
        dtype: String,
    },
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

    /// Whether a tensor named `name` is stored.
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
        self.read_as(name, expected)
    }

    /// `name` (checked to have `expected`) decoded into `T`, row-major.
    fn read_as<T: HostFloat>(&self, name: &str, expected: &[usize]) -> WResult<Vec<T>> {
        let mut values = vec![T::default(); expected.iter().product()];
        self.decode_into(name, expected, &mut values)?;
        Ok(values)
    }

    /// The stored bytes and dtype of `name`, after checking its shape.
    fn raw(&self, name: &str, expected: &[usize]) -> WResult<(&[u8], Dtype)> {
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
        Ok((&file.mmap[file.data_start + a..file.data_start + b], info.dtype))
    }

    /// Decodes `name` (checked to have `expected`) into `out` as stored, row-major.
    fn decode_into<T: HostFloat>(&self, name: &str, expected: &[usize], out: &mut [T]) -> WResult<()> {
        let (bytes, dtype) = self.raw(name, expected)?;
        match Stored::of(name, dtype)? {
            Stored::F32 => decode(bytes, 4, |c| T::from_f32(f32_le(c)), out),
            Stored::F16 => decode(bytes, 2, |c| T::from_f16(f16_le(c)), out),
            Stored::Bf16 => decode(bytes, 2, |c| T::from_bf16(bf16_le(c)), out),
        }
        Ok(())
    }

    /// Decodes the matrix `name` (`[rows, cols]`) transposed into columns
    /// `col0..col0 + rows` of `out`, a row-major matrix of `cols` rows of `stride` values: the
    /// layout burn's `Linear` wants (`[d_in, d_out]`), also for several linears joined along
    /// their outputs, without an intermediate copy.
    fn decode_transposed_into<T: HostFloat>(
        &self,
        name: &str,
        shape: [usize; 2],
        out: &mut [T],
        stride: usize,
        col0: usize,
    ) -> WResult<()> {
        let (bytes, dtype) = self.raw(name, &shape)?;
        match Stored::of(name, dtype)? {
            Stored::F32 => decode_transposed(bytes, 4, |c| T::from_f32(f32_le(c)), shape, out, stride, col0),
            Stored::F16 => decode_transposed(bytes, 2, |c| T::from_f16(f16_le(c)), shape, out, stride, col0),
            Stored::Bf16 => decode_transposed(bytes, 2, |c| T::from_bf16(bf16_le(c)), shape, out, stride, col0),
        }
        Ok(())
    }
}

/// How a random-weight source fills a tensor (ignored when reading a checkpoint).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Init {
    /// All ones (e.g. norm weights).
    Ones,
    /// All zeros (e.g. biases).
    Zeros,
    /// Normal with mean 0.
    Normal(f64),
    /// Every value equal to the given constant.
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
    /// A loader at the root of `weights` (no prefix) that puts tensors on `device`.
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

    /// The device the tensors are put on.
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

    /// The values of `leaf` (checked to have `shape`) in `T`, transposed when `transpose`
    /// (2-D only).
    fn read<T: HostFloat>(&self, leaf: &str, shape: &[usize], transpose: bool) -> WResult<Vec<T>> {
        let Weights::Safetensors(s) = self.weights else {
            unreachable!("read() is only called for safetensors weights")
        };
        let name = self.name(leaf);
        if !transpose {
            return s.read_as(&name, shape);
        }
        let mut values = vec![T::default(); shape.iter().product()];
        s.decode_transposed_into(&name, [shape[0], shape[1]], &mut values, shape[0], 0)?;
        Ok(values)
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
    ///
    /// `values` are already in the device's float type ([`with_host_type`]): decoded from the
    /// stored bytes straight into it, in parallel blocks.
    fn upload<T: HostFloat, const D: usize>(&self, values: Vec<T>, shape: [usize; D]) -> Tensor<D> {
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
            // On the cubecl backends the device draws them; elsewhere burn draws them on the
            // host one value at a time on one thread (≈ 40 s for DAM-3B's 3.3 B values).
            Init::Normal(std) if crate::switch::cubecl_device(self.device) => {
                Tensor::random(n, Distribution::Normal(0.0, std), self.device)
            }
            Init::Normal(std) => return with_host_type!(self, T, self.upload(self.host_normal::<T>(n[0], std), shape)),
        };
        flat.reshape(shape)
    }

    /// `n` values from N(0, std²) drawn on the host in parallel blocks, each block from its
    /// own small generator seeded from burn's device generator — so `device.seed(s)` still
    /// makes the weights reproducible (the same values for any thread count).
    fn host_normal<T: HostFloat>(&self, n: usize, std: f64) -> Vec<T> {
        use rand::SeedableRng;
        use rand_distr::Distribution as _;
        const BLOCK: usize = 1 << 16;
        // Two draws below 10⁹ (an Int tensor may be i32 on the device).
        let seed_parts = Tensor::<1, Int>::random([2], Distribution::Uniform(0.0, 1e9), self.device)
            .into_data()
            .convert::<i64>()
            .try_into_vec::<i64>()
            .unwrap_or_default();
        let seed = seed_parts
            .iter()
            .fold(0u64, |s, &p| s.wrapping_mul(1_000_000_007) ^ p as u64);
        let normal =
            rand_distr::Normal::new(0.0f32, std as f32).unwrap_or_else(|_| rand_distr::Normal::new(0.0, 0.0).unwrap());
        let mut values = vec![T::default(); n];
        values.par_chunks_mut(BLOCK).enumerate().for_each(|(block, out)| {
            let mut rng =
                rand::rngs::SmallRng::seed_from_u64(seed ^ (block as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
            for v in out {
                *v = T::from_f32(normal.sample(&mut rng));
            }
        });
        values
    }

    /// The tensor `leaf` with exactly `shape`, in the device's float type.
    pub fn tensor<const D: usize>(&self, leaf: &str, shape: [usize; D], init: Init) -> WResult<Tensor<D>> {
        match self.weights {
            Weights::Random => Ok(self.random(shape, init)),
            Weights::Safetensors(_) => Ok(with_host_type!(
                self,
                T,
                self.upload(self.read::<T>(leaf, &shape, false)?, shape)
            )),
        }
    }

    /// A PyTorch `[out, in]` matrix returned as `[in, out]` (burn's `Linear` layout).
    pub fn matrix_transposed(&self, leaf: &str, d_out: usize, d_in: usize) -> WResult<Tensor<2>> {
        let init = Init::Normal(0.02);
        match self.weights {
            Weights::Random => Ok(self.random([d_in, d_out], init)),
            Weights::Safetensors(_) => Ok(with_host_type!(
                self,
                T,
                self.upload(self.read::<T>(leaf, &[d_out, d_in], true)?, [d_in, d_out])
            )),
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
            Weights::Safetensors(_) => with_host_type!(self, T, {
                let (w, b) = self.joined::<T>(leaves, d_in, d_outs, bias, transpose)?;
                (self.upload(w, shape), b.map(|b| self.upload(b, [total])))
            }),
        })
    }

    /// The weights of `leaves` joined on the host — PyTorch's layout `[Σ d_out_i, d_in]`, or
    /// `[d_in, Σ d_out_i]` when `transpose` — and, when `bias`, their joined biases. Each part
    /// is decoded straight into its place in one buffer.
    fn joined<T: HostFloat>(
        &self,
        leaves: &[&str],
        d_in: usize,
        d_outs: &[usize],
        bias: bool,
        transpose: bool,
    ) -> WResult<(Vec<T>, Option<Vec<T>>)> {
        let Weights::Safetensors(s) = self.weights else {
            unreachable!("joined() is only called for safetensors weights")
        };
        let total: usize = d_outs.iter().sum();
        let mut w = vec![T::default(); total * d_in];
        let mut b = bias.then(|| vec![T::default(); total]);
        let mut offset = 0;
        for (leaf, &d_out) in leaves.iter().zip(d_outs) {
            let at = self.at(leaf);
            let name = at.name("weight");
            if transpose {
                s.decode_transposed_into(&name, [d_out, d_in], &mut w, total, offset)?;
            } else {
                s.decode_into(&name, &[d_out, d_in], &mut w[offset * d_in..(offset + d_out) * d_in])?;
            }
            if let Some(b) = &mut b {
                s.decode_into(&at.name("bias"), &[d_out], &mut b[offset..offset + d_out])?;
            }
            offset += d_out;
        }
        Ok((w, b))
    }
}

/// The float types a checkpoint may store. One generic decode per stored type and host type,
/// so the per-value conversion inlines.
#[derive(Clone, Copy)]
enum Stored {
    F32,
    F16,
    Bf16,
}

impl Stored {
    fn of(name: &str, dtype: Dtype) -> WResult<Self> {
        match dtype {
            Dtype::F32 => Ok(Self::F32),
            Dtype::F16 => Ok(Self::F16),
            Dtype::BF16 => Ok(Self::Bf16),
            other => Err(WeightError::Dtype {
                name: name.to_string(),
                dtype: format!("{other:?}"),
            }),
        }
    }
}

fn f32_le(c: &[u8]) -> f32 {
    f32::from_le_bytes([c[0], c[1], c[2], c[3]])
}

fn f16_le(c: &[u8]) -> half::f16 {
    half::f16::from_le_bytes([c[0], c[1]])
}

fn bf16_le(c: &[u8]) -> half::bf16 {
    half::bf16::from_le_bytes([c[0], c[1]])
}

/// A device float type held on the host — f32, or the half type of a half-precision device —
/// with its conversions. What the loader decodes stored values into: a bf16 checkpoint then
/// reaches a bf16 device as its own bits, with no f32 buffer and no second rounding pass in
/// between; other pairs round once, to nearest even, exactly as decoding to f32 and converting
/// did (f16 and bf16 are exact in f32). Also the element type of the CPU loops
/// (`crate::flex_kernels`), which compute in f32 ([`Self::widen`]) and round once
/// ([`Self::from_f32`]).
pub(crate) trait HostFloat: burn::tensor::Element + bytemuck::Pod + Default + Send + Sync {
    fn from_f32(v: f32) -> Self;
    fn from_f16(v: half::f16) -> Self;
    fn from_bf16(v: half::bf16) -> Self;
    /// The value in f32 (exact). Not named `to_f32`: the half types' own `to_f32` would win
    /// method resolution, and bf16's quiets NaNs with a branch that keeps loops from
    /// vectorising. (Only the CPU loops call it.)
    #[cfg_attr(not(feature = "flex"), allow(dead_code))]
    fn widen(self) -> f32;
}

impl HostFloat for f32 {
    fn from_f32(v: f32) -> Self {
        v
    }
    fn widen(self) -> f32 {
        self
    }
    fn from_f16(v: half::f16) -> Self {
        v.to_f32()
    }
    fn from_bf16(v: half::bf16) -> Self {
        v.to_f32()
    }
}

impl HostFloat for half::bf16 {
    fn from_f32(v: f32) -> Self {
        half::bf16::from_f32(v)
    }
    fn from_f16(v: half::f16) -> Self {
        half::bf16::from_f32(v.to_f32())
    }
    fn from_bf16(v: half::bf16) -> Self {
        v
    }
    /// The bits shifted into place (a NaN stays a NaN).
    #[inline(always)]
    fn widen(self) -> f32 {
        f32::from_bits((self.to_bits() as u32) << 16)
    }
}

impl HostFloat for half::f16 {
    fn from_f32(v: f32) -> Self {
        half::f16::from_f32(v)
    }
    fn from_f16(v: half::f16) -> Self {
        v
    }
    fn from_bf16(v: half::bf16) -> Self {
        half::f16::from_f32(v.to_f32())
    }
    fn widen(self) -> f32 {
        self.to_f32()
    }
}

/// Evaluates `$body` with the type `$t` bound to the [`HostFloat`] of `$loader`'s device: its
/// half type on a bf16 / f16 device, f32 otherwise (burn converts f32 to anything else).
macro_rules! with_host_type {
    ($loader:expr, $t:ident, $body:expr) => {
        match $loader.device.settings().float_dtype {
            FloatDType::BF16 => {
                type $t = half::bf16;
                $body
            }
            FloatDType::F16 => {
                type $t = half::f16;
                $body
            }
            _ => {
                type $t = f32;
                $body
            }
        }
    };
}
use with_host_type;

/// Values per parallel task when decoding a tensor's bytes (DAM-3B's 3.5 B values took ≈ a
/// third of a CPU load one value at a time on one thread).
const DECODE_BLOCK: usize = 1 << 16;

/// Little-endian values of `width` bytes each, decoded by `f` into `out`, in parallel blocks.
fn decode<T: Send>(bytes: &[u8], width: usize, f: impl Fn(&[u8]) -> T + Sync, out: &mut [T]) {
    out.par_chunks_mut(DECODE_BLOCK)
        .zip(bytes.par_chunks(DECODE_BLOCK * width))
        .for_each(|(out, bytes)| {
            for (o, c) in out.iter_mut().zip(bytes.chunks_exact(width)) {
                *o = f(c);
            }
        });
}

/// Side of the square tiles of [`decode_transposed`]: 32 × 32 values read and written stay in
/// L1.
const TILE: usize = 32;

/// The `[rows, cols]` matrix in `bytes` decoded and transposed into columns
/// `col0..col0 + rows` of `out` (`cols` rows of `stride` values). Tile by tile — a plain double
/// loop writes a new cache line per value (≈ 10 s for DAM-3B's vision weights on one core) —
/// with bands of `TILE` output rows in parallel.
fn decode_transposed<T: Send>(
    bytes: &[u8],
    width: usize,
    f: impl Fn(&[u8]) -> T + Sync,
    [rows, cols]: [usize; 2],
    out: &mut [T],
    stride: usize,
    col0: usize,
) {
    if rows == 0 || cols == 0 {
        return;
    }
    debug_assert!(col0 + rows <= stride && out.len() == cols * stride);
    out.par_chunks_mut(TILE * stride).enumerate().for_each(|(band, out)| {
        // Output rows c0..c0 + height are the input's columns c0..c0 + height.
        let c0 = band * TILE;
        let height = out.len() / stride;
        for r0 in (0..rows).step_by(TILE) {
            let r1 = (r0 + TILE).min(rows);
            for c in 0..height {
                let tile_row = &mut out[c * stride + col0 + r0..c * stride + col0 + r1];
                for (r, o) in (r0..r1).zip(tile_row) {
                    let at = (r * cols + c0 + c) * width;
                    *o = f(&bytes[at..at + width]);
                }
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f32_bytes(values: &[f32]) -> Vec<u8> {
        values.iter().flat_map(|v| v.to_le_bytes()).collect()
    }

    #[test]
    fn decode_transposed_matches_the_definition_at_awkward_shapes() {
        for (rows, cols) in [
            (1, 1),
            (1, 7),
            (7, 1),
            (3, 5),
            (32, 32),
            (33, 31),
            (70, 130),
            (257, 64),
            (0, 4),
        ] {
            let values: Vec<f32> = (0..rows * cols).map(|i| i as f32).collect();
            let mut t = vec![f32::NAN; rows * cols];
            decode_transposed(&f32_bytes(&values), 4, f32_le, [rows, cols], &mut t, rows, 0);
            for r in 0..rows {
                for c in 0..cols {
                    assert_eq!(t[c * rows + r], values[r * cols + c], "{rows}x{cols} at ({r}, {c})");
                }
            }
        }
        // Two matrices joined along the output: [3, 40] and [5, 40] into columns 0..3 and 3..8
        // of a [40, 8] matrix, each column written once.
        let a: Vec<f32> = (0..3 * 40).map(|i| i as f32).collect();
        let b: Vec<f32> = (0..5 * 40).map(|i| -(i as f32) - 1.0).collect();
        let mut out = vec![f32::NAN; 40 * 8];
        decode_transposed(&f32_bytes(&a), 4, f32_le, [3, 40], &mut out, 8, 0);
        decode_transposed(&f32_bytes(&b), 4, f32_le, [5, 40], &mut out, 8, 3);
        for c in 0..40 {
            for r in 0..3 {
                assert_eq!(out[c * 8 + r], a[r * 40 + c]);
            }
            for r in 0..5 {
                assert_eq!(out[c * 8 + 3 + r], b[r * 40 + c]);
            }
        }
    }

    #[test]
    fn decode_reads_every_value_across_blocks() {
        let n = DECODE_BLOCK * 2 + 3;
        let bytes: Vec<u8> = (0..n)
            .flat_map(|i| half::bf16::from_f32(i as f32).to_le_bytes())
            .collect();
        let mut values = vec![f32::NAN; n];
        decode(&bytes, 2, |c| bf16_le(c).to_f32(), &mut values);
        for (i, v) in values.iter().enumerate() {
            assert_eq!(*v, half::bf16::from_f32(i as f32).to_f32(), "value {i}");
        }
    }
}
