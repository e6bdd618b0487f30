//! Backends and float types, chosen at run time among those compiled in (cargo features
//! `cpu`, `wgpu`, `cuda`; several may be on at once). The model code is the same for all.

use burn::tensor::{Device, FloatDType, Tensor};

use crate::error::{DamError, Result};

/// A compute backend.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// burn's pure-Rust `flex` CPU backend (feature `cpu`, on by default).
    Cpu,
    /// wgpu (Vulkan, Metal, DX12, WebGPU) on the default adapter (feature `wgpu`).
    Wgpu,
    /// CUDA device `n` (feature `cuda`).
    Cuda(usize),
}

impl std::str::FromStr for Backend {
    type Err = String;

    /// `cpu`, `wgpu`, `cuda` or `cuda:N`.
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "cpu" | "flex" => Ok(Backend::Cpu),
            "wgpu" => Ok(Backend::Wgpu),
            "cuda" => Ok(Backend::Cuda(0)),
            other => other
                .strip_prefix("cuda:")
                .and_then(|n| n.parse().ok())
                .map(Backend::Cuda)
                .ok_or_else(|| format!("unknown backend {other:?}: use cpu, wgpu, cuda or cuda:N")),
        }
    }
}

impl std::fmt::Display for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Backend::Cpu => write!(f, "cpu"),
            Backend::Wgpu => write!(f, "wgpu"),
            Backend::Cuda(n) => write!(f, "cuda:{n}"),
        }
    }
}

/// Float type of weights and activations.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum FloatType {
    /// The default on the CPU; what the parity tests use.
    #[default]
    F32,
    /// Half precision (CUDA; wgpu with shader-f16 support; the CPU, computed in f32 inside).
    F16,
    /// bfloat16, the checkpoint's own storage type: CUDA's choice, and on the CPU the
    /// low-memory one (DAM-3B in 6.8 GiB instead of 13.3, decoding faster than in f32;
    /// products and activations computed in f32 inside and rounded per op, as PyTorch does).
    BF16,
}

impl std::str::FromStr for FloatType {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "f32" => Ok(FloatType::F32),
            "f16" => Ok(FloatType::F16),
            "bf16" => Ok(FloatType::BF16),
            other => Err(format!("unknown float type {other:?}: use f32, f16 or bf16")),
        }
    }
}

impl std::fmt::Display for FloatType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            FloatType::F32 => "f32",
            FloatType::F16 => "f16",
            FloatType::BF16 => "bf16",
        })
    }
}

impl From<FloatType> for FloatDType {
    fn from(t: FloatType) -> Self {
        match t {
            FloatType::F32 => FloatDType::F32,
            FloatType::F16 => FloatDType::F16,
            FloatType::BF16 => FloatDType::BF16,
        }
    }
}

impl Backend {
    /// The backends compiled into this build, best first.
    pub fn available() -> Vec<Backend> {
        let mut v = Vec::new();
        if cfg!(feature = "cuda") {
            v.push(Backend::Cuda(0));
        }
        if cfg!(feature = "wgpu") {
            v.push(Backend::Wgpu);
        }
        if cfg!(feature = "cpu") {
            v.push(Backend::Cpu);
        }
        v
    }

