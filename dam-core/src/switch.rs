//! A process-wide experiment switch: a value set in code, else read once from an environment
//! variable, else the type's default (`dam_vision::sdpa`'s attention form, the LayerNorm
//! kernel, the matmul kernels) — and [`cubecl_device`] / [`cuda_device`], where such
//! switches take effect and where their defaults were measured.

use std::sync::{OnceLock, RwLock};

use burn::tensor::Device;

/// Whether `device` is a cubecl one (CUDA, wgpu) in a build with the `cube` feature: where
/// our kernels and the kernel switches apply. Elsewhere everything is burn's ops.
pub fn cubecl_device(device: &Device) -> bool {
    #[cfg(feature = "cube")]
    if matches!(device.as_dispatch(), burn::backend::DispatchDevice::Cube(_)) {
        return true;
    }
    let _ = device;
    false
}

/// Whether `device` is a CUDA device (in a build with the `cube` feature): where the GPU
/// measurements behind the kernels' defaults were taken (docs/performance.md), so the
/// defaults that a measurement justified apply there and nowhere else.
pub fn cuda_device(device: &Device) -> bool {
    #[cfg(feature = "cube")]
    if matches!(
        device.as_dispatch(),
        burn::backend::DispatchDevice::Cube(burn_cubecl::CubeDevice::Cuda(_))
    ) {
        return true;
    }
    let _ = device;
    false
}

/// See the module docs. `const`-constructible, so it lives in a `static`.
pub struct Switch<T: 'static> {
    /// The environment variable read when nothing was set in code.
    var: &'static str,
    /// Its value, or `None` to fall back to the default.
    parse: fn(&str) -> Option<T>,
    set: RwLock<Option<T>>,
    env: OnceLock<T>,
}

impl<T: Copy + Default + Send + Sync + 'static> Switch<T> {
    /// A switch read from the environment variable `var`, whose values `parse` turns into
    /// a `T` (`None` for a value it does not understand).
    pub const fn new(var: &'static str, parse: fn(&str) -> Option<T>) -> Self {
        Self {
            var,
            parse,
            set: RwLock::new(None),
            env: OnceLock::new(),
        }
    }

    /// Overrides the environment for the rest of the process.
    pub fn set(&self, value: T) {
        *self.set.write().unwrap_or_else(|p| p.into_inner()) = Some(value);
    }

    /// Forgets the value set in code: the environment variable's (or the default) applies
    /// again.
    pub fn reset(&self) {
        *self.set.write().unwrap_or_else(|p| p.into_inner()) = None;
    }

    /// The value set in code, else the environment variable's (read once), else the default.
    /// A value that does not parse is ignored with one warning (the default applies).
    pub fn get(&self) -> T {
        let set = *self.set.read().unwrap_or_else(|p| p.into_inner());
        set.unwrap_or_else(|| {
            *self.env.get_or_init(|| {
                let Ok(value) = std::env::var(self.var) else {
                    return T::default();
                };
                (self.parse)(&value).unwrap_or_else(|| {
                    tracing::warn!("{}={value:?} is not understood; using the default", self.var);
                    T::default()
                })
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::Switch;

    #[test]
    fn code_overrides_the_environment_which_overrides_the_default() {
        // A variable no test sets: the default until set in code.
        static UNSET: Switch<bool> = Switch::new("DAM_TEST_SWITCH_NEVER_SET", |v| Some(v == "on"));
        assert!(!UNSET.get());
        UNSET.set(true);
        assert!(UNSET.get());
        // One whose parse fails falls back to the default (with a warning); `PATH` is always set.
        static UNPARSED: Switch<u8> = Switch::new("PATH", |v| v.parse().ok());
        assert_eq!(UNPARSED.get(), 0);
        static PARSED: Switch<bool> = Switch::new("PATH", |v| Some(!v.is_empty()));
        assert!(PARSED.get());
        PARSED.set(false);
        assert!(!PARSED.get());
        PARSED.reset();
        assert!(PARSED.get());
    }
}