    /// The compiler that turns kernels into PTX on [`Backend::Cuda`] in this build: `"nvrtc"`
    /// (CUDA C++ through NVRTC, feature `cuda-nvrtc`) or `"llvm"` (cubecl's default).
    pub fn cuda_compiler() -> &'static str {
        if cfg!(feature = "cuda-nvrtc") { "nvrtc" } else { "llvm" }
    }

    /// The burn device, without configuring its float type.
    pub fn device(self) -> Result<Device> {
        match self {
            #[cfg(feature = "cpu")]
            Backend::Cpu => Ok(Device::flex()),
            #[cfg(feature = "wgpu")]
            Backend::Wgpu => Ok(Device::wgpu(burn::tensor::DeviceKind::DefaultDevice)),
            #[cfg(feature = "cuda")]
            Backend::Cuda(n) => Ok(Device::cuda(n)),
            #[allow(unreachable_patterns)]
            other => Err(DamError::BackendNotCompiled(match other {
                Backend::Cpu => "cpu",
                Backend::Wgpu => "wgpu",
                Backend::Cuda(_) => "cuda",
            })),
        }
    }

    /// The device with `dtype` as its default float type. GPU devices are tried once (a tiny
    /// tensor round trip), so a missing driver or GPU is an error here rather than a panic in
    /// a device thread later.
    ///
    /// With the `kernel-cache` feature (on with `wgpu` and `cuda`) the first GPU device of the
    /// process also fixes cubecl's kernel cache: `DAM_KERNEL_CACHE` if set, else
    /// `KernelCache::Default`, unless `KernelCache::install` was called before (`KernelCache`
    /// exists only with that feature, so these are not links).
    pub fn configured_device(self, dtype: FloatType) -> Result<Device> {
        #[cfg(feature = "kernel-cache")]
        if self != Backend::Cpu {
            install_kernel_cache(None);
        }
        let mut device = self.device()?;
        let name = self.to_string();
        if self == Backend::Cpu {
            configure(&mut device, dtype, &name)?;
            return Ok(device);
        }
        guarded(&name, || {
            configure(&mut device, dtype, &name)?;
            Tensor::<1>::zeros([1], &device)
                .try_into_data()
                .map_err(|e| DamError::Device(format!("{name}: {e:?}")))?;
            Ok(())
        })?;
        Ok(device)
    }
}

/// Makes `choice` (else `DAM_KERNEL_CACHE`, else the default) cubecl's kernel cache, unless
/// cubecl's configuration is fixed already (an earlier call, or a GPU device that started
/// first). Where the cache lives is logged once.
#[cfg(feature = "kernel-cache")]
pub(crate) fn install_kernel_cache(choice: Option<&crate::KernelCache>) {
    use crate::KernelCache;
    let explicit = choice.is_some();
    let choice = choice.cloned().unwrap_or_else(KernelCache::from_env_or_default);
    if choice.install() {
        match choice.root() {
            Some(root) => tracing::info!(
                "GPU kernel cache ({choice}): {} (DAM_KERNEL_CACHE=off disables it)",
                root.display()
            ),
            None => tracing::info!("GPU kernel cache off"),
        }
    } else if explicit {
        tracing::warn!(
            "kernel cache {choice} not applied: cubecl's configuration was fixed earlier in this \
             process (set it before the first GPU device starts)"
        );
    }
}

/// Runs `f`, turning a panic (burn's GPU runtimes panic when the driver library or the device
/// is missing, in their device thread and then in the caller) into [`DamError::Device`] with
/// the first panic message.
fn guarded(name: &str, f: impl FnOnce() -> Result<()>) -> Result<()> {
    use std::sync::{Arc, Mutex};
    let first: Arc<Mutex<Option<String>>> = Arc::default();
    let seen = first.clone();
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let mut slot = seen.lock().unwrap_or_else(|p| p.into_inner());
        if slot.is_none() {
            let msg = info
                .payload()
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| info.payload().downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| info.to_string());
            *slot = Some(msg);
        }
    }));
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
    std::panic::set_hook(previous);
    match result {
        Ok(r) => r,
        Err(_) => {
            let msg = first.lock().unwrap_or_else(|p| p.into_inner()).take();
            Err(DamError::Device(format!(
                "the {name} backend is not usable on this machine: {}",
                msg.unwrap_or_else(|| "it failed to start".into())
            )))
        }
    }
}

/// Sets a device's default float type (once, before any tensor exists on it). A device already
/// set to the same type is fine.
pub fn configure(device: &mut Device, dtype: FloatType, name: &str) -> Result<()> {
    let want: FloatDType = dtype.into();
    if !device.supports_dtype(want) {
        return Err(DamError::UnsupportedDType {
            backend: name.to_string(),
            dtype: dtype.to_string(),
        });
    }
    match device.configure(want) {
        Ok(()) => Ok(()),
        Err(e) => {
            if device.settings().float_dtype == want {
                Ok(())
            } else {
                Err(DamError::Device(format!(
                    "{name} is already set up with another float type than {dtype}: {e}"
                )))
            }
        }
    }
}
